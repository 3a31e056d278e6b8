"""The gate's fast PSNR path gives exactly what `kdedge eval` (kdedge.evaluate) gives for the same model."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_export_helpers import tiny_anchor

pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[1]


def test_valset_matches_kdedge_eval(tmp_path):
    import shutil

    from kdedge.evaluate import OnnxUpscaler, evaluate
    from kdedge.export.onnx_export import export_onnx
    from kdedge.export.report import ValSet, accuracy_table, format_table

    folder = tmp_path / "val"
    folder.mkdir()
    for name in ("camera_0.png", "chelsea_2.png", "coins_1.png"):  # gray and RGB
        shutil.copy(REPO / "calib_data" / name, folder / name)
    path = export_onnx(tiny_anchor(), tmp_path / "m.onnx")
    val = ValSet.from_folder(folder, 2, "y")
    rows = accuracy_table({"fp32": path, "again": path}, val)
    ref = evaluate(OnnxUpscaler(path, 2, "y"), folder, progress=False)
    assert rows[0]["psnr_vs_gt"] == pytest.approx(ref["psnr_y"], abs=1e-3)
    assert rows[1]["psnr_vs_fp32"] == 100.0 and rows[1]["drop_db"] == 0
    assert "PSNR-Y vs GT" in format_table(rows)
