"""Activation-range equalization: per-channel rescaling across each ReLU before INT8, the function unchanged.

TensorRT's and ONNX Runtime's INT8 activations are per-tensor: one scale for all channels of a
conv + ReLU output. A channel whose outputs span a tenth of the tensor's range uses a tenth of the
127 codes, and its rounding noise is ten times larger relative to its signal. ReLU commutes with a
positive scale (relu(s z) = s relu(z)), so channel c of conv j can be multiplied by s_c (its weights
and bias) and the input column c of conv j+1 divided by s_c: the float network computes exactly the
same thing, and the quantized one spends the grid evenly. This is the cross-layer scaling of Nagel et
al., "Data-Free Quantization Through Weight Equalization and Bias Correction" (ICCV 2019), applied to
activation ranges (the per-channel weights need no equalizing here).

It is not free: dividing conv j+1's column c by s_c makes those weights small next to the others of the
same output channel, whose per-channel INT8 scale is set by the largest. `alpha` (s_c = (R / r_c)^alpha,
R the tensor's largest channel range) and `max_scale` trade one against the other; QAT then fine-tunes
from the equalized start (`kdedge qat --equalize ALPHA`).

Written here rather than taken from a library: AIMET's and NNCF's cross-layer equalization balance
*weight* ranges for per-tensor weights; kdedge's weights are per-channel and its problem is the
per-tensor activation range, on a fused anchor network AIMET/NNCF do not load (and neither installs here).
"""
from __future__ import annotations

import copy
from typing import Iterable, List

import torch

DEAD = 1e-6  # a channel never above this on the batches is left as it is (nothing to equalize)


@torch.no_grad()
def channel_ranges(net, batches: Iterable[torch.Tensor]) -> List[torch.Tensor]:
    """Per-channel max of each ReLU output of a fused anchor `net` (body index 1, 3, ...) over `batches`."""
    ranges: List[torch.Tensor] = []
    for x in batches:
        h, k = x, 0
        for i, m in enumerate(net.body):
            h = m(h)
            if i % 2:
                r = h.amax(dim=(0, 2, 3))
                if k < len(ranges):
                    ranges[k] = torch.maximum(ranges[k], r)
                else:
                    ranges.append(r)
                k += 1
    return ranges


def scales(ranges: List[torch.Tensor], alpha: float, max_scale: float) -> List[torch.Tensor]:
    """s_c = (R / r_c)^alpha clamped to [1, max_scale] per activation (1 for dead channels)."""
    out = []
    for r in ranges:
        live = r > DEAD
        s = torch.ones_like(r)
        if live.any():
            s[live] = (r.max() / r[live]) ** alpha
        out.append(s.clamp(1.0, max_scale))
    return out


@torch.no_grad()
def equalize(net, batches, alpha: float = 1.0, max_scale: float = 8.0):
    """A copy of the fused anchor `net` (conv, ReLU, ..., conv body + `tail`; see qat._plain_anchor) whose
    ReLU outputs are rescaled per channel toward equal ranges on `batches`; same float function."""
    if alpha < 0 or max_scale < 1:
        raise ValueError("alpha must be >= 0 and max_scale >= 1 (got %g, %g)" % (alpha, max_scale))
    net = copy.deepcopy(net)
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)] + [net.tail]
    relus = [m for i, m in enumerate(net.body) if i % 2]
    if len(convs) != len(relus) + 1 or not all(type(m).__name__ == "ReLU" for m in relus):
        raise ValueError("equalize needs a fused conv/ReLU chain (centred FloorReLU outputs do not commute with scaling)")
    batches = list(batches)
    for j, s in enumerate(scales(channel_ranges(net, batches), alpha, max_scale)):
        convs[j].weight.mul_(s.view(-1, 1, 1, 1))
        convs[j].bias.mul_(s)
        convs[j + 1].weight.div_(s.view(1, -1, 1, 1))
    return net
