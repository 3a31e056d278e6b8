"""The whole-frame graph: BGR uint8 frame in, BGR uint8 SR frame out, colour work inside one ONNX model.

Why: a Y-channel student is a third of an RGB model's work, but the colour split and merge around it
then run in Python/OpenCV on the CPU (4-8 ms per 540x960 frame on one core), a large share of the
frame time once OpenVINO runs the model at INT8 or bf16 speed, and on a Jetson that work would land on
the slow Arm CPU while the GPU waits. Inside the graph, the engine that runs the model (OpenVINO's CPU
plugin, TensorRT) does it with its own threads and kernels.

The graph reproduces `kdedge.runtime.colour` (split_y / merge_y), step by step:
  frame (1, H, W, 3) uint8 BGR
  -> MATLAB Y / 255 (the model's input, the protocol's Y, exactly `colour.luma01` in float)
  -> the student (the bundle's own ONNX file: FP32 or Q/DQ INT8), without its final pixel shuffle
  chroma: full-range BT.601 Cr, Cb in OpenCV's own fixed-point arithmetic (bit-exact with cvtColor),
          upscaled bicubically with a = -0.75, half-pixel centres and edge clamping (OpenCV's
          INTER_CUBIC) as a polyphase depthwise conv (`bicubic_phase_kernels`), rounded and
          saturated as cv2.resize on uint8 does
  -> on the s*s phase planes: studio Y to full-range Y, rounded and saturated (as cv2.addWeighted to
     CV_8U does), YCrCb to BGR in OpenCV's fixed-point arithmetic, saturated, cast to uint8
  -> one uint8 transpose: the pixel shuffle and NCHW -> NHWC at once -> (1, sH, sW, 3) uint8.
Run in f32, the graph equals the Python path except where the model's float rounding differs;
tests/test_frame_graph.py measures it (within one grey level on more than 99.9% of pixels is the
requirement). Engines that compute float layers in bf16 or fp16 must keep this graph's colour nodes in
f32 (`kdedge.runtime.backends.create_backend` compiles it with f32 on OpenVINO).

Built with `onnx.compose.merge_models` from three graphs (pre, student, post), so the student's nodes and
weights are copied bit for bit, but for the pixel shuffle `unshuffle_output` removes. Only for Y students
with size multiple 1 (the shipped ones); RGB students need no colour work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from kdedge.runtime.bundle import FRAME_INPUT, FRAME_OUTPUT  # the schema's names, read by the runtime

# OpenCV's 8-bit BT.601 full-range YCrCb is fixed point with 14 fraction bits (imgproc/color_yuv):
#   Y = round(.299 R + .587 G + .114 B); Cr = round((R - Y) .713 + 128); Cb = round((B - Y) .564 + 128)
#   R = Y + round(1.403 (Cr - 128)); G = Y + round(-.714 (Cr - 128) - .344 (Cb - 128)); B = Y + round(1.773 (Cb - 128))
# with its coefficients as integers / 2**14 and round = floor(x + 1/2). Using the same dyadic coefficients
# and floor(x + 0.5), every product and sum here is exact in float32 (at most 22 significant bits),
# so the graph reproduces cvtColor bit for bit in f32 (tests/test_frame_graph.py).
_Q = 1.0 / (1 << 14)
_Y_BGR = np.array([1868, 9617, 4899], np.float64) * _Q  # B, G, R -> Y
_CR, _CB = 11682 * _Q, 9241 * _Q  # (R - Y), (B - Y) -> Cr, Cb
_R_CR, _G_CR, _G_CB, _B_CB = 22987 * _Q, -11698 * _Q, -5636 * _Q, 29049 * _Q
# MATLAB rgb2ycbcr Y for BGR in 0..255 -> Y / 255 in [16/255, 235/255] (the students' input, colour.luma01)
_MATLAB_Y = np.array([24.966, 128.553, 65.481], np.float64) / (255.0 * 255.0)


def _const(name: str, value, dtype=np.float32):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _cubic(x: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel; a = -0.75 is OpenCV's (and ONNX Resize's default)."""
    x = np.abs(x)
    return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def bicubic_phase_kernels(scale: int) -> np.ndarray:
    """(scale**2, 1, 5, 5) conv kernels: output phase (py, px) of an x`scale` bicubic upscale, as taps on the
    input offsets -2..2 around each pixel.

    Why not ONNX Resize(cubic): OpenVINO's CPU plugin takes 59 ms for it on a 540x960 two-channel
    image (profiled), while a depthwise 5x5 conv + DepthToSpace is the same arithmetic as a
    polyphase filter and runs in a few ms on every engine. With half-pixel centres, output pixel
    s*i + p samples input coordinate i + (2p + 1 - s) / (2s), always within half a pixel of i, so 4
    taps starting at its floor fit in offsets -2..2; edge padding matches OpenCV's border handling.
    """
    taps = np.zeros((scale, 5))
    for p in range(scale):
        x = (2 * p + 1 - scale) / (2.0 * scale)  # sample position relative to input pixel i
        base = int(np.floor(x))
        t = x - base
        for k, off in enumerate(range(base - 1, base + 3)):
            taps[p, off + 2] = _cubic(np.array(t - (off - base)))
    kernels = np.einsum("yi,xj->yxij", taps, taps).reshape(scale * scale, 1, 5, 5)
    return kernels


def _pre_graph(opset: int, ir_version: int, model_input: str):
    """frame uint8 NHWC BGR -> (model input Y/255, chroma (1, 2, H, W) Cr, Cb in 0..255 as cvtColor gives)."""
    from onnx import TensorProto, helper

    n = helper.make_node
    nodes = [
        n("Cast", [FRAME_INPUT], ["pre/f"], to=TensorProto.FLOAT),
        n("Transpose", ["pre/f"], ["pre/bgr"], perm=[0, 3, 1, 2]),
        n("Conv", ["pre/bgr", "pre/wy", "pre/by"], [model_input]),
        n("Split", ["pre/bgr", "pre/split"], ["pre/b", "pre/g", "pre/r"], axis=1),
        n("Conv", ["pre/bgr", "pre/wy_cv", "pre/half"], ["pre/y_h"]),
        n("Floor", ["pre/y_h"], ["pre/y"]),
        n("Concat", ["pre/r", "pre/b"], ["pre/rb"], axis=1),
        n("Sub", ["pre/rb", "pre/y"], ["pre/rb_y"]),
        n("Mul", ["pre/rb_y", "pre/wc"], ["pre/c_s"]),
        n("Add", ["pre/c_s", "pre/bc"], ["pre/c_h"]),
        n("Floor", ["pre/c_h"], ["pre/c_f"]),
        n("Clip", ["pre/c_f", "pre/zero", "pre/max"], ["pre/crcb"]),
    ]
    inits = [
        _const("pre/wy", _MATLAB_Y.reshape(1, 3, 1, 1)),
        _const("pre/by", [16.0 / 255.0]),
        _const("pre/split", [1, 1, 1], np.int64),
        _const("pre/wy_cv", _Y_BGR.reshape(1, 3, 1, 1)),
        _const("pre/half", [0.5]),
        _const("pre/wc", np.array([_CR, _CB]).reshape(1, 2, 1, 1)),
        _const("pre/bc", 128.5),
        _const("pre/zero", 0.0), _const("pre/max", 255.0),
    ]
    graph = helper.make_graph(
        nodes, "frame_pre",
        [helper.make_tensor_value_info(FRAME_INPUT, TensorProto.UINT8, [1, "h", "w", 3])],
        [helper.make_tensor_value_info(model_input, TensorProto.FLOAT, [1, 1, "h", "w"]),
         helper.make_tensor_value_info("pre/crcb", TensorProto.FLOAT, [1, 2, "h", "w"])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def _post_graph(opset: int, ir_version: int, phases: str, scale: int):
    """(the student's Y before its pixel shuffle (1, s*s, H, W), chroma (1, 2, H, W)) -> frame_sr.

    Everything after the upscale is per pixel, so it runs on the s*s phase planes at input resolution
    and one uint8 transpose does the pixel shuffle and the NCHW -> NHWC move at once: float tensors are
    never shuffled at output size (measured: that copying cost more than the colour arithmetic)."""
    from onnx import TensorProto, helper

    n = helper.make_node
    s2 = scale * scale
    gain = 255.0 * 255.0 / 219.0  # studio Y/255 -> full-range 0..255 (colour.merge_y)
    nodes = [
        # chroma: bicubic like cv2.INTER_CUBIC as s*s phase planes (bicubic_phase_kernels), rounded and
        # saturated like a uint8 resize; channels: Cr phases, then Cb phases
        n("Pad", ["post/crcb", "post/pads"], ["post/crcb_pad"], mode="edge"),
        n("Conv", ["post/crcb_pad", "post/wcubic"], ["post/crcb_up_f"], group=2),
        n("Round", ["post/crcb_up_f"], ["post/crcb_up_r"]),
        n("Clip", ["post/crcb_up_r", "post/zero", "post/max"], ["post/crcb_up"]),
        # Y: full range, rounded and saturated like cv2.addWeighted(..., dtype=CV_8U)
        n("Mul", [phases, "post/gain"], ["post/y_g"]),
        n("Add", ["post/y_g", "post/bias"], ["post/y_f"]),
        n("Round", ["post/y_f"], ["post/y_r"]),
        n("Clip", ["post/y_r", "post/zero", "post/max"], ["post/y"]),
        # cvtColor YCrCb -> BGR: Y + floor(offset + 1/2) = floor(Y + offset + 1/2) as Y is an integer;
        # one 1x1 conv over (Y, Cr, Cb) phases, the -128 and the 1/2 in its bias; exact in f32
        n("Concat", ["post/y", "post/crcb_up"], ["post/ycrcb"], axis=1),
        n("Conv", ["post/ycrcb", "post/winv", "post/binv"], ["post/bgr_h"]),
        n("Floor", ["post/bgr_h"], ["post/bgr_f"]),
        n("Clip", ["post/bgr_f", "post/zero", "post/max"], ["post/bgr"]),
        n("Cast", ["post/bgr"], ["post/bgr_u8"], to=TensorProto.UINT8),
        # (1, 3*s*s, H, W) -> (1, 3, s, s, H, W) -> (1, H, s, W, s, 3) -> (1, sH, sW, 3)
        n("Shape", [phases], ["post/pshape"]),
        n("Slice", ["post/pshape", "post/i2", "post/i4"], ["post/hw"]),
        n("Concat", ["post/c_s", "post/hw"], ["post/shape6"], axis=0),
        n("Reshape", ["post/bgr_u8", "post/shape6"], ["post/bgr6"]),
        n("Transpose", ["post/bgr6"], ["post/bgr_t"], perm=[0, 4, 2, 5, 3, 1]),
        n("Mul", ["post/hw", "post/s_s"], ["post/shw"]),
        n("Concat", ["post/one", "post/shw", "post/three"], ["post/oshape"], axis=0),
        n("Reshape", ["post/bgr_t", "post/oshape"], [FRAME_OUTPUT]),
    ]
    # rows (B, G, R) x phase, columns (Y, Cr, Cb) x phase; each phase reads only itself
    coef = np.array([[1.0, 0.0, _B_CB], [1.0, _G_CR, _G_CB], [1.0, _R_CR, 0.0]])
    winv = np.zeros((3, s2, 3, s2))
    for ph in range(s2):
        winv[:, ph, :, ph] = coef
    inits = [
        _const("post/pads", [0, 0, 2, 2, 0, 0, 2, 2], np.int64),
        _const("post/wcubic", np.concatenate([bicubic_phase_kernels(scale)] * 2)),
        _const("post/gain", gain), _const("post/bias", -16.0 * 255.0 / 219.0),
        _const("post/zero", 0.0), _const("post/max", 255.0),
        _const("post/winv", winv.reshape(3 * s2, 3 * s2, 1, 1)),
        _const("post/binv", np.repeat(0.5 - coef[:, 1:] @ np.array([128.0, 128.0]), s2)),
        _const("post/i2", [2], np.int64), _const("post/i4", [4], np.int64),
        _const("post/c_s", [1, 3, scale, scale], np.int64),
        _const("post/s_s", [scale, scale], np.int64),
        _const("post/one", [1], np.int64), _const("post/three", [3], np.int64),
    ]
    graph = helper.make_graph(
        nodes, "frame_post",
        [helper.make_tensor_value_info(phases, TensorProto.FLOAT, [1, s2, "h", "w"]),
         helper.make_tensor_value_info("post/crcb", TensorProto.FLOAT, [1, 2, "h", "w"])],
        [helper.make_tensor_value_info(FRAME_OUTPUT, TensorProto.UINT8, [1, "H", "W", 3])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


# Ops that act per element (with scalar bounds) and so commute with a pixel shuffle.
_PER_ELEMENT = {"Clip", "Cast", "Relu", "Identity"}


def unshuffle_output(model, output_name: str, scale: int) -> str:
    """Remove the student's final pixel shuffle (in place); returns the name of the new (1, s*s, H, W) output.

    The students end DepthToSpace -> Clip (-> Cast for FP16). Per-element ops commute with the shuffle,
    so they are kept and fed the pre-shuffle tensor: the arithmetic is unchanged, only the layout."""
    graph = model.graph
    producer = {o: nd for nd in graph.node for o in nd.output}
    chain = []
    name = output_name
    while name in producer and producer[name].op_type in _PER_ELEMENT:
        chain.append(producer[name])
        name = producer[name].input[0]
    d2s = producer.get(name)
    if d2s is None or d2s.op_type != "DepthToSpace":
        raise ValueError("the whole-frame graph needs a student ending in DepthToSpace (a pixel shuffle); "
                         "%s ends in %s" % (graph.name, d2s.op_type if d2s is not None else "nothing"))
    attrs = {a.name: a for a in d2s.attribute}
    if attrs["blocksize"].i != scale:
        raise ValueError("the student's pixel shuffle has blocksize %d, not the scale %d" % (attrs["blocksize"].i, scale))
    if chain:  # the first per-element op after the shuffle now reads the shuffle's input
        chain[-1].input[0] = d2s.input[0]
        graph.node.remove(d2s)
    else:  # the shuffle made the output: it becomes a plain copy
        d2s.op_type = "Identity"
        del d2s.attribute[:]
    phases = "student/phases"  # renamed so that nothing mistakes its layout for the image's
    for nd in graph.node:
        nd.output[:] = [phases if o == output_name else o for o in nd.output]
    out = next(o for o in graph.output if o.name == output_name)
    out.name = phases
    dims = out.type.tensor_type.shape.dim
    del dims[:]
    for d in (1, scale * scale, "h", "w"):
        dims.add(**({"dim_value": d} if isinstance(d, int) else {"dim_param": d}))
    return phases


def topological_sort(model) -> None:
    """Order the graph's nodes so every input is produced before use (in place).

    Why here: ONNX Runtime's Q/DQ quantizer and kdedge's float-island rewrite append nodes out of order;
    runtimes accept that, but `onnx.compose.merge_models` runs the checker, which does not. onnx has
    no public sort, and onnxslim's would also rewrite the graph; Kahn's algorithm is a dozen lines."""
    graph = model.graph
    produced = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [nd for nd in pending if all(x in produced for x in nd.input)]
        if not ready:
            raise ValueError("graph %s has a cycle or an input nobody produces" % graph.name)
        for nd in ready:
            ordered.append(nd)
            produced.update(nd.output)
        pending = [nd for nd in pending if all(nd is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def build_frame_graph(student: Union[str, Path, "object"], scale: int, input_name: str = "lr",
                      output_name: str = "sr"):
    """The whole-frame ModelProto around a Y student (a path or a ModelProto of any bundle precision)."""
    import onnx
    from onnx import compose

    model = onnx.load(str(student)) if isinstance(student, (str, Path)) else onnx.ModelProto.FromString(student.SerializeToString())
    topological_sort(model)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    opset = max(opset, 13)  # Split with a `split` input (13), Pad with a `pads` input, Round, Clip with tensor bounds
    if any(o.domain in ("", "ai.onnx") and o.version < opset for o in model.opset_import):
        model = onnx.version_converter.convert_version(model, opset)
    ir = model.ir_version
    phases = unshuffle_output(model, output_name, scale)
    pre = _pre_graph(opset, ir, input_name)
    post = _post_graph(opset, ir, phases, scale)
    # merge_models wants identical opset lists: the student may import other domains (e.g. com.microsoft)
    extra = [o for o in model.opset_import if o.domain not in ("", "ai.onnx")]
    for part in (pre, post):
        part.opset_import.extend(extra)
    # The student's names are kept (its input/output become internal tensors); pre/ and post/ never clash.
    merged = compose.merge_models(pre, model, io_map=[(input_name, input_name)], outputs=[phases, "pre/crcb"])
    merged = compose.merge_models(merged, post, io_map=[(phases, phases), ("pre/crcb", "post/crcb")])
    merged.graph.name = "kdedge_frame_" + (model.graph.name or "student")
    del merged.metadata_props[:]
    for prop in model.metadata_props:
        merged.metadata_props.add(key=prop.key, value=prop.value)
    merged.metadata_props.add(key="kdedge_frame_graph",
                              value="BGR uint8 NHWC in/out; chroma: bicubic a=-0.75 half-pixel, edge clamp (cv2.INTER_CUBIC), polyphase conv")
    onnx.checker.check_model(merged)
    return merged


# Precisions that get a whole-frame graph: the files a CPU or GPU engine runs for speed. FP16 is left
# out: the graph's colour arithmetic needs f32, and FP16 files exist for GPUs that would run it in FP16.
FRAME_PRECISIONS = ("fp32", "int8", "int8_u8s8")


def frame_graph_files(folder, manifest) -> dict:
    """Write frame.<precision>.onnx beside each model of `manifest` in `folder`; returns the
    manifest's `frame_graphs` entries ({precision: {"file": name}}, sha256 filled in by write_manifest)."""
    from kdedge.export.onnx_export import save_model

    folder = Path(folder)
    if manifest.get("color") != "y" or int(manifest.get("size_multiple", 1)) != 1:
        return {}
    entries = {}
    for prec in FRAME_PRECISIONS:
        entry = manifest["precisions"].get(prec)
        if entry is None:
            continue
        name = "frame.%s.onnx" % prec
        graph = build_frame_graph(folder / entry["file"], int(manifest["scale"]),
                                  manifest["input"]["name"], manifest["output"]["name"])
        save_model(graph, folder / name)
        entries[prec] = {"file": name}
    return entries


def add_frame_graphs(bundle_folder) -> dict:
    """Add frame graphs to an exported bundle, atomically (temp copy, validated manifest, swap)."""
    import json
    import os
    import shutil
    import tempfile

    from kdedge.runtime.bundle import MANIFEST, load_bundle, write_manifest

    bundle = load_bundle(bundle_folder)  # validates what is there first
    folder = bundle.path
    tmp = Path(tempfile.mkdtemp(prefix="." + folder.name + ".frame-", dir=str(folder.parent)))
    try:
        shutil.copytree(str(folder), str(tmp / "b"))
        manifest = json.loads((tmp / "b" / MANIFEST).read_text(encoding="utf-8"))
        manifest["frame_graphs"] = frame_graph_files(tmp / "b", manifest)
        write_manifest(tmp / "b", manifest)
        os.replace(str(folder), str(tmp / "old"))  # removed with tmp below
        os.replace(str(tmp / "b"), str(folder))
    finally:
        shutil.rmtree(str(tmp), ignore_errors=True)
    return {prec: e["file"] for prec, e in manifest["frame_graphs"].items()}
