"""The gate's fast PSNR path gives exactly what `kdedge eval` (kdedge.evaluate) gives for the same model."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_export_helpers import tiny_anchor

pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[1]


def test_valset_matches_kdedge_eval(tmp_path):
    import shutil

    from kdedge.evaluate import evaluate, onnx_upscaler
    from kdedge.export.onnx_export import export_onnx
    from kdedge.export.report import ValSet, accuracy_table, format_table

    folder = tmp_path / "val"
    folder.mkdir()
    for name in ("camera_0.png", "chelsea_2.png", "coins_1.png"):  # gray and RGB
        shutil.copy(REPO / "calib_data" / name, folder / name)
    path = export_onnx(tiny_anchor(), tmp_path / "m.onnx")
    val = ValSet.from_folder(folder, 2, "y")
    rows = accuracy_table({"fp32": path, "again": path}, val, backends=["ort-cpu"])
    with onnx_upscaler(path, 2) as up:
        ref = evaluate(up, folder, progress=False)
    assert rows[0]["psnr_vs_gt"] == pytest.approx(ref["psnr_y"], abs=1e-3)
    assert rows[1]["psnr_vs_fp32"] == 100.0 and rows[1]["drop_db"] == 0
    assert "PSNR-Y vs GT" in format_table(rows)


def test_drop_estimator_measures_added_deviation():
    import numpy as np

    from kdedge.export.report import ValSet

    rng = np.random.default_rng(0)
    hr = [(rng.random((32, 32, 3)) * 255).astype(np.uint8) for _ in range(2)]
    val = ValSet(hr, ["a", "b"], 2, "y")

    def nearest(x):
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    estimate = val.drop_estimator(nearest)
    assert estimate(nearest) == 0.0
    small = estimate(lambda x: nearest(x) + 0.002)
    big = estimate(lambda x: nearest(x) + 0.01)
    assert 0 < small < big
    # the same deviation costs more on top of a smaller error: 10 log10(1 + d / e)
    d = (0.01 * 255) ** 2
    y0 = [val.outputs_y(nearest)[i][2:-2, 2:-2] for i in range(2)]
    e = [np.mean((y - it.hr_y[2:-2, 2:-2]) ** 2) for y, it in zip(y0, val.items)]
    assert big == pytest.approx(np.mean([10 * np.log10(1 + d / m) for m in e]), rel=1e-3)


def test_gate_table_has_a_row_per_available_backend(tmp_path):
    """One row per precision per CPU backend installed (ONNX Runtime always, OpenVINO when it imports,
    with its bf16 row where the CPU has bf16); every row compared with ONNX Runtime's FP32."""
    import shutil

    from kdedge.export.onnx_export import export_onnx
    from kdedge.export.report import ValSet, accuracy_table, format_table, table_backends
    from kdedge.runtime.backends import available_backends

    folder = tmp_path / "val"
    folder.mkdir()
    for name in ("camera_0.png", "chelsea_2.png"):
        shutil.copy(REPO / "calib_data" / name, folder / name)
    path = export_onnx(tiny_anchor(), tmp_path / "m.onnx")
    val = ValSet.from_folder(folder, 2, "y")
    backends = table_backends()
    assert backends[0] == "ort-cpu" and ("openvino" in backends) == ("openvino" in available_backends())
    rows = accuracy_table({"fp32": path, "int8_naive_minmax": path}, val)
    got = {(r["backend"], r["precision"]) for r in rows}
    want = {("ort-cpu", "fp32"), ("ort-cpu", "int8_naive_minmax")}
    if "openvino" in backends:
        from kdedge.runtime.backends.openvino import cpu_has_bf16

        want |= {("openvino", "fp32")} | ({("openvino", "bf16")} if cpu_has_bf16() else set())
    assert got == want  # the baseline (report_only) runs on ONNX Runtime only
    by = {(r["backend"], r["precision"]): r for r in rows}
    assert by[("ort-cpu", "fp32")]["psnr_vs_fp32"] is None and by[("ort-cpu", "fp32")]["engine"].startswith("onnxruntime")
    if "openvino" in backends:
        ov = by[("openvino", "fp32")]
        assert ov["engine"].startswith("openvino") and "bf16" not in ov["engine"]  # FP32 means f32
        assert ov["psnr_vs_fp32"] > 60 and abs(ov["drop_db"]) < 1e-3
    table = format_table(rows)
    assert table.splitlines()[0].startswith("backend") and all(b in table for b in backends)
