"""The benchmark suite's own arithmetic on tiny inputs: Pareto front, flicker, MAC counting, peak rate.

The suite itself (benchmarks/run_all.py) runs for minutes in its own environment; these tests check the
pieces whose mistakes would silently distort every table.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import plots  # noqa: E402
import video  # noqa: E402


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 38.0), (10.0, 37.0), (5.0, 36.0), (100.0, 33.0), (10.0, 36.5), (0.5, 37.5)]
    # (5, 36) is beaten by (10, 37); (10, 36.5) by (10, 37); (0.5, 37.5) by (1, 38)
    assert plots.pareto_front(pts) == [0, 1, 3]


def test_pareto_front_ties_and_single_point():
    assert plots.pareto_front([(2.0, 30.0)]) == [0]
    # identical points dominate nobody: both stay
    assert plots.pareto_front([(2.0, 30.0), (2.0, 30.0)]) == [0, 1]


def test_motion_ratio_compares_frame_to_frame_change_with_truth():
    rng = np.random.default_rng(0)
    gt = [rng.random((8, 9)) * 255 for _ in range(4)]
    assert np.allclose(video.motion_ratio([g + 7.0 for g in gt], gt), 1.0)  # a constant error moves like the truth
    assert np.allclose(video.motion_ratio([g * 0.5 for g in gt], gt), 0.5)  # half the change: smoothing
    static = [np.full((6, 6), 100.0) for _ in range(3)]
    out = [np.full((6, 6), 100.0), np.full((6, 6), 103.0), np.full((6, 6), 100.0)]
    ratio = video.motion_ratio(out, [s + np.eye(6) * t for t, s in enumerate(static)], shave=2)
    assert ratio.shape == (2,) and np.all(ratio > 1.0)  # moves more than the (nearly static) truth: flicker


def test_best_window_finds_the_difference():
    a = np.zeros((64, 64))
    b = np.zeros((64, 64))
    b[40:56, 8:24] = 50.0
    y, x = plots.best_window(a, b, crop=16, stride=8)
    assert (y, x) == (40, 8)


def test_onnx_mac_count_matches_a_hand_count(tmp_path):
    pytest.importorskip("onnxruntime")
    import macs
    import peak

    path = tmp_path / "conv.onnx"
    path.write_bytes(peak.conv_model(4, kernel=3, out_channels=6).SerializeToString())
    c = macs.onnx_complexity(path, side=16)
    assert c["macs_per_lr_pixel"] == 4 * 6 * 9  # 'same' conv: C_in x C_out x k^2 per pixel
    assert c["params"] == 6 * 4 * 9 + 6
    assert c["in_channels"] == 4
    # the QDQ INT8 copy runs the same convolution: same MACs and parameters
    q = peak.quantize(path, tmp_path / "conv.int8.onnx", "int8_s8s8", channels=4, side=8)
    cq = macs.onnx_complexity(q, side=16)
    assert cq["macs_per_lr_pixel"] == c["macs_per_lr_pixel"]
    assert cq["params"] == c["params"]
    # kdedge's own TensorRT form keeps float weights behind Quantize -> Dequantize pairs: same count
    from kdedge.export.onnx_export import save_model
    from kdedge.export.quantize import quantize_qdq

    trt = save_model(quantize_qdq(path, {"x": (-1.0, 1.0), "y": (-4.0, 4.0)}), tmp_path / "conv.trt.onnx")
    ct = macs.onnx_complexity(trt, side=16)
    assert (ct["macs_per_lr_pixel"], ct["params"]) == (c["macs_per_lr_pixel"], c["params"])


def test_fsrcnn_formula_matches_opencv_readme_figure():
    import macs

    assert macs.fsrcnn_formula(56, 12, 4, 2) == 8152  # ../shared/weights/README.md: 8,152 MACs per LR pixel


@pytest.mark.parametrize("precision", ["fp32", "int8_s8s8", "int8_u8s8"])
def test_peak_rate_on_a_tiny_conv(tmp_path, precision):
    pytest.importorskip("onnxruntime")
    import peak

    c, side = 8, 16
    fp32 = tmp_path / "c.onnx"
    fp32.write_bytes(peak.conv_model(c).SerializeToString())
    path = fp32 if precision == "fp32" else peak.quantize(fp32, tmp_path / ("c.%s.onnx" % precision), precision, c, side)
    macs_total = peak.conv_total_macs(c, side)
    assert macs_total == side * side * c * c * 9
    r = peak.measure_rate(path, c, side, macs_total, reps=2, min_block_s=0.01, threads=1)
    assert r["gmac_per_s"] > 0 and r["min"] <= r["gmac_per_s"] <= r["max"]
    # the quantized conv computes nearly the same thing as the float one
    x = np.random.default_rng(0).random((1, c, side, side), dtype=np.float32)
    from kdedge.runtime.backends import open_model

    with open_model(fp32) as a, open_model(path) as b:
        ref, got = a.infer({"x": x})["y"], b.infer({"x": x})["y"]
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
    assert peak.fraction_of_peak(50.0, {"fp32": 100.0, "int8_s8s8": 200.0, "int8_u8s8": 250.0}, "int8") == 0.2
