"""`SRModel`: a network plus what a caller must know to run it (spandrel's descriptor idea).

Every model kdedge handles, teacher or student, project-made or third-party, is wrapped in one.
Its `__call__` is the contract: a float tensor N x C x H x W with values in [0, 1] (C = 3 for an RGB
model, 1 for a Y-channel model, Y being MATLAB's rgb2ycbcr luma / 255) goes in; N x C x sH x sW in
[0, 1] comes out. Differences between models (RLFN works in [0, 255], some need sizes that are a
multiple of 4) are hidden here, once, rather than in every caller. The fields become the bundle
manifest on export.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict


@dataclass
class SRModel:
    module: Any  # torch.nn.Module
    arch: str  # registry name, or "spandrel:<id>" for third-party architectures
    scale: int
    color: str = "rgb"  # "rgb" or "y"
    value_range: float = 1.0  # the range the module itself works in (RLFN: 255)
    size_multiple: int = 1  # input H and W must be multiples of this (padded and cropped here)
    model_args: Dict[str, Any] = field(default_factory=dict)  # rebuilds the module with create_model
    meta: Dict[str, Any] = field(default_factory=dict)  # provenance: weights file, sha256, teacher, ...

    @property
    def in_channels(self) -> int:
        return 1 if self.color == "y" else 3

    def __call__(self, x):
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        y = self.module(x * self.value_range) if self.value_range != 1.0 else self.module(x)
        if self.value_range != 1.0:
            y = y / self.value_range
        if ph or pw:
            y = y[..., : h * self.scale, : w * self.scale]
        return y

    def eval(self) -> "SRModel":
        self.module.eval()
        return self

    def to(self, *args, **kwargs) -> "SRModel":
        self.module.to(*args, **kwargs)
        return self
