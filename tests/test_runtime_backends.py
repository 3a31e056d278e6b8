"""Backends: the ONNX Runtime CPU backend end to end; TensorRT only where a GPU exists (skips here)."""
from __future__ import annotations

import numpy as np
import pytest

from kdedge.errors import KdedgeError
from kdedge.runtime.backends import available_backends, create_backend, resolve_backend
from kdedge.runtime.backends.trt import tensorrt_available
from kdedge.runtime.bundle import load_bundle

try:
    from test_runtime_helpers import make_bundle
except ImportError:
    from tests.test_runtime_helpers import make_bundle


def test_ort_cpu_contract(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "b"))
    be = create_backend(bundle, "ort-cpu", "auto", threads=1)
    x = np.random.RandomState(1).rand(1, 1, 6, 9).astype(np.float32)
    with pytest.raises(KdedgeError, match="before activate"):
        be.infer({"lr": x})
    with be:
        meta = be.input_metadata()
        assert list(meta) == ["lr"] and meta["lr"][1][:2] == [1, 1] and meta["lr"][1][2] is None
        y = be.infer({"lr": x})["sr"]
        assert y.shape == (1, 1, 12, 18)
        np.testing.assert_allclose(y[0, 0, ::2, ::2], x[0, 0], atol=1e-6)
        assert be.inference_time is not None and be.inference_time > 0
        assert "onnxruntime-cpu" in be.label and "fp32" in be.label
        with pytest.raises(KdedgeError, match="float64"):
            be.infer({"lr": x.astype(np.float64)})
        with pytest.raises(KdedgeError, match="shape"):
            be.infer({"lr": x[0]})
    assert not be.is_active


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
