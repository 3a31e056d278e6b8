"""`kdedge export` end to end on a tiny model: the bundle the runtime reads, the gate, bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kdedge.errors import KdedgeError
from test_export_helpers import tiny_anchor

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[1]


def _calib_subset(tmp_path, n=12) -> Path:
    folder = tmp_path / "calib"
    folder.mkdir()
    for p in sorted((REPO / "calib_data").glob("*.png"))[::3][:n]:
        shutil.copy(p, folder / p.name)
    return folder


def _opts(out, **kw):
    from kdedge.export.api import ExportOptions

    kw.setdefault("int8", True)
    kw.setdefault("calib_method", "percentile")
    return ExportOptions(out=out, log=lambda s: None, **kw)


@pytest.mark.slow
def test_bundle_is_read_by_the_runtime(tmp_path):
    from kdedge.evaluate import bundle_upscaler
    from kdedge.export.api import export_bundle
    from kdedge.runtime.bundle import load_bundle

    out = tmp_path / "bundle"
    result = export_bundle(tiny_anchor(), _opts(out, calib=_calib_subset(tmp_path), u8s8=True))
    assert sorted(p.name for p in out.iterdir()) == ["frame.fp32.onnx", "frame.int8.onnx", "frame.int8_u8s8.onnx",
                                                    "manifest.json", "model.fp16.onnx", "model.int8.onnx",
                                                    "model.int8_u8s8.onnx", "model.onnx"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.tmp")]  # temp sibling gone
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert (out / "model.int8.onnx").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    bundle = load_bundle(out)
    assert bundle.default_precision == "int8" and bundle.scale == 2 and bundle.color == "y"
    for prec in ("fp32", "int8", "fp16", "int8_u8s8"):
        bundle.model_path(prec)  # sha256 verified against the manifest
    assert sorted(bundle.frame_graphs) == ["fp32", "int8", "int8_u8s8"]  # whole-frame graphs (no fp16 one)
    bundle.frame_model_path("int8")
    m = json.loads((out / "manifest.json").read_text())
    rows = {r["precision"]: r for r in m["accuracy"]["rows"] if r["backend"] == "ort-cpu"}
    assert set(rows) == {"fp32", "int8", "int8_naive_minmax", "int8_u8s8", "fp16"}
    from kdedge.export.report import table_backends

    assert sorted({r["backend"] for r in m["accuracy"]["rows"]}) == sorted(table_backends())
    assert rows["fp32"]["psnr_vs_fp32"] is None and rows["int8"]["psnr_vs_fp32"] > 30
    assert rows["int8"]["images"] == 3  # images 0, 5, 10 of the 12 held out
    q = m["precisions"]["int8"]["quantization"]
    assert q["activations"] == "int8-symmetric" and "excluded_nodes" in q and q["calibration_images"] == 9
    assert m["accuracy"]["onnx_parity_max_abs"] <= 1e-4
    assert m["source"]["student"]["arch"] == "test_anchor" and m["tools"]["onnxruntime"]
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out / "model.int8.onnx")).metadata_props}
    assert meta["kdedge_precision"] == "int8" and meta["kdedge_arch"] == "test_anchor"
    with bundle_upscaler(out, "int8") as run:
        y = run(np.full((1, 1, 10, 12), 0.5, np.float32))
    assert y.shape == (1, 1, 20, 24) and run.scale == 2
    assert result["table"] == m["accuracy"]["rows"] and result["manifest"].to_dict() == m
    # The runtime's own ONNX Runtime backend runs every precision unchanged.
    from kdedge.runtime.backends import create_backend

    x = np.random.default_rng(0).random((1, 1, 24, 40), dtype=np.float32)
    for prec in ("fp32", "int8", "fp16", "int8_u8s8"):
        with create_backend(bundle, "ort-cpu", prec) as be, bundle_upscaler(bundle.path, prec) as run:
            np.testing.assert_allclose(be.infer({"lr": x})["sr"], run(x), atol=1e-6)


def test_gate_fails_and_leaves_nothing(tmp_path):
    """Calibrating on dark images and validating on bright ones clips every range: over the gate."""
    import cv2

    from kdedge.export.api import export_bundle

    dark = tmp_path / "dark"
    dark.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(dark / ("d%d.png" % i)), (rng.random((48, 48)) * 12).astype(np.uint8))
    val = tmp_path / "val"
    val.mkdir()
    for p in sorted((REPO / "calib_data").glob("*.png"))[:2]:
        shutil.copy(p, val / p.name)
    out = tmp_path / "bundle"
    with pytest.raises(KdedgeError, match="more than --max-drop") as info:
        export_bundle(tiny_anchor(), _opts(out, calib=dark, val=val, calib_method="minmax", fp16=False, max_drop=0.1))
    assert "hurt most" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dark", "val"]  # no bundle, no temp folder


def test_conflicting_and_bad_options(tmp_path):
    from kdedge.export.api import export_bundle

    with pytest.raises(KdedgeError, match="only applies to INT8"):
        export_bundle(tiny_anchor(), _opts(tmp_path / "b", int8=False, calib=tmp_path, calib_method="auto"))
    with pytest.raises(KdedgeError, match="--u8s8 .* needs --int8"):
        export_bundle(tiny_anchor(), _opts(tmp_path / "b", int8=False, u8s8=True))
    with pytest.raises(KdedgeError, match="--max-drop only applies to INT8"):
        export_bundle(tiny_anchor(), _opts(tmp_path / "b", int8=False, calib_method="auto", max_drop=0.2))
    try:
        import tensorrt  # noqa: F401
    except ImportError:  # the usual case off a Jetson: say so before any work is done
        with pytest.raises(KdedgeError, match="--engine needs TensorRT"):
            export_bundle(tiny_anchor(), _opts(tmp_path / "b", engine=True))
    (tmp_path / "exists").mkdir()
    with pytest.raises(KdedgeError, match="already exists"):
        export_bundle(tiny_anchor(), _opts(tmp_path / "exists"))
    with pytest.raises(KdedgeError, match="does not exist"):
        export_bundle(tiny_anchor(), _opts(tmp_path / "no" / "such" / "b"))
    # /proc refuses new folders even to root: the portable "not writable" folder
    with pytest.raises(KdedgeError, match="cannot write into /proc"):
        export_bundle(tiny_anchor(), _opts("/proc/kdedge-bundle"))
    with pytest.raises(KdedgeError, match="calibration folder .* does not exist"):
        export_bundle(tiny_anchor(), _opts(tmp_path / "b2", calib=tmp_path / "missing"))
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted((REPO / "calib_data").glob("*.png"))[:6]:
        shutil.copy(p, few / p.name)
    with pytest.raises(KdedgeError, match="needs at least 8"):
        export_bundle(tiny_anchor(), _opts(tmp_path / "b3", calib=few))
    assert not (tmp_path / "b2").exists() and not (tmp_path / "b3").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_cli_unknown_architecture_and_missing_args(tmp_path, capsys):
    from kdedge.checkpoint import save_checkpoint
    from kdedge.cli import main

    ckpt = tmp_path / "odd.safetensors"
    save_checkpoint(ckpt, tiny_anchor().module, arch="no_such_student", model_args={}, scale=2, color="y")
    assert main(["export", str(ckpt), "--int8", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "no_such_student" in err and "fix:" in err
    assert main(["export", "--int8"]) == 1
    assert "no model given" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--max-drop", "0.1", "--out", str(tmp_path / "c")]) == 1
    assert "--max-drop only applies to INT8" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_cli_flags_and_help_come_from_formats(capsys):
    """FORMATS drives the flags and the formats table of `--help`; the flags' defaults are ExportOptions'."""
    from kdedge.cli import build_parser
    from kdedge.export.api import FORMATS, ExportOptions

    _, parser = build_parser("export")
    args = parser.parse_args(["ckpt", "--out", "b"])
    default = ExportOptions(out="b")
    for f in FORMATS.values():
        if f["option"]:
            assert getattr(args, f["option"]) == getattr(default, f["option"])
    assert (args.calib_method, args.mixed, args.max_drop) == (default.calib_method, default.mixed_precision, default.max_drop)
    text = parser.format_help()
    assert "model.int8_u8s8.onnx" in text and "--engine" in text and "--u8s8 (with --int8)" in text


@pytest.mark.slow
def test_cli_export_of_a_checkpoint(tmp_path, capsys):
    from kdedge.checkpoint import save_checkpoint
    from kdedge.cli import main
    from kdedge.models import create_model

    net = create_model("anchor", scale=2, color="y", width=8, depth=1)
    ckpt = tmp_path / "s.safetensors"
    save_checkpoint(ckpt, net, arch="anchor", model_args={"width": 8, "depth": 1}, scale=2, color="y")
    out = tmp_path / "bundle"
    code = main(["export", str(ckpt), "--int8", "--calib", str(_calib_subset(tmp_path)), "--calib-method", "mse",
                 "--max-drop", "5", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "kdedge eval --model %s" % out in text and "kdedge bench" in text and "kdedge.camera" in text
    assert "PSNR-Y vs GT" in text
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"]["student"]["checkpoint_sha256"] and m["precisions"]["int8"]["quantization"]["calibration"] == "mse"
