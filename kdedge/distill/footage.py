"""The user's own footage as training data: frames with no ground truth, labelled by the teacher.

A deployment camera produces hours of video and no high-resolution truth; the teacher's output on
its frames is the only target there is, and it is in-domain (the same scene, optics, noise and
compression the student will face). This module turns footage into training frames:

- read any source the runtime reads (video files, image folders, `v4l2://`, `rtsp://`, `csi://`,
  `test://`), through `kdedge.runtime.sources.open_source`, so training and deployment decode alike;
- sample: every `stride`-th frame, plus any frame that starts a new scene (a large change of a
  small grey thumbnail), minus near-duplicates of the last kept frame (a static camera would
  otherwise fill the set with one picture);
- optionally downscale to the size the camera will feed at deployment (`size`), with area
  averaging, the honest model of a sensor binning to a lower resolution;
- split off the *last* `holdout` fraction of each source for validation (contiguous in time, so
  neighbouring frames do not leak across the split).

A source that fails mid-way is reported in a warning and the frames read before the failure are
kept. Labelling is the teacher-output cache's job (`kdedge.distill.cache`): frames join it like any
LR image, keyed by content, so an interrupted labelling run resumes where it stopped.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from kdedge.common import parse_size
from kdedge.errors import KdedgeError


@dataclass
class FootageOptions:
    stride: int = 5  # keep every stride-th frame (plus scene changes)
    scene_threshold: float = 30.0  # mean |thumbnail difference| (grey levels) that marks a new scene
    dedup_threshold: float = 1.0  # a frame closer than this to the last kept one is a duplicate
    max_frames: int = 2000  # per source, after sampling
    size: Optional[Tuple[int, int]] = None  # (width, height) the camera feeds at deployment
    holdout: float = 0.1  # last fraction of each source kept for validation


@dataclass
class FootageFrame:
    name: str  # "<source>#<frame index>"
    pixels: np.ndarray  # uint8 H x W x 3, RGB
    source: str
    index: int


@dataclass
class Footage:
    train: List[FootageFrame] = field(default_factory=list)
    val: List[FootageFrame] = field(default_factory=list)
    read: int = 0  # frames decoded
    failed_sources: List[str] = field(default_factory=list)


def _thumbnail(bgr: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def _resize_to(bgr: np.ndarray, size: Optional[Tuple[int, int]]) -> np.ndarray:
    import cv2

    if size is None:
        return bgr
    w, h = size
    if bgr.shape[1] == w and bgr.shape[0] == h:
        return bgr
    interp = cv2.INTER_AREA if w < bgr.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(bgr, (w, h), interpolation=interp)


def sample_source(uri: str, opts: FootageOptions) -> Tuple[List[FootageFrame], int, Optional[str]]:
    """Sampled frames of one source, the number of frames decoded, and an error message if it failed."""
    from kdedge.runtime.sources import EOS, OK, open_source

    kept: List[FootageFrame] = []
    last_thumb = prev_thumb = None
    index = -1
    error = None
    try:
        source = open_source(uri).open()
    except KdedgeError as exc:
        return [], 0, str(exc)
    with source:
        while len(kept) < opts.max_frames:
            status, frame = source.read()
            if status == EOS:
                break
            if status != OK or frame is None:
                error = getattr(source, "error", None) or "read failed"
                break
            index += 1
            thumb = _thumbnail(frame)
            scene_change = prev_thumb is not None and float(np.abs(thumb - prev_thumb).mean()) > opts.scene_threshold
            prev_thumb = thumb
            if index % opts.stride != 0 and not scene_change:
                continue
            if last_thumb is not None and float(np.abs(thumb - last_thumb).mean()) < opts.dedup_threshold:
                continue
            last_thumb = thumb
            rgb = np.ascontiguousarray(_resize_to(frame, opts.size)[:, :, ::-1])
            kept.append(FootageFrame("%s#%06d" % (uri, index), rgb, uri, index))
    return kept, index + 1, error


def load_footage(uris: Sequence[str], opts: Optional[FootageOptions] = None, min_size: int = 0) -> Footage:
    """Sample every source, split each into train / held-out, and report failures without losing frames."""
    opts = opts or FootageOptions()
    if opts.stride < 1:
        raise KdedgeError("footage stride must be >= 1 (got %d)" % opts.stride)
    if not 0.0 <= opts.holdout < 1.0:
        raise KdedgeError("footage holdout must be in [0, 1) (got %r)" % opts.holdout)
    result = Footage()
    for uri in uris:
        frames, read, error = sample_source(uri, opts)
        result.read += read
        if error:
            result.failed_sources.append(uri)
            warnings.warn("footage %s failed after %d frame(s): %s; keeping the %d sampled frame(s) read before it"
                          % (uri, read, error, len(frames)), stacklevel=2)
        frames = [f for f in frames if min(f.pixels.shape[:2]) >= min_size]
        n_val = int(round(len(frames) * opts.holdout)) if len(frames) > 1 else 0
        split = len(frames) - n_val
        result.train += frames[:split]
        result.val += frames[split:]
    if not result.train:
        raise KdedgeError("no usable footage frame in %s (%d decoded)" % (", ".join(uris), result.read),
                          fix="check the URIs (video file, image folder, v4l2://, rtsp://) and --patch")
    return result


def footage_options(cfg) -> FootageOptions:
    """FootageOptions from a TrainConfig's footage_* fields."""
    size = None
    if cfg.footage_size:
        size = parse_size(cfg.footage_size, "footage_size")
    return FootageOptions(stride=cfg.footage_stride, size=size, holdout=cfg.footage_holdout)


def agreement_psnr(model, samples: Sequence) -> float:
    """Validation without ground truth: Y-PSNR of the student against the teacher on held-out frames.

    `samples` are `kdedge.distill.data.Sample`s whose `teacher` label the cache has filled (the
    teacher's output in the student's colour space, [0, 1]); both sides are rounded to uint8 as SR
    outputs are judged. High agreement means the student learnt what the teacher does on this
    camera; it says nothing about the truth, which is why a clip with ground truth is reported too.
    """
    from kdedge.data.color import rgb_to_y
    from kdedge.evaluate import TorchUpscaler, super_resolve
    from kdedge.metrics import psnr

    up = TorchUpscaler(model, device=next(model.module.parameters()).device.type)
    values = []
    for sample in samples:
        label = np.clip(np.round(sample.teacher.astype(np.float64) * 255.0), 0, 255)
        teacher_y = label[0] if label.shape[0] == 1 else rgb_to_y(label.transpose(1, 2, 0).astype(np.uint8))
        values.append(psnr(super_resolve(up, sample.lr_u8)["y"], teacher_y, shave=model.scale))
    return float(np.mean(values))
