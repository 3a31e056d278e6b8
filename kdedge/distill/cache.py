"""The teacher-output cache: each training image is labelled by the teacher once, not every step.

An online teacher forward costs several student steps on a CPU; a cached label costs one crop
(`kdedge.distill.data.PatchSampler` crops and flips it with the LR patch). Labels are the teacher's
output on the *whole* LR image, converted to the student's colour space (an RGB teacher teaches a Y
student through MATLAB's Y), stored as float16 (half the memory; 1e-3 error, far below 8-bit steps).

Keys are content hashes: sha256 of the LR pixels + the teacher's hash (architecture and weights) +
the student colour space. Any LR image can be labelled, with or without ground truth: footage frames
(issue 7) join the same cache. The disk mode keeps one `.npy` per label under
`<cache_dir>/<teacher hash>/`, written atomically, so an interrupted labelling run resumes where it
stopped and several runs with the same teacher share the work.

Flip/rotation reuse assumes the teacher is nearly equivariant to the 8 dihedral transforms; SR
networks trained with those augmentations are (IMDN: within ~0.05 dB), and the error is a small
label noise, not a bias.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np

from kdedge.errors import KdedgeError


def default_cache_dir() -> Path:
    return Path(os.environ.get("KDEDGE_CACHE", Path.home() / ".cache" / "kdedge")) / "teacher"


def model_hash(model) -> str:
    """sha256 of an SRModel's architecture, arguments and weights (the cache's notion of 'same teacher')."""
    h = hashlib.sha256()
    h.update(repr((model.arch, model.scale, model.color, sorted(model.model_args.items()))).encode())
    for name, t in sorted(model.module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def image_key(lr_u8: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(repr(lr_u8.shape).encode())
    h.update(np.ascontiguousarray(lr_u8).tobytes())
    return h.hexdigest()[:24]


def rgb_to_y_torch(x):
    """MATLAB Y / 255 of an N x 3 x H x W RGB tensor in [0, 1] (the weights of kdedge.data.color)."""
    from kdedge.data.color import Y_WEIGHTS

    wr, wg, wb = Y_WEIGHTS
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (16.0 + wr * r + wg * g + wb * b) / 255.0


def teacher_forward(teacher, rgb01, student_color: str):
    """Teacher output for RGB [0, 1] inputs, in the student's colour space, clipped to [0, 1]."""
    if teacher.color == "y":
        out = teacher(rgb_to_y_torch(rgb01))
    else:
        out = teacher(rgb01)
    out = out.clamp(0.0, 1.0)
    if teacher.color == "rgb" and student_color == "y":
        out = rgb_to_y_torch(out)
    return out


def check_teacher(teacher, scale: int, color: str, source: str = "teacher") -> None:
    """Clear errors for a teacher that cannot teach this student."""
    if teacher.scale != scale:
        raise KdedgeError("%s is an x%d model but the student is x%d" % (source, teacher.scale, scale),
                          fix="use a teacher of the same scale, or set --scale %d" % teacher.scale)
    if teacher.color == "y" and color == "rgb":
        raise KdedgeError("%s works on the Y channel only and cannot teach an RGB student" % source,
                          fix="use --color y, or an RGB teacher")


class TeacherCache:
    """Teacher labels of whole LR images, in memory or on disk, keyed by content."""

    def __init__(self, teacher, student_color: str, mode: str = "memory", folder: Optional[str] = None,
                 device: str = "cpu"):
        if mode not in ("memory", "disk"):
            raise ValueError("cache mode must be 'memory' or 'disk'")
        self.teacher, self.color, self.mode, self.device = teacher, student_color, mode, device
        self.teacher_hash = model_hash(teacher)
        self.folder = Path(folder or default_cache_dir()) / ("%s-%s" % (self.teacher_hash, student_color))
        self._memory: Dict[str, np.ndarray] = {}
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        return self.folder / (key + ".npy")

    def label(self, lr_u8: np.ndarray) -> np.ndarray:
        """float16 C x sH x sW teacher output for one uint8 RGB LR image (computed at most once)."""
        key = image_key(lr_u8)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        out = self._read(key) if self.mode == "disk" else None
        if out is None:
            self.misses += 1
            out = self._compute(lr_u8)
            if self.mode == "disk":
                self._write(key, out)
        else:
            self.hits += 1
        if self.mode == "memory":
            self._memory[key] = out
        return out

    def _compute(self, lr_u8: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(lr_u8.transpose(2, 0, 1))).float().div_(255.0)[None].to(self.device)
        with torch.inference_mode():
            y = teacher_forward(self.teacher, x, self.color)
        return y[0].float().cpu().numpy().astype(np.float16)

    def _read(self, key: str) -> Optional[np.ndarray]:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return np.load(str(path), allow_pickle=False)
        except (OSError, ValueError):  # a corrupt entry is recomputed, not fatal
            return None

    def _write(self, key: str, value: np.ndarray) -> None:
        from kdedge.common import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        atomic_write_bytes(self._path(key), buf.getvalue())

    def fill(self, samples: Iterable, progress: bool = True, desc: str = "teacher labels") -> None:
        """Label every sample (sets `sample.teacher`), with a progress bar."""
        samples = list(samples)
        iterator = samples
        if progress:
            from tqdm import tqdm

            iterator = tqdm(samples, desc=desc, unit="img", leave=False)
        for s in iterator:
            s.teacher = self.label(s.lr_u8)
