"""Parameters and multiply-accumulates (MACs) per LR pixel of an ONNX SR model, counted from the graph that runs.

Every Conv / ConvTranspose / ConvInteger / QLinearConv / Gemm / MatMul node is counted. Output shapes
are observed by running the graph once in ONNX Runtime (optimisations off, every node output
exposed) on a 1 x C x side x side input (128 by default), so branches that resize or pool (RLFN's
ESA) are counted at their real size. A conv costs prod(output dims) x (C_in / groups) x k_h x k_w
MACs; the sum is divided by the side x side LR pixels. `conv_io_elements_per_lr_pixel` sums the input
and output elements of those nodes (the activation traffic if no two layers are fused), for the
memory-bandwidth side of a device estimate. Parameters are the weights and biases of those nodes
(traced back through DequantizeLinear for Q/DQ graphs, so INT8 models count the same parameters as
FP32) plus PRelu slopes. `fsrcnn_formula` gives the same count for OpenCV's FSRCNN from its
architecture (d, s, m), a cross-check of the counting.

Hand-written because no maintained library counts MACs of ONNX graphs with Q/DQ nodes, and ORT's own
profiler reports time, not work. Torch-free: needs onnx and onnxruntime, which export has anyway
(the runtime does not need onnx, so this lives here, not in kdedge.runtime).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

_CONV_OPS = ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv")
_MATMUL_OPS = ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul")


def conv_macs(out_shape, weight_shape, group: int = 1, transpose: bool = False, in_shape=None) -> int:
    """MACs of one convolution given its output shape (N, C_out, H, W) and weight shape."""
    k = int(np.prod(weight_shape[2:])) if len(weight_shape) > 2 else 1
    if transpose:  # weight (C_in, C_out/g, kh, kw): every input pixel scatters C_out/g * k values
        return int(np.prod(in_shape[2:])) * int(weight_shape[0]) * int(weight_shape[1]) * k
    cin_per_group = int(weight_shape[1])
    return int(np.prod(out_shape[1:])) * cin_per_group * k


def _trace_initializer(name: str, producers: Dict[str, object], inits: Dict[str, object]):
    """The initializer behind `name`, looking through Q/DQ pairs, Identity and Cast."""
    seen = 0
    while name not in inits and name in producers and seen < 6:
        node = producers[name]
        # TensorRT-form Q/DQ keeps float weights behind a QuantizeLinear -> DequantizeLinear pair
        if node.op_type not in ("DequantizeLinear", "QuantizeLinear", "Identity", "Cast", "Reshape", "Transpose"):
            return None
        name = node.input[0]
        seen += 1
    return inits.get(name)


def onnx_complexity(path, side: int = 128) -> Dict[str, float]:
    """{"params", "macs_per_lr_pixel", "in_channels"} of an ONNX SR model (see module docstring)."""
    import tempfile

    import onnx
    import onnxruntime as ort  # only for the optimisation-level enum; the model runs on the runtime's backend
    from onnx import helper

    from kdedge.runtime.backends.ort import OrtBackend

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    graph_inputs = [i for i in graph.input if i.name not in inits]
    dims = graph_inputs[0].type.tensor_type.shape.dim
    channels = dims[1].dim_value or 1

    # Expose the data inputs/outputs of every counted node as graph outputs to read their shapes.
    counted = [n for n in graph.node if n.op_type in _CONV_OPS + _MATMUL_OPS]
    wanted: List[str] = []
    for n in counted:
        data_in = n.input[0]
        for t in (data_in, n.output[0]):
            if t not in wanted and t not in inits and t != graph_inputs[0].name:
                wanted.append(t)
    existing = {o.name for o in graph.output}
    for t in wanted:
        if t not in existing:
            graph.output.append(helper.make_empty_tensor_value_info(t))
    x = np.random.default_rng(0).random((1, channels, side, side), dtype=np.float32)
    # The runtime's ONNX Runtime backend, with ORT's graph optimisations off so every node is run as written.
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "exposed.onnx"
        file.write_bytes(model.SerializeToString())
        opts = {"graph_optimization_level": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        with OrtBackend(file, provider="cpu", threads=2, session_options=opts) as backend:
            values = dict(backend.infer({graph_inputs[0].name: x}))
    values[graph_inputs[0].name] = x

    macs = 0
    params = 0
    act = 0  # elements each counted node reads and writes: the memory-traffic side of the estimate
    seen_params = set()

    def add_param(name):
        nonlocal params
        t = _trace_initializer(name, producers, inits)
        if t is not None and t.name not in seen_params:
            seen_params.add(t.name)
            params += int(np.prod(t.dims)) if len(t.dims) else 1

    for n in counted:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "QLinearConv":
            w_name, b_name = n.input[3], (n.input[8] if len(n.input) > 8 else "")
        else:
            w_name, b_name = n.input[1], (n.input[2] if len(n.input) > 2 else "")
        w_init = _trace_initializer(w_name, producers, inits)
        out = values.get(n.output[0])
        if n.op_type in _CONV_OPS:
            if w_init is None or out is None:
                continue
            macs += conv_macs(out.shape, list(w_init.dims), int(attrs.get("group", 1)),
                              transpose=n.op_type == "ConvTranspose", in_shape=values.get(n.input[0]).shape)
        else:
            a = values.get(n.input[0])
            if out is None or a is None:
                continue
            macs += int(np.prod(out.shape)) * int(a.shape[-1])
        a_in = values.get(n.input[0])
        act += int(out.size) + (int(a_in.size) if a_in is not None else 0)
        add_param(w_name)
        if b_name:
            add_param(b_name)
    for n in graph.node:
        if n.op_type == "PRelu":
            add_param(n.input[1])
    return {"params": params, "macs_per_lr_pixel": macs / float(side * side), "in_channels": channels,
            "conv_io_elements_per_lr_pixel": act / float(side * side), "method": "onnx-graph"}


def fsrcnn_formula(d: int, s: int, m: int, scale: int) -> int:
    """MACs per LR pixel of OpenCV's FSRCNN graph: 5x5 1->d, 1x1 d->s, m x 3x3 s->s, 1x1 s->d, 1x1 d->scale^2."""
    return 25 * d + d * s + m * 9 * s * s + s * d + d * scale * scale
