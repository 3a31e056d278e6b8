"""Training patches cut where the training runs: every image packed once into padded tensors on the
device, each batch gathered by a few indexing kernels instead of a Python loop over patches.

Why: on a GPU a step of these small students costs kernel launches, not arithmetic, and the numpy
sampler's per-patch loop (1.8 ms for 64 patches on this CPU) plus three host-to-device copies grows
with the batch, so larger batches did not come for free (a lent H200 ran ~15 ms per step,
benchmarks/experiments/results/gpu_long.md). Here the random draws are `PatchSampler.draw`'s, so a
batch holds exactly the patches the numpy path would cut (tests/test_distill.py checks equality),
and the 8 flips/rotations are applied to the index grids, not to the data: each output pixel reads
its source pixel directly.

The teacher's RGB input for online distillation (`need_teacher_input`) stays on the numpy path, and so
does training on a CPU, where advanced indexing is slower than numpy's crops (64 patches of 48 px:
12.7 against 2.2 ms on this CPU). On CUDA this path has not been executed yet: no GPU here.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch

from kdedge.distill.data import _DIHEDRAL, PatchSampler, _augment


def _pack(arrays: List[Optional[np.ndarray]], shapes, dtype, device) -> torch.Tensor:
    """N x C x Hmax x Wmax, zero-padded (a patch never reads the padding: draws stay inside each image)."""
    c = shapes[0][0]
    h, w = max(s[1] for s in shapes), max(s[2] for s in shapes)
    out = torch.zeros((len(arrays), c, h, w), dtype=dtype)
    for i, (a, s) in enumerate(zip(arrays, shapes)):
        if a is not None:
            out[i, :, :s[1], :s[2]] = torch.from_numpy(np.ascontiguousarray(a)).to(dtype)
    return out.to(device)


def _grids(side: int, device) -> torch.Tensor:
    """8 x 2 x side x side: for each flip/rotation k, the (row, col) inside the crop each output pixel reads,
    made by the numpy sampler's own `_augment` applied to the index grids (so both paths agree by construction)."""
    ij = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"))
    return torch.from_numpy(np.stack([np.ascontiguousarray(_augment(ij, k)) for k in range(_DIHEDRAL)])).long().to(device)


class DevicePatches:
    """`sample(batch, rng)` -> dict of tensors on `device`, the same batch as `sampler.sample` would give."""

    def __init__(self, sampler: PatchSampler, device):
        if sampler.need_teacher_input:
            raise ValueError("DevicePatches does not cut the teacher's RGB input; use the numpy sampler")
        self.sampler, self.device, s = sampler, torch.device(device), sampler.scale
        samples = [x for source, _ in sampler.sources for x in source]
        self.row = {id(x): i for i, x in enumerate(samples)}
        lr_shapes = [x.lr.shape for x in samples]
        hr_shapes = [(x.lr.shape[0], s * x.lr.shape[1], s * x.lr.shape[2]) for x in samples]
        self.lr = _pack([x.lr for x in samples], lr_shapes, torch.float32, self.device)
        self.hr = _pack([x.hr for x in samples], hr_shapes, torch.float32, self.device)
        self.teacher = None
        if sampler.need_teacher:
            if any(x.teacher is None for x in samples):
                raise RuntimeError("teacher labels missing for some samples (cache not filled)")
            self.teacher = _pack([x.teacher for x in samples], hr_shapes, torch.float16, self.device)
        self.grid_lr, self.grid_hr = _grids(sampler.patch, self.device), _grids(s * sampler.patch, self.device)

    @staticmethod
    def _cut(images: torch.Tensor, n, y, x, k, grids) -> torch.Tensor:
        g = grids[k]  # B x 2 x p x p
        rows, cols = y[:, None, None] + g[:, 0], x[:, None, None] + g[:, 1]
        return images[n[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()  # B x C x p x p

    def sample(self, batch: int, rng: np.random.Generator) -> Dict[str, torch.Tensor]:
        draws = self.sampler.draw(batch, rng)
        s = self.sampler.scale
        n, y, x, k, has = (torch.tensor(v, device=self.device) for v in zip(*[
            (self.row[id(d[0])], d[2], d[3], d[4], 1.0 if d[1] else 0.0) for d in draws]))
        out = {"lr": self._cut(self.lr, n, y, x, k, self.grid_lr), "has_hr": has.float()}
        hr = self._cut(self.hr, n, s * y, s * x, k, self.grid_hr)
        if self.teacher is not None:
            out["teacher"] = self._cut(self.teacher, n, s * y, s * x, k, self.grid_hr).float()
            # images without ground truth get the teacher's crop as a placeholder target (masked out of the loss)
            hr = torch.where(has[:, None, None, None] > 0, hr, out["teacher"])
        out["hr"] = hr
        return out
