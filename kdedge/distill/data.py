"""Training data: HR images -> (LR, HR) pairs in the student's colour space, and the patch sampler.

Every training image becomes a `Sample` once, before training: LR made with the evaluation
protocol's own MATLAB bicubic (`kdedge.data.imresize.bicubic_downscale`), so that training and test
LR come from the same operator; HR and LR converted to the student's colour space (MATLAB Y / 255,
or RGB / 255). A `Sample` may lack ground truth (`hr is None`): images only the teacher can label
(the HR images themselves used as LR inputs here; camera footage later, issue 7). The teacher's
output on the whole LR image (`teacher`) comes from `kdedge.distill.cache`.

`PatchSampler` draws a batch of random LR patches, the HR and teacher patches at the same place,
and one of the 8 flips/rotations applied identically to all of them; so a cached teacher label costs
one more crop, not a teacher forward. Labelled and unlabelled samples mix at a set ratio; a per-sample
mask says which have ground truth.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kdedge.errors import KdedgeError

# scikit-image sample images that ship inside its wheel (no download; see skimage.data's docs for
# each image's provenance: public domain or CC0 photos, NASA and the scikit-image contributors).
EMBEDDED_IMAGES = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
    "camera", "brick", "grass", "gravel", "moon", "coins", "clock", "page", "text",
)
# Held out for validation when training on the embedded images (a photo and a grey image).
EMBEDDED_VAL = ("coffee", "camera")


@dataclass
class Image:
    name: str
    pixels: np.ndarray  # uint8, H x W x 3 RGB (grey images are replicated: students and teachers see RGB or Y)


@dataclass
class Sample:
    name: str
    lr_u8: np.ndarray  # uint8 h x w x 3: what the teacher is fed
    lr: np.ndarray  # float32 C x h x w in [0, 1], student colour space
    hr: Optional[np.ndarray]  # float32 C x sh x sw, or None (no ground truth)
    teacher: Optional[np.ndarray] = None  # float16 C x sh x sw: teacher output in the student's colour space


def _rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    if pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[..., :3])
    return pixels


def embedded_images() -> List[Image]:
    """The training photos that ship with scikit-image (works offline)."""
    try:
        import skimage.data as skdata
    except ImportError as exc:
        raise KdedgeError("the default training images come from scikit-image, which is not installed",
                          fix="pip install scikit-image, or give --data FOLDER") from exc
    images = []
    for name in EMBEDDED_IMAGES:
        try:
            pixels = getattr(skdata, name)()
        except Exception as exc:  # a newer scikit-image may move an image to its download set
            warnings.warn("scikit-image sample %r is not available offline (%s); skipped" % (name, exc))
            continue
        images.append(Image(name, _rgb(np.asarray(pixels, dtype=np.uint8))))
    if not images:
        raise KdedgeError("no scikit-image sample image is available", fix="give --data FOLDER")
    return images


def folder_images(folders: Sequence[str], scale: int, min_size: int) -> List[Image]:
    """HR images of the given folders (unreadable / too small ones are skipped with a warning)."""
    from kdedge.data.datasets import load_hr_images

    images = []
    for folder in folders:
        for img in load_hr_images(folder, scale=scale, min_size=min_size):
            images.append(Image("%s/%s" % (img.path.parent.name, img.name), _rgb(img.pixels)))
    return images


def to_student_space(rgb: np.ndarray, color: str) -> np.ndarray:
    """uint8 (or float [0,1]) H x W x 3 RGB -> float32 C x H x W in [0, 1] in the student's colour space."""
    if color == "y":
        from kdedge.data.color import rgb_to_y

        return (rgb_to_y(rgb) / 255.0).astype(np.float32)[None]
    x = rgb.astype(np.float32)
    if rgb.dtype == np.uint8:
        x /= 255.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def make_sample(img: Image, scale: int, color: str, with_hr: bool = True) -> Sample:
    """An HR image -> its protocol LR and both in the student colour space.

    With `with_hr=False` the image itself is the LR input and there is no ground truth.
    """
    from kdedge.data.imresize import bicubic_downscale, modcrop

    if not with_hr:
        return Sample(img.name + "@lr", img.pixels, to_student_space(img.pixels, color), None)
    hr = modcrop(img.pixels, scale)
    lr = bicubic_downscale(hr, scale)
    return Sample(img.name, lr, to_student_space(lr, color), to_student_space(hr, color))


_DIHEDRAL = 8


def _augment(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of a C x H x W array (k in 0..7)."""
    if k >= 4:
        a = a[:, :, ::-1]
    return np.rot90(a, k % 4, axes=(1, 2))


class PatchSampler:
    """Random patches from labelled and unlabelled samples, identical crops and flips for every target."""

    def __init__(self, labelled: List[Sample], unlabeled: List[Sample], patch: int, scale: int,
                 unlabeled_ratio: float = 0.0, need_teacher: bool = False, need_teacher_input: bool = False):
        self.patch, self.scale = patch, scale
        self.sources = []
        for name, samples in (("labelled", labelled), ("unlabeled", unlabeled)):
            usable = [s for s in samples if min(s.lr.shape[1:]) >= patch]
            if samples and not usable:
                raise KdedgeError("no %s training image is at least %d px (LR) on a side" % (name, patch),
                                  fix="lower --patch or add larger images")
            weights = np.array([s.lr.shape[1] * s.lr.shape[2] for s in usable], dtype=np.float64)
            self.sources.append((usable, weights / weights.sum() if len(usable) else weights))
        if not self.sources[0][0] and not self.sources[1][0]:
            raise KdedgeError("no training images left after filtering", fix="check --data and --patch")
        self.unlabeled_ratio = unlabeled_ratio if self.sources[1][0] else 0.0
        if not self.sources[0][0]:
            self.unlabeled_ratio = 1.0
        self.need_teacher = need_teacher
        self.need_teacher_input = need_teacher_input

    def draw(self, batch: int, rng: np.random.Generator) -> List[Tuple[Sample, bool, int, int, int]]:
        """The random part of a batch: (sample, labelled, y, x, k) per patch, LR top-left corner and one of
        the 8 flips/rotations. `sample` crops these on the CPU; kdedge.distill.device_patches on the GPU."""
        p = self.patch
        n_unl = int(round(batch * self.unlabeled_ratio))
        picks: List[Tuple[Sample, bool]] = []
        for (samples, weights), count in zip(self.sources, (batch - n_unl, n_unl)):
            if count:
                for i in rng.choice(len(samples), size=count, p=weights):
                    picks.append((samples[i], samples[i].hr is not None))
        draws = []
        for sample, labelled in picks:
            h, w = sample.lr.shape[1:]
            y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
            draws.append((sample, labelled, y, x, int(rng.integers(0, _DIHEDRAL))))
        return draws

    def sample(self, batch: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """A batch dict of float32 arrays: lr, hr, has_hr, and teacher / teacher_input when asked for."""
        p, s = self.patch, self.scale
        draws = self.draw(batch, rng)
        lr, hr, has_hr, teacher, tin = [], [], [], [], []
        for sample, labelled, y, x, k in draws:
            lr.append(_augment(sample.lr[:, y:y + p, x:x + p], k))
            t = None
            if sample.teacher is not None and self.need_teacher:
                t = _augment(sample.teacher[:, s * y:s * (y + p), s * x:s * (x + p)], k).astype(np.float32)
                teacher.append(t)
            if labelled:
                hr.append(_augment(sample.hr[:, s * y:s * (y + p), s * x:s * (x + p)], k))
            else:  # placeholder target; its loss is masked out
                hr.append(t if t is not None else np.zeros((lr[-1].shape[0], s * p, s * p), np.float32))
            has_hr.append(1.0 if labelled else 0.0)
            if self.need_teacher_input:
                tin.append(_augment(sample.lr_u8[y:y + p, x:x + p].transpose(2, 0, 1), k).astype(np.float32) / 255.0)
        out = {
            "lr": np.ascontiguousarray(np.stack(lr)),
            "hr": np.ascontiguousarray(np.stack(hr)),
            "has_hr": np.array(has_hr, dtype=np.float32),
        }
        if self.need_teacher:
            if len(teacher) != len(draws):
                raise RuntimeError("teacher labels missing for some samples (cache not filled)")
            out["teacher"] = np.ascontiguousarray(np.stack(teacher))
        if self.need_teacher_input:
            out["teacher_input"] = np.ascontiguousarray(np.stack(tin))  # RGB [0, 1]
        return out


@dataclass
class ValPair:
    name: str
    lr: np.ndarray  # uint8 LR (protocol)
    hr_y: np.ndarray  # float64 Y of HR, [0, 255]


def make_val_pairs(images: List[Image], scale: int) -> List[ValPair]:
    from kdedge.data.color import rgb_to_y
    from kdedge.data.imresize import bicubic_downscale, modcrop

    pairs = []
    for img in images:
        hr = modcrop(img.pixels, scale)
        pairs.append(ValPair(img.name, bicubic_downscale(hr, scale), rgb_to_y(hr)))
    return pairs


def validate_psnr(model, pairs: List[ValPair]) -> float:
    """Mean Y-PSNR (protocol of kdedge.evaluate: uint8-rounded SR, shave = scale) of an SRModel."""
    from kdedge.evaluate import TorchUpscaler, super_resolve
    from kdedge.metrics import psnr

    up = TorchUpscaler(model, device=next(model.module.parameters()).device.type)
    values = [psnr(super_resolve(up, p.lr)["y"], p.hr_y, shave=model.scale) for p in pairs]
    return float(np.mean(values))
