"""runtime/trt_build.py: the parts that run without a GPU (build plan, timing-cache naming and
fallback, version parsing, clear errors). The engine build itself needs TensorRT and a GPU:
test_real_engine_build builds and runs a tiny engine where they exist, skips here with that reason,
and has never executed on the development machines."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdedge.errors import KdedgeError
from kdedge.runtime import trt_build as tb

REPO = Path(__file__).resolve().parents[1]


class _Bundle:
    """The two attributes plan_build reads (a real Bundle needs files; the plan does not)."""

    def __init__(self, precisions):
        self.precisions = {p: {} for p in precisions}
        self.path = Path("bundle")


@pytest.mark.parametrize("major,precision,has,expect", [
    (8, "int8", ("fp32", "int8"), ("int8", False, ["INT8"])),
    (10, "int8", ("fp32", "int8"), ("int8", True, [])),
    (11, "int8", ("fp32", "int8"), ("int8", True, [])),
    (8, "fp16", ("fp32", "fp16"), ("fp32", False, ["FP16"])),
    (10, "fp16", ("fp32", "fp16"), ("fp16", True, [])),
    (10, "fp16", ("fp32",), ("fp32", False, ["FP16"])),
    (11, "fp16", ("fp32", "fp16"), ("fp16", True, [])),
    (8, "fp32", ("fp32",), ("fp32", False, [])),
    (10, "fp32", ("fp32",), ("fp32", True, [])),
])
def test_build_plan_per_version(major, precision, has, expect):
    plan = tb.plan_build(major, precision, _Bundle(has))
    assert (plan["file_precision"], plan["strongly_typed"], plan["flags"]) == expect


def test_build_plan_refusals():
    with pytest.raises(KdedgeError, match="TensorRT 11 builds FP16 only"):
        tb.plan_build(11, "fp16", _Bundle(("fp32",)))
    with pytest.raises(KdedgeError, match="no int8"):
        tb.plan_build(10, "int8", _Bundle(("fp32",)))
    assert not hasattr(tb, "make_entropy_calibrator")  # implicit calibration is gone: explicit Q/DQ only


def test_versions():
    assert tb.trt_major("8.5.2.2") == 8 and tb.trt_major("10.3.0.26") == 10 and tb.trt_major("11.4.0.106") == 11
    assert tb.short_version("10.3.0.26") == "10.3"
    for bad in ("7.1.3", "12.0.0", "abc"):
        with pytest.raises(KdedgeError):
            tb.trt_major(bad)


def test_timing_cache_is_named_per_device_and_version(tmp_path):
    p = tb.timing_cache_path(tmp_path, "nvidia-jetson-orin-nano", "10.3.0.26")
    assert p == tmp_path / "timing.nvidia-jetson-orin-nano.trt10.3.cache"
    assert tb.timing_cache_path(tmp_path, "Orin NX/16GB", "8.5.2.2").name == "timing.Orin-NX-16GB.trt8.5.cache"
    assert tb.timing_cache_path(tmp_path, "a", "8.6.1") != tb.timing_cache_path(tmp_path, "a", "10.3.0")
    assert tb.read_timing_cache(tmp_path / "missing.cache") == b""
    (tmp_path / "dir.cache").mkdir()
    assert tb.read_timing_cache(tmp_path / "dir.cache") == b""  # unreadable as a file: start empty


class _Config:
    """STAND-IN for IBuilderConfig's two timing-cache calls (tests kdedge's fallback, not TensorRT):
    create_timing_cache returns None for data it rejects, set_timing_cache False for a mismatch."""

    def __init__(self, create_none_for=(), reject=(), empty_fails=False):
        self.create_none_for, self.reject, self.empty_fails = create_none_for, reject, empty_fails
        self.attached = []

    def create_timing_cache(self, data):
        if data in self.create_none_for or (data == b"" and self.empty_fails):
            return None
        return ("cache", bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch):
        assert cache is not None and ignore_mismatch is False
        if cache[1] in self.reject:
            return False
        self.attached.append(cache)
        return True


@pytest.mark.parametrize("data,config,expect,said", [
    (b"good", _Config(), ("cache", b"good"), ""),
    (b"", _Config(), ("cache", b""), ""),
    (b"damaged", _Config(create_none_for=(b"damaged",)), ("cache", b""), "starting empty"),  # None: no TypeError
    (b"other-gpu", _Config(reject=(b"other-gpu",)), ("cache", b""), "starting empty"),
    (b"x", _Config(create_none_for=(b"x",), empty_fails=True), None, "without one"),
])
def test_timing_cache_fallbacks(data, config, expect, said):
    logs = []
    got = tb.load_timing_cache(config, data, logs.append)
    assert got == expect
    assert config.attached == ([] if expect is None else [expect])
    assert (said in " ".join(logs)) if said else not logs


def test_device_slug_from_environment(monkeypatch):
    monkeypatch.setenv("KDEDGE_DEVICE", "orin-nano")
    assert tb.device_slug() == "orin-nano"


def test_build_engine_without_tensorrt_is_a_clear_error(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here; this test covers machines without it")
    except ImportError:
        pass
    with pytest.raises(KdedgeError, match="TensorRT is not importable"):
        tb.build_engine(tmp_path, "int8")


def test_real_engine_build(tmp_path):
    """Where TensorRT and a GPU exist: build a tiny FP32 engine from a bundle, deserialize it, and (with
    pycuda) run it through TrtBackend against ONNX Runtime. Never executed on the development machines."""
    trt = pytest.importorskip("tensorrt", reason="needs TensorRT and an NVIDIA GPU (a Jetson): never executed on the CPU-only dev machines")
    try:
        from test_runtime_helpers import make_bundle
    except ImportError:
        from tests.test_runtime_helpers import make_bundle
    from kdedge.runtime.bundle import load_bundle

    bundle = load_bundle(make_bundle(tmp_path / "b", color="y"))
    engine = tb.build_engine(bundle, "fp32", device="test", log=lambda msg: None)
    assert engine.is_file() and engine.name == "model.fp32.test.trt%s.engine" % tb.short_version(trt.__version__)
    assert tb.timing_cache_path(bundle.engines_dir, "test", trt.__version__).is_file()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    assert runtime.deserialize_cuda_engine(engine.read_bytes()) is not None
    pytest.importorskip("pycuda.driver", reason="engine built and deserialized; running it needs pycuda")
    from kdedge.runtime.backends import create_backend
    from kdedge.runtime.backends.trt import TrtBackend

    x = np.random.RandomState(0).rand(1, 1, 24, 40).astype(np.float32)
    with TrtBackend(engine) as be, create_backend(bundle, "ort-cpu", "fp32") as ref:
        assert be.input_limits() == ((8, 8), (1088, 1920))
        np.testing.assert_allclose(be.infer({"lr": x})["sr"], ref.infer({"lr": x})["sr"], atol=1e-3)


def test_trt_build_is_python38_clean():
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    if not Path(vermin).exists():
        pytest.skip("vermin not installed (pip install vermin)")
    out = subprocess.run([vermin, "-t=3.8-", "--no-tips", "--violations", "--eval-annotations",
                          str(REPO / "runtime" / "trt_build.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
