"""IMDN, the Information Multi-Distillation Network, written for kdedge so its published weights load.

Paper: Zheng Hui, Xinbo Gao, Yunchu Yang, Xiumei Wang, "Lightweight Image Super-Resolution with
Information Multi-distillation Network", ACM Multimedia 2019 (arXiv:1909.11856).
Origin of the architecture and weights: github.com/Zheng222/IMDN @ 8f158e6a5ac9db6e5857d9159fd4a6c4214da574,
`model/architecture.py` (class IMDN) and `model/block.py` (IMDModule, CCALayer); weights in `checkpoints/`.
This is an independent re-implementation: module and parameter names follow the original so that
its state dicts load with `strict=True`; the code itself is kdedge's. The upstream repository ships
no licence file in the snapshot read here: treat the weights as research artefacts and check upstream
before redistributing them.

Shape of the network (nf = 64, 6 blocks in the paper):
  fea_conv 3x3 -> IMDB1..IMDBn -> c (1x1 over the concatenated block outputs, LeakyReLU 0.05)
  -> LR_conv 3x3 (+ fea_conv output) -> upsampler (3x3 conv to out*s^2 channels, pixel shuffle).
Each IMDB: c1..c3 3x3 convs each keep a quarter of their channels ("distilled") and pass the rest on;
c4 makes the last quarter; contrast-aware channel attention (CCA: per-channel std + mean ->
1x1 -> ReLU -> 1x1 -> sigmoid) reweights the concatenation; c5 (1x1) fuses; a residual closes it.
The published weights work on RGB in [0, 1]; the `.pth` keys carry DataParallel's `module.` prefix,
which `kdedge.models.weights.canonicalize` removes.

`detect(state_dict)` reads every hyper-parameter off the tensor shapes (spandrel style) and then
checks that the full key set and every shape match a network built with them, so nothing else is
taken for IMDN.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from kdedge.models import register_model
from kdedge.models.weights import split_upsampler_channels, state_dict_matches

# What a caller must know to run the published weights (fields of kdedge.models.descriptor.SRModel).
DESCRIPTOR = {"color": "rgb", "value_range": 1.0, "size_multiple": 1}
PAPER = "Hui et al., Lightweight Image Super-Resolution with Information Multi-distillation Network, ACM MM 2019"


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=True)


class ContrastChannelAttention(nn.Module):
    """CCA: channel weights from the per-channel standard deviation plus mean (the "contrast")."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        # Name and indices (conv_du.0 / conv_du.2) match the published state dicts.
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        # Population std (divide by H*W), as the original computes it; not torch.std's unbiased one.
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.conv_du(std + mean)


class IMDBlock(nn.Module):
    """Information multi-distillation block: progressive channel splitting, CCA, 1x1 fusion."""

    def __init__(self, channels: int, distillation_rate: float = 0.25):
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = _conv(channels, channels, 3)
        self.c2 = _conv(self.remaining, channels, 3)
        self.c3 = _conv(self.remaining, channels, 3)
        self.c4 = _conv(self.remaining, self.distilled, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = _conv(self.distilled * 4, channels, 1)
        self.cca = ContrastChannelAttention(self.distilled * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        d4 = self.c4(r3)
        return self.c5(self.cca(torch.cat([d1, d2, d3, d4], dim=1))) + x


class IMDN(nn.Module):
    def __init__(self, scale: int = 4, nf: int = 64, num_modules: int = 6, in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        self.scale = scale
        self.num_modules = num_modules
        self.fea_conv = _conv(in_channels, nf, 3)
        # Blocks are attributes IMDB1..IMDBn (not a ModuleList) because the published keys are.
        for i in range(1, num_modules + 1):
            setattr(self, "IMDB%d" % i, IMDBlock(nf))
        self.c = nn.Sequential(nn.Conv2d(nf * num_modules, nf, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = _conv(nf, nf, 3)
        self.upsampler = nn.Sequential(_conv(nf, out_channels * scale * scale, 3), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs = []
        h = fea
        for i in range(1, self.num_modules + 1):
            h = getattr(self, "IMDB%d" % i)(h)
            outs.append(h)
        lr = self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea
        return self.upsampler(lr)


@register_model
def imdn(scale: int = 4, nf: int = 64, num_modules: int = 6, in_channels: int = 3, out_channels: int = 3) -> IMDN:
    """IMDN (ACM MM 2019); the published x2/x3/x4 weights use the defaults nf=64, num_modules=6."""
    return IMDN(scale=scale, nf=nf, num_modules=num_modules, in_channels=in_channels, out_channels=out_channels)


def detect(state_dict: Dict[str, Any]) -> Optional["tuple[str, Dict[str, Any]]"]:
    """("imdn", hyper-parameters) of an IMDN state dict (canonical: no `module.` prefix), or None."""
    needed = ("fea_conv.weight", "IMDB1.c1.weight", "IMDB1.cca.conv_du.0.weight", "c.0.weight", "LR_conv.weight", "upsampler.0.weight")
    if not all(k in state_dict for k in needed):
        return None
    fea = state_dict["fea_conv.weight"]
    if fea.ndim != 4:
        return None
    nf, in_channels = int(fea.shape[0]), int(fea.shape[1])
    blocks = {int(m.group(1)) for k in state_dict for m in [re.match(r"IMDB(\d+)\.", k)] if m}
    num_modules = len(blocks)
    if blocks != set(range(1, num_modules + 1)):
        return None
    split = split_upsampler_channels(int(state_dict["upsampler.0.weight"].shape[0]), in_channels)
    if split is None:
        return None
    scale, out_channels = split
    args = dict(scale=scale, nf=nf, num_modules=num_modules, in_channels=in_channels, out_channels=out_channels)
    return ("imdn", args) if state_dict_matches(IMDN, args, state_dict) else None

