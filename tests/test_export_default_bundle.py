"""The shipped bundle kdedge/assets/default_x2: valid, TensorRT-form INT8, and its recorded numbers reproduce."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "kdedge" / "assets" / "default_x2"

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(not (BUNDLE / "manifest.json").is_file(), reason="no default bundle shipped yet")


def test_default_bundle_is_valid_and_symmetric():
    import onnx

    from kdedge.export.quantize import check_qdq_form
    from kdedge.runtime.bundle import load_bundle

    bundle = load_bundle(BUNDLE)
    assert bundle.scale == 2 and bundle.color == "y" and bundle.default_precision == "int8"
    for prec in bundle.precisions:
        bundle.model_path(prec)  # sha256 matches the manifest
    counts = check_qdq_form(onnx.load(str(bundle.model_path("int8"))))
    assert counts["per_channel"] > 0
    q = bundle.manifest.precisions["int8"]["quantization"]
    assert q["activations"] == "int8-symmetric" and q["weights"] == "int8-per-channel-symmetric"
    assert bundle.manifest.accuracy["onnx_parity_max_abs"] <= 1e-4
    datasets = {r["dataset"].split(" ")[0] for r in bundle.manifest.accuracy["rows"]}
    assert {"calib_data/", "Set5", "Set14"} <= datasets


def test_default_bundle_int8_stays_close_to_fp32():
    from kdedge.evaluate import bundle_upscaler
    from kdedge.export.report import ValSet

    val = ValSet.from_folder(REPO / "calib_data", 2, "y")
    val.items = val.items[::8]  # 5 images keep this quick
    with bundle_upscaler(BUNDLE, "fp32") as a, bundle_upscaler(BUNDLE, "int8") as b:
        fp32, int8 = val.outputs_y(a), val.outputs_y(b)
    assert val.psnr_between(int8, fp32) > 40.0
    assert abs(val.psnr_vs_gt(fp32) - val.psnr_vs_gt(int8)) < 0.3


@pytest.mark.shared
def test_recorded_set5_numbers_reproduce(shared_dir):
    from kdedge.evaluate import bundle_upscaler, evaluate
    from kdedge.runtime.bundle import load_bundle

    bundle = load_bundle(BUNDLE)
    rows = {r["precision"]: r for r in bundle.manifest.accuracy["rows"]
            if r["dataset"].startswith("Set5") and r.get("backend", "ort-cpu") == "ort-cpu"}
    for prec in ("fp32", "int8"):
        with bundle_upscaler(bundle, prec, "ort-cpu") as up:
            got = evaluate(up, shared_dir / "data" / "test" / "Set5", progress=False)
        assert got["psnr_y"] == pytest.approx(rows[prec]["psnr_vs_gt"], abs=2e-3)
    assert rows["int8"]["drop_db"] < rows["int8_naive_minmax"]["drop_db"]


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("prec, tol", [("fp32", 0.001), ("int8", 0.005), ("int8_u8s8", 0.005)])
def test_openvino_scores_what_onnx_runtime_scores_on_set5(shared_dir, prec, tol):
    """Issue 11's acceptance on a shipped file: `kdedge eval`'s path through OpenVINO and through ONNX
    Runtime: FP32 within 0.001 dB (f32 on OpenVINO, no silent bf16), INT8 within 0.005 dB."""
    pytest.importorskip("openvino")
    from kdedge.evaluate import BackendUpscaler, bundle_upscaler, evaluate
    from kdedge.runtime.backends.openvino import OpenVinoBackend, cpu_has_bf16

    set5 = shared_dir / "data" / "test" / "Set5"
    got = {}
    for backend in ("ort-cpu", "openvino"):
        with bundle_upscaler(BUNDLE, prec, backend) as up:
            got[backend] = evaluate(up, set5, progress=False)["psnr_y"]
    diff = got["openvino"] - got["ort-cpu"]
    assert abs(diff) <= tol, (prec, got)
