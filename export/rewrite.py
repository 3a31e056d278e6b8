"""Exact graph rewrites that make a model easier to quantize, tried and kept only when they measure better.

`split_identity`: a re-parameterised block (RepVGG/ECB-style, the `repanchor` student) fuses its
identity branch into the centre tap of a square 3x3 conv: W[c, c, 1, 1] += 1. That tap then dwarfs
the others (measured on the default student: per-channel max/rms ~9 against ~4 for a conv trained
plain), and per-channel INT8 weights spend their range on it. Splitting the identity back out,
conv(x; W) = conv(x; W - I) + x, is exact in float and gives the conv INT8-friendly weights; the
extra Add is cheap and, like every node, may be kept in float by the sensitivity pass. This is the
problem QARepVGG (Chu et al. 2022) describes for RepVGG; here it is fixed after training, in the
exported graph, so the FP32 file users get stays the plain fused network.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else (a.i if a.type == a.INT else default)
    return default


def split_identity(proto, min_ratio: float = 0.5) -> Tuple[object, List[str]]:
    """Return (rewritten copy, names of the convs split). Only square 3x3, stride 1, dilation 1, group 1,
    pad 1 convs whose centre diagonal holds at least `min_ratio` (on average) qualify: the identity
    must really be in there, otherwise subtracting it would create the outlier it is meant to remove."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    inits = {i.name: i for i in model.graph.initializer}
    uses = {}
    for n in model.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    nodes, split = [], []
    for n in model.graph.node:
        nodes.append(n)
        if n.op_type != "Conv" or len(n.input) < 2 or n.input[1] not in inits or uses.get(n.input[1], 0) != 1:
            continue
        w = numpy_helper.to_array(inits[n.input[1]])
        ok = (w.ndim == 4 and w.shape[0] == w.shape[1] and w.shape[2:] == (3, 3)
              and _attr(n, "group", 1) == 1 and _attr(n, "strides", [1, 1]) == [1, 1]
              and _attr(n, "dilations", [1, 1]) == [1, 1] and _attr(n, "pads", [0, 0, 0, 0]) == [1, 1, 1, 1])
        if not ok:
            continue
        idx = np.arange(w.shape[0])
        if float(np.mean(w[idx, idx, 1, 1])) < min_ratio:
            continue
        w = w.copy()
        w[idx, idx, 1, 1] -= 1.0
        inits[n.input[1]].CopyFrom(numpy_helper.from_array(w.astype(np.float32), n.input[1]))
        out = n.output[0]
        n.output[0] = out + "_minus_identity"
        nodes.append(helper.make_node("Add", [n.output[0], n.input[0]], [out], name=n.name + "_identity"))
        split.append(n.name)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model, split
