"""The whole-frame graph (export/frame_graph.py): BGR uint8 in, BGR uint8 out, colour work inside the model.

Checked against the Python colour path it replaces (runtime/colour.py around the Y model), on the shipped
bundles, through every installed CPU backend, and inside the real pipeline.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from kdedge.errors import KdedgeError
from kdedge.runtime import colour
from kdedge.runtime.backends import choose_frame_graph, create_backend, open_model
from kdedge.runtime.bundle import load_bundle, shipped_bundles
from kdedge.runtime.pipeline import run_pipeline
from kdedge.runtime.processor import SRProcessor
from kdedge.runtime.sources import open_source

try:
    from test_runtime_helpers import make_bundle, make_onnx
except ImportError:
    from tests.test_runtime_helpers import make_bundle, make_onnx

cv2 = pytest.importorskip("cv2")
onnx = pytest.importorskip("onnx")
HAVE_OPENVINO = importlib.util.find_spec("openvino") is not None
BACKENDS = ["ort-cpu", pytest.param("openvino", marks=pytest.mark.skipif(not HAVE_OPENVINO, reason="openvino not installed"))]


def _frames(w: int, h: int, n: int = 3):
    src = open_source("test://?size=%dx%d&fps=0" % (w, h))
    return [src.frame(7 * i + 1) for i in range(n)]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_phase_kernels_are_opencv_bicubic(tmp_path, scale):
    """Pad(edge) + depthwise conv + DepthToSpace == cv2.resize INTER_CUBIC on uint8, within rounding."""
    from onnx import TensorProto, helper, numpy_helper

    from kdedge.export.frame_graph import bicubic_phase_kernels

    k = bicubic_phase_kernels(scale)
    assert k.shape == (scale * scale, 1, 5, 5)
    np.testing.assert_allclose(k.sum(axis=(1, 2, 3)), 1.0, atol=1e-12)  # every phase preserves flat colour
    graph = helper.make_graph(
        [helper.make_node("Pad", ["x", "pads"], ["xp"], mode="edge"),
         helper.make_node("Conv", ["xp", "k"], ["ph"]),
         helper.make_node("DepthToSpace", ["ph"], ["y"], blocksize=scale, mode="CRD")],
        "cubic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "H", "W"])],
        initializer=[numpy_helper.from_array(np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64), "pads"),
                     numpy_helper.from_array(k.astype(np.float32), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "cubic.onnx"))
    img = np.random.RandomState(scale).randint(0, 256, (23, 31), dtype=np.uint8)
    with open_model(tmp_path / "cubic.onnx") as be:
        up = be.infer({"x": img[None, None].astype(np.float32)})["y"][0, 0]
    ref = cv2.resize(img, (31 * scale, 23 * scale), interpolation=cv2.INTER_CUBIC)
    got = np.clip(np.round(up), 0, 255).astype(np.uint8)
    diff = np.abs(got.astype(int) - ref)
    # OpenCV rounds its weights to 11 bits: at x3 (thirds are not dyadic) 0.4% of pixels round the other way
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_frame_graphs_match_the_python_colour_path(name, backend):
    bundle = load_bundle(shipped_bundles()[name])
    for prec in ("fp32", "int8"):
        assert prec in bundle.frame_graphs
        frame_be = create_backend(bundle, backend, prec, threads=1, frame_graph="on")
        # the reference: the Y model in f32 (the graph's float layers are f32 too) and runtime/colour.py
        y_be = open_model(bundle.model_path(prec), backend, threads=1, precision="fp32")
        with frame_be, y_be:
            ref_proc = SRProcessor(bundle.spec, y_be)
            proc = SRProcessor(bundle.spec, frame_be)
            assert proc.frame_graph and not ref_proc.frame_graph
            within, exact, total = 0, 0, 0
            for frame in _frames(97, 61) + _frames(64, 48):  # odd sizes on purpose
                got = proc.process(frame)
                ref = ref_proc.process(frame)
                assert got.shape == ref.shape == (frame.shape[0] * 2, frame.shape[1] * 2, 3) and got.dtype == np.uint8
                diff = np.abs(got.astype(int) - ref.astype(int))
                within += int((diff <= 1).sum())
                exact += int((diff == 0).sum())
                total += diff.size
        assert within / total >= 0.999, (name, backend, prec, within / total)
        assert exact / total >= 0.99, (name, backend, prec, exact / total)


def test_pipeline_uses_the_frame_graph_only_when_asked_or_measured(tmp_path):
    bundle = load_bundle(shipped_bundles()["default"])
    auto = choose_frame_graph(bundle, "ort-cpu", "int8", "auto")
    assert auto.value == "off" and "measured" in auto.reason  # CPUs: the Python colour path is faster
    assert choose_frame_graph(bundle, "ort-cpu", "int8", "on").value == "on"
    assert choose_frame_graph(bundle, "tensorrt", "int8", "auto").value == "off"
    with pytest.raises(KdedgeError, match="tile"):
        choose_frame_graph(bundle, "ort-cpu", "int8", "on", tile=64)
    with pytest.raises(KdedgeError, match="none for fp16"):
        choose_frame_graph(bundle, "ort-cpu", "fp16", "on")
    tiny = load_bundle(make_bundle(tmp_path / "tiny"))  # exported before frame graphs existed: none
    assert choose_frame_graph(tiny, "ort-cpu", "fp32", "auto").value == "off"
    with pytest.raises(KdedgeError, match="frame-graph off"):
        choose_frame_graph(tiny, "ort-cpu", "fp32", "on")
    outs = {}
    for mode in ("on", "off"):
        out = tmp_path / mode
        s = run_pipeline("default", "test://?size=80x48&fps=0&frames=4", str(out) + "/", backend="ort-cpu",
                         precision="fp32", frame_graph=mode, quiet=True)
        assert s["frames_written"] == 4 and s["frame_graph"] == (mode == "on")
        outs[mode] = [cv2.imread(str(p)) for p in sorted(out.iterdir())]
    for a, b in zip(outs["on"], outs["off"]):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_frame_graph_needs_a_pixel_shuffle_student(tmp_path):
    from kdedge.export.frame_graph import build_frame_graph

    path = make_onnx(tmp_path / "m.onnx")
    build_frame_graph(path, 2)  # conv + DepthToSpace: fine
    proto = onnx.load(str(path))
    proto.graph.node[1].op_type = "Identity"  # no pixel shuffle at the end any more
    del proto.graph.node[1].attribute[:]
    with pytest.raises(ValueError, match="DepthToSpace"):
        build_frame_graph(proto, 2)


def test_manifest_checks_frame_graph_entries(tmp_path):
    import json
    import shutil

    from kdedge.runtime.bundle import MANIFEST, validate_manifest

    folder = tmp_path / "b"
    shutil.copytree(str(shipped_bundles()["fast"]), str(folder))
    manifest = json.loads((folder / MANIFEST).read_text())
    bad = dict(manifest, frame_graphs={"fp16": manifest["frame_graphs"]["fp32"]})
    bad["precisions"] = {k: v for k, v in manifest["precisions"].items() if k != "fp16"}
    with pytest.raises(KdedgeError, match="frame_graphs.fp16"):
        validate_manifest(bad)
    (folder / manifest["frame_graphs"]["int8"]["file"]).write_bytes(b"tampered")
    with pytest.raises(KdedgeError, match="sha256"):
        load_bundle(folder).frame_model_path("int8")
