"""The benchmark suite's arithmetic on tiny inputs: Pareto front, flicker, MAC counting, timing rounds, peak rate.

The suite itself (benchmarks/run_all.py) runs for minutes in its own environment; these tests check the
pieces whose mistakes would silently distort every table. What the suite shares with the package is
imported from the package (kdedge.metrics, kdedge.export.macs, kdedge.runtime.bench); the scripts
themselves are run as the user runs them, in a subprocess.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kdedge.metrics import best_window, motion_ratio, pareto_front
from kdedge.runtime.bench import calls_per_block, interleaved_rounds, rate, summarize_rounds

REPO = Path(__file__).resolve().parents[1]
SUITE = ("run_all", "quality", "speed", "video", "plots", "report", "peak", "jetson_estimate",
         "openvino_cpu", "openvino_eval")
EXPERIMENTS = ("distill_imdn", "footage_calendar", "distill_steptime", "calendar_x2", "student_speed", "soak", "qat_recipe",
               "student_choice", "int8_sensitivity", "default_speed_ratio", "dead_channels", "recycle_compare",
               "precision_floor")
RELEASE = ("distill_assets", "ship_bundle", "anchor_bundle")


def _script(path: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / path), *args], cwd=str(REPO), capture_output=True, text=True,
                          timeout=timeout)


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 38.0), (10.0, 37.0), (5.0, 36.0), (100.0, 33.0), (10.0, 36.5), (0.5, 37.5)]
    # (5, 36) is beaten by (10, 37); (10, 36.5) by (10, 37); (0.5, 37.5) by (1, 38)
    assert pareto_front(pts) == [0, 1, 3]


def test_pareto_front_ties_and_single_point():
    assert pareto_front([(2.0, 30.0)]) == [0]
    # identical points dominate nobody: both stay
    assert pareto_front([(2.0, 30.0), (2.0, 30.0)]) == [0, 1]


def test_motion_ratio_compares_frame_to_frame_change_with_truth():
    rng = np.random.default_rng(0)
    gt = [rng.random((8, 9)) * 255 for _ in range(4)]
    assert np.allclose(motion_ratio([g + 7.0 for g in gt], gt), 1.0)  # a constant error moves like the truth
    assert np.allclose(motion_ratio([g * 0.5 for g in gt], gt), 0.5)  # half the change: smoothing
    static = [np.full((6, 6), 100.0) for _ in range(3)]
    out = [np.full((6, 6), 100.0), np.full((6, 6), 103.0), np.full((6, 6), 100.0)]
    ratio = motion_ratio(out, [s + np.eye(6) * t for t, s in enumerate(static)], shave=2)
    assert ratio.shape == (2,) and np.all(ratio > 1.0)  # moves more than the (nearly static) truth: flicker


def test_best_window_finds_the_difference():
    a = np.zeros((64, 64))
    b = np.zeros((64, 64))
    b[40:56, 8:24] = 50.0
    y, x = best_window(a, b, crop=16, stride=8)
    assert (y, x) == (40, 8)


def _conv_model(channels: int, out_channels: int, kernel: int = 3):
    """One 'same' Conv (dynamic H, W) with random weights, built with onnx.helper."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((out_channels, channels, kernel, kernel)) * 0.2).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[kernel // 2] * 4, kernel_shape=[kernel, kernel])
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_channels, "h", "w"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(out_channels, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_onnx_mac_count_matches_a_hand_count(tmp_path):
    pytest.importorskip("onnxruntime")
    from kdedge.export.macs import onnx_complexity
    from kdedge.export.onnx_export import save_model
    from kdedge.export.quantize import quantize_qdq

    path = tmp_path / "conv.onnx"
    path.write_bytes(_conv_model(4, 6).SerializeToString())
    c = onnx_complexity(path, side=16)
    assert c["macs_per_lr_pixel"] == 4 * 6 * 9  # 'same' conv: C_in x C_out x k^2 per pixel
    assert c["params"] == 6 * 4 * 9 + 6
    assert c["in_channels"] == 4
    ranges = {"x": (-1.0, 1.0), "y": (-4.0, 4.0)}
    # the U8S8 copy stores INT8 weight initializers behind DequantizeLinear: same MACs and parameters
    u8s8 = save_model(quantize_qdq(path, ranges, u8s8=True), tmp_path / "conv.u8s8.onnx")
    cq = onnx_complexity(u8s8, side=16)
    assert (cq["macs_per_lr_pixel"], cq["params"]) == (c["macs_per_lr_pixel"], c["params"])
    # kdedge's own TensorRT form keeps float weights behind Quantize -> Dequantize pairs: same count
    trt = save_model(quantize_qdq(path, ranges), tmp_path / "conv.trt.onnx")
    ct = onnx_complexity(trt, side=16)
    assert (ct["macs_per_lr_pixel"], ct["params"]) == (c["macs_per_lr_pixel"], c["params"])


def test_fsrcnn_formula_matches_opencv_readme_figure():
    from kdedge.export.macs import fsrcnn_formula

    assert fsrcnn_formula(56, 12, 4, 2) == 8152  # ../shared/weights/README.md: 8,152 MACs per LR pixel


def test_interleaved_rounds_measure_every_job_once_per_round_in_order():
    seen = []
    jobs = [(k, (lambda k=k: seen.append(k) or len(seen))) for k in ("a", "b", "c")]
    rounds_done = []
    values = interleaved_rounds(jobs, 3, after_round=rounds_done.append)
    assert seen == ["a", "b", "c"] * 3  # round-robin: load drift hits every job alike
    assert values == {"a": [1, 4, 7], "b": [2, 5, 8], "c": [3, 6, 9]} and rounds_done == [0, 1, 2]
    assert summarize_rounds([1.0, 2.0, 3.0, 4.0, 10.0]) == {"median": 3.0, "min": 1.0, "max": 10.0, "iqr": 2.0,
                                                            "rounds": 5}


def test_rate_and_block_size_time_a_known_call():
    def call():
        time.sleep(0.005)

    n, first = calls_per_block(call, 0.05)
    assert first >= 0.005 and 1 <= n <= 10  # about 0.05 s / 5 ms; sleep only ever oversleeps
    assert calls_per_block(call, 10.0, max_calls=3)[0] == 3
    assert calls_per_block(call, 0.0)[0] == 1
    calls_per_s = rate(call, 4)()
    assert 0 < calls_per_s <= 200  # 4 calls of >= 5 ms each


def test_peak_rate_on_a_tiny_conv(tmp_path):
    """benchmarks/peak.py --quick end to end: every precision measured, rates ordered, the quantized
    convs compute what the FP32 one does."""
    pytest.importorskip("onnxruntime")
    r = _script("benchmarks/peak.py", "--quick", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "peak.json").read_text())
    assert sorted(m["precision"] for m in res["measurements"]) == ["fp32", "int8_s8s8", "int8_u8s8"]
    for m in res["measurements"]:
        assert m["macs"] == m["side"] * m["side"] * m["channels"] * m["channels"] * 9
        assert m["gmac_per_s"] > 0 and m["min"] <= m["gmac_per_s"] <= m["max"]
        if m["precision"] != "fp32":
            assert m["rel_error_vs_fp32"] < 0.1
    assert set(res["peak_gmac_per_s"]) == {"fp32", "int8_s8s8", "int8_u8s8"}


def test_report_states_each_rate_as_a_fraction_of_its_precisions_peak(tmp_path):
    """benchmarks/report.py on hand-written results: INT8 rows against the best INT8 peak, the rest FP32."""
    row = {"kind": "onnx", "runtime": "onnxruntime"}
    speed = {"threads": 2, "reps": 2, "warmup": 1, "block_seconds": 0.1, "sizes": ["270x480"], "rows": [
        dict(row, key="a", label="int8 row", precision="int8",
             results={"270x480": {"model": {"median": 10.0, "min": 9.0, "max": 11.0, "gmac_per_s": 50.0}}}),
        dict(row, key="b", label="fp32 row", precision="fp32",
             results={"270x480": {"model": {"median": 10.0, "min": 9.0, "max": 11.0, "gmac_per_s": 25.0}}})]}
    peak = {"workload": "conv", "measurements": [],
            "peak_gmac_per_s": {"fp32": 100.0, "int8_s8s8": 200.0, "int8_u8s8": 250.0}}
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    (tmp_path / "peak.json").write_text(json.dumps(peak))
    r = _script("benchmarks/report.py", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| 50.0 | 20.0% of INT8 |" in text  # 50 / max(200, 250)
    assert "| 25.0 | 25.0% of FP32 |" in text


@pytest.mark.parametrize("path", ["benchmarks/%s.py" % n for n in SUITE]
                         + ["benchmarks/experiments/%s.py" % n for n in EXPERIMENTS]
                         + ["scripts/%s.py" % n for n in RELEASE])
def test_every_benchmark_and_release_script_runs(path):
    """Each script starts and answers --help where it lives (imports of its siblings and of the suite resolve)."""
    if path.endswith("distill_steptime.py"):
        pytest.importorskip("torch")  # a training-step benchmark: imports torch at the top
    r = _script(path, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr


def test_precision_floor_grid_at_127_levels_is_the_shipped_int8():
    """The experiment's finer grids are measured against INT8 itself: at 127 levels its quantizer is
    qat.fake_quant value for value (round half to even, saturation at -128 and 127)."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "experiments"))
    try:
        from precision_floor import grid_fake_quant
    finally:
        sys.path.pop(0)
    from kdedge.distill.qat import fake_quant

    x, amax = torch.linspace(-1.5, 1.5, 10001), torch.tensor(1.27)
    assert torch.equal(grid_fake_quant(127)(x, amax), fake_quant(x, amax))
    fine = grid_fake_quant(255)(x, amax)
    assert len(torch.unique(fine[(x >= 0) & (x <= 1.27)])) == 256  # twice INT8's codes over a ReLU's range
    assert (fine - x).abs()[x.abs() <= 1.27].max() <= 1.27 / 255 / 2 + 1e-6


def test_student_choice_rule_is_validation_int8_within_the_budget():
    """The default is picked on validation: best photos INT8 under 12.5k MACs, unless its slides lag."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "experiments"))
    try:
        from student_choice import choose
    finally:
        sys.path.pop(0)

    def cand(macs, photos, graphics):
        return {"macs": macs, "val_by_subset": {"photos": {"fp32": photos + 0.02, "int8": photos},
                                                "graphics": {"fp32": graphics + 0.02, "int8": graphics}}}

    assert choose({"a": cand(9936, 30.19, 35.22), "b": cand(9936, 30.20, 35.20)}) == "b"
    assert choose({"a": cand(9936, 30.19, 35.22), "big": cand(13000, 30.40, 35.30)}) == "a"  # over budget
    assert choose({"a": cand(9936, 30.19, 35.22), "b": cand(9936, 30.25, 35.10)}) == "a"  # slides 0.12 dB worse
    with pytest.raises(SystemExit):
        choose({"big": cand(13000, 30.4, 35.3)})


def test_the_twin_row_matches_the_default_students_recipe_not_just_its_steps(tmp_path, monkeypatch):
    """`kdedge-noteacher` is the default student's recipe without its teacher: same steps, data, seed and
    dead-channel recycling. A teacher-less run of another recipe is named in the note, never measured."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import common
    finally:
        sys.path.pop(0)
    from kdedge.checkpoint import save_checkpoint
    from kdedge.models import create_model

    monkeypatch.setattr(common, "REPO", tmp_path)
    monkeypatch.setattr(common, "RESULTS", tmp_path / "benchmarks" / "results")
    module = create_model("repanchor", scale=2, color="y", width=4, depth=1)

    def ckpt(path, teacher, **config):
        path.parent.mkdir(parents=True, exist_ok=True)
        config = dict({"steps": 10, "data": ["T91"], "seed": 0}, **config)
        save_checkpoint(path, module, arch="repanchor", model_args={"width": 4, "depth": 1}, scale=2, color="y",
                        step=10, teacher=teacher, config=config)

    ckpt(tmp_path / "kdedge" / "assets" / "student_x2.safetensors", {"spec": "imdn"}, recycle_interval=2000, recycle_until=0.75)
    ckpt(tmp_path / "runs" / "plain" / "twin" / "last.safetensors", None)  # no recycling: another recipe
    found, note = common.find_twin(tmp_path)
    assert found is None and "runs/plain/twin/last.safetensors" in note and "not measured" in note
    ckpt(tmp_path / "runs" / "recycled" / "twin" / "last.safetensors", None, recycle_interval=2000, recycle_until=0.75)
    found, note = common.find_twin(tmp_path)
    assert found == tmp_path / "runs" / "recycled" / "twin" / "last.safetensors" and "no teacher" in note
    # a teacher-less default: its counterpart is the same recipe distilled from a teacher
    assert common.default_is_distilled(tmp_path)
    ckpt(tmp_path / "kdedge" / "assets" / "student_x2.safetensors", None, recycle_interval=2000, recycle_until=0.75)
    assert not common.default_is_distilled(tmp_path)
    assert common.find_twin(tmp_path)[0] is None  # the teacher-less runs are not its counterpart
    ckpt(tmp_path / "runs" / "recycled" / "distilled" / "last.safetensors", {"spec": "imdn"}, recycle_interval=2000,
         recycle_until=0.75)
    found, note = common.find_twin(tmp_path)
    assert found == tmp_path / "runs" / "recycled" / "distilled" / "last.safetensors" and "a teacher" in note


def test_ship_bundle_ships_the_default_students_training_checkpoint(tmp_path):
    """A `kdedge qat` fine-tune ships with the checkpoint it started from as student_x2.safetensors (the suite's
    reference for the teacher's share); a source that is not a file stops the release before anything changes."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from ship_bundle import default_student_source
    finally:
        sys.path.pop(0)
    from kdedge.checkpoint import save_checkpoint
    from kdedge.models import create_model

    module = create_model("anchor", scale=2, color="y", width=4, depth=1)
    trained = tmp_path / "last.safetensors"
    save_checkpoint(trained, module, arch="anchor", model_args={"width": 4, "depth": 1}, scale=2, color="y")
    qat = tmp_path / "qat.safetensors"
    save_checkpoint(qat, module, arch="anchor", model_args={"width": 4, "depth": 1}, scale=2, color="y",
                    extra={"qat": {"source": str(trained)}})
    assert default_student_source(str(trained)) == trained
    assert default_student_source(str(qat)) == trained
    gone = tmp_path / "bundle-sourced.safetensors"
    save_checkpoint(gone, module, arch="anchor", model_args={"width": 4, "depth": 1}, scale=2, color="y",
                    extra={"qat": {"source": "kdedge/assets/default_x2/model.onnx (sha256 ab12)"}})
    with pytest.raises(SystemExit, match="nothing was replaced.*--student"):
        default_student_source(str(gone))
    assert default_student_source(str(gone), student=str(trained)) == trained
