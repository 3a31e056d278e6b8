"""Tiny SR networks for the export tests (no checkpoint needed): an x2 Y-channel anchor net.

Layout as the students' (conv 1->F, ReLU, conv F->F, ReLU, conv F->4, + the input repeated 4x, pixel
shuffle, clamp): the same ops the export must handle (first/last conv, residual add, pixel-shuffle
tail, output clip). Weights are seeded random, scaled so the output stays near a nearest-neighbour
upscale of the input, as a trained student's does. Imported by the other test_export_* files.
"""
from __future__ import annotations

import numpy as np


def tiny_anchor(features: int = 8, seed: int = 0, scale: int = 2):
    """An SRModel around the tiny anchor net (torch imported here, so collection stays light)."""
    import torch
    from torch import nn

    from kdedge.models.descriptor import SRModel

    class Anchor(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Conv2d(1, features, 3, padding=1)
            self.body = nn.Conv2d(features, features, 3, padding=1)
            self.tail = nn.Conv2d(features, scale * scale, 3, padding=1)
            self.shuffle = nn.PixelShuffle(scale)
            self.scale = scale

        def forward(self, x):
            y = torch.relu(self.head(x))
            y = torch.relu(self.body(y))
            y = self.tail(y) + x.repeat(1, self.scale * self.scale, 1, 1)
            return self.shuffle(y).clamp(0.0, 1.0)

    torch.manual_seed(seed)
    net = Anchor()
    with torch.no_grad():
        net.tail.weight.mul_(0.3)
        net.tail.bias.zero_()
    return SRModel(module=net, arch="test_anchor", scale=scale, color="y",
                   model_args={"features": features}, meta={"test": True})


def smooth_images(n: int, h: int = 48, w: int = 64, seed: int = 0):
    """`n` smooth-ish random Y images in [0, 1] (low-frequency noise + edges), float32 H x W."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(n):
        a, b, c = rng.random(3)
        img = 0.5 + 0.3 * np.sin(xx * (0.05 + 0.2 * a) + 3 * b) * np.cos(yy * (0.05 + 0.2 * c))
        img += 0.2 * (xx > w * rng.random())
        img += 0.03 * rng.standard_normal((h, w))
        out.append(np.clip(img, 0, 1).astype(np.float32))
    return out


def run_onnx(model, feed, backend: str = "ort-cpu", precision: str = "fp32") -> np.ndarray:
    """First output of an ONNX path or ModelProto on a runtime CPU backend (export's own `open_onnx`)."""
    from kdedge.export.onnx_export import open_onnx

    with open_onnx(model, backend, precision) as be:
        return next(iter(be.infer(feed).values()))
