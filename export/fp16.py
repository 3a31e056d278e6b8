"""FP16 variant: every weight and activation in float16, float32 input and output kept (keep_io_types).

Uses onnxconverter-common's `convert_float_to_float16` (the converter ONNX Runtime's docs point to)
when installed; without it, a small onnx-native fallback converts initializers and inserts Casts at
the graph boundary. Either way the result is run once in ONNX Runtime on the CPU before it is kept,
and the caller measures its PSNR like every other precision. On a Jetson, TensorRT's FP16 engine is
built from the FP32 file (the `fp16` builder flag), so this file mainly serves ORT GPU/CPU users.
"""
from __future__ import annotations

import numpy as np


def convert_fp16(fp32_proto):
    """Return an FP16 ModelProto with float32 I/O; `.doc_string` says which converter made it."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        model = _native_fp16(fp32_proto)
        model.doc_string = "fp16 by kdedge onnx-native fallback"
        return model
    model = float16.convert_float_to_float16(fp32_proto, keep_io_types=True, disable_shape_infer=False)
    model.doc_string = "fp16 by onnxconverter-common float16.convert_float_to_float16(keep_io_types=True)"
    return model


def _native_fp16(fp32_proto):
    """Fallback (hand-written because it is 30 lines and only needed without onnxconverter-common).

    Float initializers and Constant tensors become float16; Casts turn the float32 inputs into float16
    and the float16 outputs back into float32. Clip/Resize-style scalar inputs are initializers too,
    so they follow along; value_info is dropped and re-inferred by the runtime.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(fp32_proto)
    g = model.graph
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
        if node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
    del g.value_info[:]
    def rename(tensor: str, half: str, side: str) -> None:
        for node in g.node:
            names = getattr(node, side)
            for i, name in enumerate(names):
                if name == tensor:
                    names[i] = half

    casts_in, casts_out = [], []
    for inp in (v for v in g.input if v.type.tensor_type.elem_type == TensorProto.FLOAT):
        half = inp.name + "_fp16"
        rename(inp.name, half, "input")
        casts_in.append(helper.make_node("Cast", [inp.name], [half], to=TensorProto.FLOAT16, name=half + "_cast"))
    for out in (v for v in g.output if v.type.tensor_type.elem_type == TensorProto.FLOAT):
        half = out.name + "_fp16"
        rename(out.name, half, "output")
        casts_out.append(helper.make_node("Cast", [half], [out.name], to=TensorProto.FLOAT, name=half + "_cast"))
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    return model
