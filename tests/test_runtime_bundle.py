"""The bundle manifest: round trip through write_manifest/load_bundle, and the errors users will meet."""
from __future__ import annotations

import json

import pytest

from kdedge.errors import KdedgeError
from kdedge.runtime.bundle import load_bundle, write_manifest

try:
    from test_runtime_helpers import make_bundle
except ImportError:  # tests/ imported as a package
    from tests.test_runtime_helpers import make_bundle


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_round_trip(tmp_path):
    folder = make_bundle(tmp_path / "b", color="rgb", scale=2)
    b = load_bundle(folder)
    assert (b.scale, b.color, b.channels, b.input_name, b.output_name) == (2, "rgb", 3, "lr", "sr")
    assert b.resolve_precision("auto") == "fp32"
    assert b.model_path("fp32").name == "model.onnx"
    # accepting the manifest path itself too
    assert load_bundle(folder / "manifest.json").name == b.name
    assert not list(folder.glob("*.tmp")), "atomic write left a temp file"


def test_bad_sha256_is_caught_when_opened(tmp_path):
    folder = make_bundle(tmp_path / "b")
    with open(str(folder / "model.onnx"), "ab") as f:
        f.write(b"\0")
    b = load_bundle(folder)  # lazy: loading still works
    with pytest.raises(KdedgeError, match="sha256"):
        b.model_path("fp32")


def test_unknown_format_version_and_missing_field(tmp_path):
    folder = make_bundle(tmp_path / "b")
    m = _manifest(folder)
    m["format_version"] = 2
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KdedgeError, match="format_version"):
        load_bundle(folder)
    m["format_version"] = 1
    del m["scale"]
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KdedgeError, match="'scale'"):
        load_bundle(folder)


def test_write_manifest_rejects_bad_input(tmp_path):
    folder = make_bundle(tmp_path / "b")
    m = _manifest(folder)
    m["precisions"]["fp32"]["sha256"] = "0" * 64
    with pytest.raises(KdedgeError, match="hashes to"):
        write_manifest(folder, m)
    m = _manifest(folder)
    m["output"]["channels"] = 3
    with pytest.raises(KdedgeError, match="output.channels"):
        write_manifest(folder, m)
    m = _manifest(folder)
    m["default_precision"] = "int8"
    with pytest.raises(KdedgeError, match="default_precision"):
        write_manifest(folder, m)
    m = _manifest(folder)
    m["precisions"]["fp32"]["file"] = "../escape.onnx"
    with pytest.raises(KdedgeError):
        write_manifest(folder, m)


def test_not_a_bundle(tmp_path):
    with pytest.raises(KdedgeError, match="no manifest.json"):
        load_bundle(tmp_path)
    with pytest.raises(KdedgeError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    b = load_bundle(make_bundle(tmp_path / "b"))
    with pytest.raises(KdedgeError, match="no 'int8' precision"):
        b.model_path("int8")


def test_auto_precision_per_backend(tmp_path):
    """ORT CPU runs FP32 by default (measured faster than the mixed Q/DQ graphs on CPUs); TensorRT
    takes the symmetric INT8 the bundle defaults to."""
    from kdedge.runtime.backends import resolve_precision
    from kdedge.runtime.bundle import load_bundle

    from pathlib import Path

    bundle = load_bundle(Path(__file__).resolve().parents[1] / "kdedge" / "assets" / "default_x2")
    assert resolve_precision(bundle, "ort-cpu", "auto") == "fp32"
    assert resolve_precision(bundle, "tensorrt", None) == bundle.default_precision == "int8"
    assert resolve_precision(bundle, "ort-cpu", "int8_u8s8") == "int8_u8s8"


def test_shipped_bundles_load_by_name(tmp_path, monkeypatch):
    """`--model default` (or `fast`) means the bundle installed with the package; a name that is
    neither a folder nor shipped says which names exist."""
    from pathlib import Path

    from kdedge.errors import KdedgeError
    from kdedge.runtime.bundle import load_bundle, shipped_bundles

    shipped = shipped_bundles()
    assert shipped["default"] == Path(__file__).resolve().parents[1] / "kdedge" / "assets" / "default_x2"
    monkeypatch.chdir(tmp_path)  # no folder called "default" here
    assert load_bundle("default").path.resolve() == shipped["default"]
    with pytest.raises(KdedgeError) as err:
        load_bundle("no_such_bundle")
    assert "default" in err.value.fix


def test_manifest_type_round_trips_the_shipped_manifests_byte_for_byte():
    """`Manifest` is the one schema: the shipped manifest.json files read into it and write back unchanged."""
    from pathlib import Path

    from kdedge.runtime.bundle import Manifest

    assets = Path(__file__).resolve().parents[1] / "kdedge" / "assets"
    for name in ("default_x2", "fast_x2"):
        text = (assets / name / "manifest.json").read_text()
        m = Manifest.from_dict(json.loads(text))
        assert json.dumps(m.to_dict(), indent=2) + "\n" == text
        assert m.spec == (2, "y", "lr", "sr", 1) and m.spec.channels == 1


def test_manifest_built_in_code_is_written_hashed_and_read_back(tmp_path):
    from kdedge.runtime.bundle import Manifest, ModelSpec

    folder = make_bundle(tmp_path / "b", color="rgb")
    m = Manifest(name="built", scale=2, color="rgb", shapes=_manifest(folder)["shapes"],
                 precisions={"fp32": {"file": "model.onnx"}}, default_precision="fp32", extra={"note": "kept"})
    m.write(folder)
    assert len(m.precisions["fp32"]["sha256"]) == 64  # filled in from the file
    b = load_bundle(folder)
    assert b.manifest == m and b.spec == ModelSpec(2, "rgb") and b.channels == 3
    assert list(_manifest(folder))[:3] == ["format", "format_version", "name"] and _manifest(folder)["note"] == "kept"
    assert "frame_graphs" not in _manifest(folder)  # optional keys left out when None
    m.default_precision = "int8"  # the writer runs the validator load_bundle runs
    with pytest.raises(KdedgeError, match="default_precision"):
        m.write(folder)
