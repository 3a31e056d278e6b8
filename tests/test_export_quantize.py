"""INT8 Q/DQ: TensorRT's form (symmetric INT8, zero point 0, per-channel weights), runs in ORT,
keeps excluded nodes in float; the sensitivity pass measures; U8S8 is asymmetric; FP16 runs."""
from __future__ import annotations

import numpy as np
import pytest

from test_export_helpers import run_onnx, smooth_images, tiny_anchor

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def fp32_and_stats(tmp_path_factory):
    from kdedge.export.calibrate import collect_statistics
    from kdedge.export.onnx_export import export_onnx

    path = export_onnx(tiny_anchor(), tmp_path_factory.mktemp("q") / "m.onnx")
    inputs = [im[None, None] for im in smooth_images(6)]
    return path, collect_statistics(path, inputs), inputs


def _run(proto, x):
    return run_onnx(proto, {"lr": x})


def test_symmetric_qdq_form_and_accuracy(fp32_and_stats):
    from kdedge.export.calibrate import ranges
    from kdedge.export.quantize import check_qdq_form, quantize_qdq

    path, stats, inputs = fp32_and_stats
    q = quantize_qdq(path, ranges(stats, "percentile"))
    counts = check_qdq_form(q)
    assert counts["QuantizeLinear"] >= 6 and counts["per_channel"] == 6  # Q and DQ of the 3 conv weights
    ops = [n.op_type for n in q.graph.node]
    assert "QLinearConv" not in ops and ops.count("Conv") == 3
    conv_inputs = [n.input for n in q.graph.node if n.op_type == "Conv"]
    assert all(i[0].endswith("DequantizeLinear_Output") and i[1].endswith("DequantizeLinear_Output") for i in conv_inputs)
    x = inputs[0]
    ref = run_onnx(path, {"lr": x})
    got = _run(q, x)
    assert got.shape == ref.shape
    assert 0 < np.abs(got - ref).max() < 0.05  # quantized (not identical), but close


def test_excluded_node_stays_float(fp32_and_stats):
    from kdedge.export.calibrate import ranges
    from kdedge.export.quantize import quantize_qdq

    path, stats, _ = fp32_and_stats
    q = quantize_qdq(path, ranges(stats, "minmax"), excluded=["/net/head/Conv"])
    head = next(n for n in q.graph.node if n.name == "/net/head/Conv")
    assert head.input[0] == "lr" and head.input[1] == "net.head.weight"
    tail = next(n for n in q.graph.node if n.name == "/net/tail/Conv")
    assert tail.input[1].endswith("DequantizeLinear_Output")
    # An excluded Add reads float tensors, not ORT's dequantized copies (the residual stays exact).
    q = quantize_qdq(path, ranges(stats, "minmax"), excluded=["/net/Add"])
    add = next(n for n in q.graph.node if n.op_type == "Add")
    assert add.input[0] == "/net/tail/Conv_output_0" and add.input[1] == "/net/Tile_output_0"
    used = {i for n in q.graph.node for i in n.input}
    dangling = [n.name for n in q.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.output[0] not in used]
    assert not dangling


def test_sensitivity_measures_and_picks(fp32_and_stats):
    from kdedge.export.calibrate import ranges
    from kdedge.export.quantize import sensitivity

    path, stats, inputs = fp32_and_stats
    ref = [run_onnx(path, {"lr": x}) for x in inputs[:2]]

    def drop_of(proto):  # dB of PSNR lost against FP32 on two images
        mses = [np.mean((run_onnx(proto, {"lr": x}) - r) ** 2) for x, r in zip(inputs[:2], ref)]
        return float(10 * np.log10(max(np.mean(mses), 1e-12)) + 100)  # monotone in the error

    sens = sensitivity(path, ranges(stats, "minmax"), drop_of, target_drop=0.0, max_excluded=2, min_gain=1e-6)
    assert set(sens.per_node_gain) >= {"/net/head/Conv", "/net/tail/Conv", "/net/Add"}
    assert len(set(round(v, 6) for v in sens.per_node_gain.values())) > 1
    assert 1 <= len(sens.excluded) <= 2 and sens.final_drop < sens.all_quantized_drop
    assert sens.excluded[0] == max(sens.per_node_gain, key=sens.per_node_gain.get)  # the most hurt goes first
    d = sens.to_dict()
    assert d["excluded_nodes"] == sens.excluded and len(d["steps"]) >= 2


def test_u8s8_is_asymmetric(fp32_and_stats):
    from onnx import numpy_helper

    from kdedge.export.calibrate import ranges
    from kdedge.export.quantize import quantize_qdq

    path, stats, inputs = fp32_and_stats
    q = quantize_qdq(path, ranges(stats, "minmax", symmetric=False), u8s8=True)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    zps = [inits[n.input[2]] for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[2] in inits]
    assert any(z.dtype == np.uint8 and np.any(z != 0) for z in zps)
    assert _run(q, inputs[0]).shape == (1, 1, 96, 128)
    # ORT drops the ReLU before an asymmetric Q (the uint8 clamp does it) and gives its output name
    # to the conv: an excluded conv after it must still see ReLU'd values (regression: 10 dB lost).
    ref = run_onnx(path, {"lr": inputs[0]})
    q = quantize_qdq(path, ranges(stats, "minmax", symmetric=False), excluded=["/net/tail/Conv"], u8s8=True)
    assert np.abs(_run(q, inputs[0]) - ref).max() < 0.02


def test_fp16_runs_and_keeps_float_io(fp32_and_stats):
    from kdedge.export.fp16 import _native_fp16, convert_fp16

    path, _, inputs = fp32_and_stats
    ref = run_onnx(path, {"lr": inputs[0]})
    for half in (convert_fp16(onnx.load(str(path))), _native_fp16(onnx.load(str(path)))):
        assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in half.graph.initializer)
        got = _run(half, inputs[0])
        assert got.dtype == np.float32 and 0 < np.abs(got - ref).max() < 5e-3
