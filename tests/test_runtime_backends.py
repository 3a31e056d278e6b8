"""Backends: every installed CPU backend (ONNX Runtime, OpenVINO) through one contract test; TensorRT only
where a GPU exists (skips here)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from kdedge.errors import KdedgeError
from kdedge.runtime.backends import (available_backends, choose_backend, choose_precision, create_backend,
                                     open_model, resolve_backend)
from kdedge.runtime.backends.trt import tensorrt_available
from kdedge.runtime.bundle import load_bundle

try:
    from test_runtime_helpers import make_bundle, make_onnx
except ImportError:
    from tests.test_runtime_helpers import make_bundle, make_onnx

HAVE_OPENVINO = importlib.util.find_spec("openvino") is not None
CPU_BACKENDS = ["ort-cpu", pytest.param("openvino", marks=pytest.mark.skipif(
    not HAVE_OPENVINO, reason="openvino is not installed (pip install openvino; CI installs it)"))]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_cpu_backend_contract(tmp_path, backend):
    bundle = load_bundle(make_bundle(tmp_path / "b"))
    be = create_backend(bundle, backend, "fp32", threads=1)
    x = np.random.RandomState(1).rand(1, 1, 6, 9).astype(np.float32)
    with pytest.raises(KdedgeError, match="before activate"):
        be.infer({"lr": x})
    with be:
        meta = be.input_metadata()
        assert list(meta) == ["lr"] and meta["lr"][1][:2] == [1, 1] and meta["lr"][1][2] is None
        y = be.infer({"lr": x})["sr"]
        assert y.shape == (1, 1, 12, 18)
        np.testing.assert_allclose(y[0, 0, ::2, ::2], x[0, 0], atol=1e-6)  # f32 compute: exact, no bf16
        assert be.inference_time is not None and be.inference_time > 0
        assert backend.split("-")[0] in be.label.replace("onnxruntime", "ort") and "fp32" in be.label
        with pytest.raises(KdedgeError, match="float64"):
            be.infer({"lr": x.astype(np.float64)})
        with pytest.raises(KdedgeError, match="shape"):
            be.infer({"lr": x[0]})
        # another size after the first (OpenVINO compiles per shape), then the first again
        x2 = np.random.RandomState(2).rand(1, 1, 11, 4).astype(np.float32)
        np.testing.assert_allclose(be.infer({"lr": x2})["sr"][0, 0, 1::2, 1::2], x2[0, 0], atol=1e-6)
        first = be.infer({"lr": x})["sr"]
        second = be.infer({"lr": x * 0.5})["sr"]
        assert not np.shares_memory(first, second) or getattr(be, "reuses_outputs", False)
    assert not be.is_active


@pytest.mark.skipif(not HAVE_OPENVINO, reason="openvino is not installed")
def test_openvino_bad_inputs_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(KdedgeError, match="cannot read .*garbage.onnx"):
        open_model(garbage, "openvino").activate()
    # a graph that reshapes to a constant 8x8 can only be compiled for 8x8 inputs: other sizes get an error naming the size
    import onnx
    from onnx import helper

    fixed = make_onnx(tmp_path / "fixed.onnx")
    proto = onnx.load(str(fixed))
    proto.graph.initializer.append(helper.make_tensor("shape", onnx.TensorProto.INT64, [4], [1, 4, 8, 8]))
    proto.graph.node[0].output[0] = "conv"
    proto.graph.node.insert(1, helper.make_node("Reshape", ["conv", "shape"], ["feat"]))
    onnx.save(proto, str(fixed))
    with open_model(fixed, "openvino", threads=1) as be:
        assert be.infer({"lr": np.zeros((1, 1, 8, 8), np.float32)})["sr"].shape == (1, 1, 16, 16)
        with pytest.raises(KdedgeError, match="input shape 1x1x9x8"):
            be.infer({"lr": np.zeros((1, 1, 9, 8), np.float32)})


@pytest.mark.skipif(not HAVE_OPENVINO, reason="openvino is not installed")
def test_openvino_float_compute_is_explicit(tmp_path):
    from kdedge.runtime.backends.openvino import cpu_has_bf16

    bundle = load_bundle(make_bundle(tmp_path / "b"))
    be = create_backend(bundle, "openvino", "fp32")
    assert be.config()["INFERENCE_PRECISION_HINT"] == "f32"  # never the plugin's silent bf16
    if cpu_has_bf16():
        bf = create_backend(bundle, "openvino", "bf16")
        assert bf.config()["INFERENCE_PRECISION_HINT"] == "bf16" and bf.precision == "bf16"
        with bf:
            x = np.random.RandomState(3).rand(1, 1, 8, 8).astype(np.float32)
            y = bf.infer({"lr": x})["sr"][0, 0, ::2, ::2]
            assert 0 < np.abs(y - x).max() < 1e-2  # bf16 keeps 8 mantissa bits: close, not exact
    else:
        with pytest.raises(KdedgeError, match="no bf16"):
            create_backend(bundle, "openvino", "bf16").activate()
    with pytest.raises(KdedgeError, match="bf16"):
        create_backend(bundle, "ort-cpu", "bf16")


def test_auto_precision_says_why(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "b"))
    ort = choose_precision(bundle, "ort-cpu", "auto")
    assert ort.value == "fp32" and "slower" in ort.reason
    assert choose_precision(bundle, "ort-cpu", "fp32").reason == "asked for"
    if HAVE_OPENVINO:
        from kdedge.runtime.backends.openvino import cpu_has_bf16

        ov = choose_precision(bundle, "openvino", "auto")
        assert ov.value == ("bf16" if cpu_has_bf16() else "fp32") and ov.reason  # the tiny bundle has no INT8 file
    auto = choose_backend("auto")
    assert auto.value in available_backends() and auto.reason
    if HAVE_OPENVINO and not tensorrt_available() and "ort-cuda" not in available_backends():
        assert auto.value == "openvino"


def test_auto_and_unknown_backend():
    assert "ort-cpu" in available_backends()
    picked = resolve_backend("auto")
    assert picked in available_backends()
    if not tensorrt_available():
        assert picked != "tensorrt"
    with pytest.raises(KdedgeError, match="unknown backend"):
        resolve_backend("magic")


def test_missing_provider_is_a_clear_error(tmp_path):
    if "ort-cuda" in available_backends():
        pytest.skip("this onnxruntime has CUDA")
    bundle = load_bundle(make_bundle(tmp_path / "b"))
    be = create_backend(bundle, "ort-cuda")
    with pytest.raises(KdedgeError, match="CUDAExecutionProvider"):
        be.activate()


@pytest.mark.skipif(not tensorrt_available(), reason="needs a GPU with TensorRT and pycuda (none on this machine)")
def test_tensorrt_matches_ort(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "b"))
    x = np.random.RandomState(2).rand(1, 1, 16, 24).astype(np.float32)
    with create_backend(bundle, "ort-cpu", "fp32") as ref, create_backend(bundle, "tensorrt", "fp32") as trt:
        np.testing.assert_allclose(trt.infer({"lr": x})["sr"], ref.infer({"lr": x})["sr"], atol=1e-3)


def test_tensorrt_absent_is_a_clear_error(tmp_path):
    if tensorrt_available():
        pytest.skip("TensorRT present")
    bundle = load_bundle(make_bundle(tmp_path / "b"))
    with pytest.raises(KdedgeError, match="TensorRT|pycuda"):
        create_backend(bundle, "tensorrt", "fp32")


@pytest.mark.parametrize("precision,model,fp16,int8", [
    ("fp32", "model.onnx", False, False),
    ("fp16", "model.fp16.onnx", True, False),
    ("int8", "model.int8.onnx", False, True),
    ("int8_u8s8", "model.int8_u8s8.onnx", False, True),
    (None, "model.onnx", False, False),  # no precision given: the file name decides
    (None, "model.fp16.onnx", True, False),
    ("fp32", "model.fp16.onnx", False, False),  # an explicit precision wins over the name
])
def test_ort_tensorrt_provider_options_follow_the_precision(precision, model, fp16, int8):
    from kdedge.runtime.backends.ort import tensorrt_provider_options

    opts = tensorrt_provider_options(precision, "/b/" + model, "/b/engines/ort-trt")
    assert opts["trt_fp16_enable"] is fp16 and opts["trt_int8_enable"] is int8
    assert opts["trt_engine_cache_enable"] is True and opts["trt_engine_cache_path"] == "/b/engines/ort-trt"
    with pytest.raises(KdedgeError, match="bf16"):
        tensorrt_provider_options("bf16", "/b/model.onnx", "/c")
