"""RLFN and RLFN-S, the Residual Local Feature Network, written for kdedge so its published weights load.

Paper: Fangyuan Kong, Mingxi Li, Songwei Liu, Ding Liu, Jingwen He, Yang Bai, Fangmin Chen, Lean Fu,
"Residual Local Feature Network for Efficient Super-Resolution", CVPR Workshops (NTIRE) 2022
(arXiv:2205.07514); winner of the NTIRE 2022 efficient SR challenge (runtime track).
Origin of the architecture and weights: github.com/bytedance/RLFN @ bccfde91bf8b2de80789ec033a029e6f2a932330,
`model/rlfn.py`, `model/rlfn_s.py`, `model/block.py` (RLFB, ESA); weights in `model_zoo/`
(ByteDance copyright headers; check the upstream licence before redistributing the weights).
This is an independent re-implementation: parameter names follow the original so its state dicts
load with `strict=True`; the code itself is kdedge's.

Shape of the network (52 channels for RLFN, 48 for RLFN-S; otherwise identical):
  conv_1 3x3 -> block_1..block_6 (RLFB) -> conv_2 3x3 (+ conv_1 output) -> upsampler (3x3 conv, pixel shuffle).
RLFB: three 3x3 convs with LeakyReLU 0.05 and a residual, a 1x1 conv (c5), then enhanced spatial
attention (ESA: 1x1 reduce to 16 channels, strided 3x3, 7x7/3 max-pool, 3x3, bilinear upsampling,
plus a 1x1 skip, 1x1 expand, sigmoid mask).
The published weights work on RGB in **[0, 255]** (their test script multiplies by 255), which the
descriptor's `value_range = 255` hides from callers. ESA's strided conv and 7x7 pooling need an
input of at least 15x15 pixels.

RLFN-S is RLFN at 48 channels: a state dict tells the two apart only by its width, so `detect`
reports width 48 as `rlfn_s` and any other width as `rlfn`.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdedge.models import register_model
from kdedge.models.weights import split_upsampler_channels, state_dict_matches

DESCRIPTOR = {"color": "rgb", "value_range": 255.0, "size_multiple": 1}
PAPER = "Kong et al., Residual Local Feature Network for Efficient Super-Resolution, CVPRW 2022"
MIN_SIZE = 15  # smallest LR side ESA's stride-2 conv + 7x7/3 max-pool accept
RLFN_S_WIDTH = 48


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=True)


class ESA(nn.Module):
    """Enhanced spatial attention, RLFN's trimmed variant (no conv_max / conv3_ of RFANet's original)."""

    def __init__(self, esa_channels: int, channels: int):
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(channels, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        coarse = F.max_pool2d(self.conv2(reduced), kernel_size=7, stride=3)
        coarse = F.interpolate(self.conv3(coarse), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(coarse + self.conv_f(reduced)))


class RLFB(nn.Module):
    """Residual local feature block."""

    def __init__(self, channels: int, esa_channels: int = 16):
        super().__init__()
        self.c1_r = _conv(channels, channels, 3)
        self.c2_r = _conv(channels, channels, 3)
        self.c3_r = _conv(channels, channels, 3)
        self.c5 = _conv(channels, channels, 1)
        self.esa = ESA(esa_channels, channels)
        self.act = nn.LeakyReLU(0.05, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out)) + x
        return self.esa(self.c5(out))


class RLFN(nn.Module):
    def __init__(
        self,
        scale: int = 4,
        feature_channels: int = 52,
        num_blocks: int = 6,
        esa_channels: int = 16,
        in_channels: int = 3,
        out_channels: int = 3,
    ):
        super().__init__()
        self.scale = scale
        self.num_blocks = num_blocks
        self.conv_1 = _conv(in_channels, feature_channels, 3)
        # block_1..block_n as attributes (not a ModuleList) because the published keys are.
        for i in range(1, num_blocks + 1):
            setattr(self, "block_%d" % i, RLFB(feature_channels, esa_channels))
        self.conv_2 = _conv(feature_channels, feature_channels, 3)
        self.upsampler = nn.Sequential(_conv(feature_channels, out_channels * scale * scale, 3), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_1(x)
        h = fea
        for i in range(1, self.num_blocks + 1):
            h = getattr(self, "block_%d" % i)(h)
        return self.upsampler(self.conv_2(h) + fea)


@register_model
def rlfn(
    scale: int = 4,
    feature_channels: int = 52,
    num_blocks: int = 6,
    esa_channels: int = 16,
    in_channels: int = 3,
    out_channels: int = 3,
) -> RLFN:
    """RLFN (CVPRW 2022), 52 channels; published weights work in [0, 255]."""
    return RLFN(scale, feature_channels, num_blocks, esa_channels, in_channels, out_channels)


@register_model
def rlfn_s(
    scale: int = 4,
    feature_channels: int = RLFN_S_WIDTH,
    num_blocks: int = 6,
    esa_channels: int = 16,
    in_channels: int = 3,
    out_channels: int = 3,
) -> RLFN:
    """RLFN-S: the same network at 48 channels."""
    return RLFN(scale, feature_channels, num_blocks, esa_channels, in_channels, out_channels)


def detect(state_dict: Dict[str, Any]) -> Optional["tuple[str, Dict[str, Any]]"]:
    """(`rlfn` or `rlfn_s`, hyper-parameters) of an RLFN state dict, or None if it is not one."""
    needed = ("conv_1.weight", "block_1.c1_r.weight", "block_1.esa.conv1.weight", "conv_2.weight", "upsampler.0.weight")
    if not all(k in state_dict for k in needed):
        return None
    first = state_dict["conv_1.weight"]
    if first.ndim != 4:
        return None
    width, in_channels = int(first.shape[0]), int(first.shape[1])
    blocks = {int(m.group(1)) for k in state_dict for m in [re.match(r"block_(\d+)\.", k)] if m}
    num_blocks = len(blocks)
    if blocks != set(range(1, num_blocks + 1)):
        return None
    split = split_upsampler_channels(int(state_dict["upsampler.0.weight"].shape[0]), in_channels)
    if split is None:
        return None
    scale, out_channels = split
    args = dict(
        scale=scale,
        feature_channels=width,
        num_blocks=num_blocks,
        esa_channels=int(state_dict["block_1.esa.conv1.weight"].shape[0]),
        in_channels=in_channels,
        out_channels=out_channels,
    )
    if not state_dict_matches(RLFN, args, state_dict):
        return None
    return ("rlfn_s" if width == RLFN_S_WIDTH else "rlfn"), args
