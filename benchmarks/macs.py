"""Parameters and multiply-accumulates (MACs) per LR pixel, counted from what actually runs.

Method (stated in RESULTS.md):
- ONNX models (teachers' exports, kdedge students in every precision): every Conv / ConvTranspose /
  ConvInteger / QLinearConv / Gemm / MatMul node of the graph. Output shapes are observed by running
  the graph once in ONNX Runtime (optimisations off, every node output exposed) on a 1 x C x 128 x 128
  input, so branches that resize or pool (RLFN's ESA) are counted at their real size. A conv costs
  prod(output dims) x (C_in / groups) x k_h x k_w MACs; the sum is divided by the 128 x 128 LR pixels.
  `conv_io_elements_per_lr_pixel` sums the input and output elements of those nodes (the activation
  traffic if no two layers are fused), for the memory-bandwidth side of the Jetson estimate.
  Parameters are the weights and biases of those nodes (traced back through DequantizeLinear for Q/DQ
  graphs, so INT8 models count the same parameters as FP32) plus PRelu slopes.
- OpenCV FSRCNN .pb files: the conv weight blobs OpenCV's TensorFlow importer loads; every conv runs
  at LR resolution (the depth-to-space is the last layer), so MACs per LR pixel = sum of k_h k_w C_in
  C_out. `fsrcnn_formula` gives the same from the known architecture (d, s, m) as a cross-check.
Hand-written because no maintained library counts MACs of ONNX graphs with Q/DQ nodes, and ORT's own
profiler reports time, not work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

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
    from onnx import helper, numpy_helper

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


def opencv_pb_complexity(pb_path, scale: int = 2) -> Dict[str, float]:
    """Params and MACs per LR pixel of a dnn_superres FSRCNN .pb, from the weights OpenCV loads."""
    import cv2

    net = _read_pb(pb_path)
    macs = params = 0
    convs = []
    for name in net.getLayerNames():
        try:
            layer = net.getLayer(net.getLayerId(name))
        except cv2.error:  # the old engine cannot describe its DepthToSpace layer; it has no weights
            continue
        blobs = list(layer.blobs)
        if layer.type == "Convolution" and blobs:
            w = blobs[0].shape
            convs.append(tuple(w))
            macs += int(np.prod(w))
            params += int(np.prod(w))
        params += sum(int(np.prod(b.shape)) for b in blobs[1:] if layer.type == "Convolution")
        if layer.type == "Scale" and blobs:  # bias adds and PReLU slopes of the TF graph
            params += int(np.prod(blobs[0].shape))
    d = convs[0][0]
    s = convs[1][0]
    m = sum(1 for c in convs if c[2:] == (3, 3))
    io = sum(c[0] + c[1] for c in convs)  # every conv at LR resolution: C_in read + C_out written per pixel
    return {"params": params, "macs_per_lr_pixel": float(macs), "in_channels": 1, "method": "opencv-pb-weights",
            "conv_io_elements_per_lr_pixel": float(io),
            "architecture": {"d": d, "s": s, "m": m}, "formula_macs": fsrcnn_formula(d, s, m, scale)}


def _read_pb(pb_path):
    """cv2.dnn net of a dnn_superres TF .pb, on the engine dnn_superres itself uses.

    The graph ends in a TF DepthToSpace node that OpenCV's dnn importers only understand once
    dnn_superres has registered its own DepthToSpace layer, which `DnnSuperResImpl.readModel` does
    (OpenCV 5.0 measured: without it the forward fails with "DepthSpaceLayer: blocksize is required").
    So read the model once through dnn_superres, then read it as a plain net on the classic engine."""
    import cv2

    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(pb_path))
    engine = getattr(cv2.dnn, "ENGINE_CLASSIC", None)
    if engine is None:
        return cv2.dnn.readNetFromTensorflow(str(pb_path))
    return cv2.dnn.readNetFromTensorflow(str(pb_path), "", engine)


def complexity_of(row, onnx_path: Optional[str] = None) -> Dict[str, float]:
    """Complexity of a benchmark row (see common.Row); bicubic is a fixed filter with no parameters."""
    if row.kind == "bicubic":
        # separable 4-tap filter per output pixel and channel: 8 MACs x scale^2 outputs x 3 channels
        return {"params": 0, "macs_per_lr_pixel": 8.0 * 4 * 3, "method": "separable 4-tap bicubic, RGB"}
    if row.kind == "opencv":
        return opencv_pb_complexity(row.path)
    if onnx_path is None:
        raise ValueError("row %s needs an ONNX file to count" % row.key)
    return onnx_complexity(Path(onnx_path))
