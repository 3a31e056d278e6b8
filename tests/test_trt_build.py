"""runtime/trt_build.py: the parts that run without a GPU (build plan, calibration batches and cache,
version parsing, clear errors). The engine build itself needs TensorRT and a GPU: it is skipped
here, with that reason, and has never executed on this machine."""
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
    with pytest.raises(KdedgeError, match="8.x only"):
        tb.plan_build(10, "int8", _Bundle(("fp32", "int8")), implicit_calibration=True)
    plan = tb.plan_build(8, "int8", _Bundle(("fp32",)), implicit_calibration=True)
    assert plan == {"file_precision": "fp32", "strongly_typed": False, "flags": ["INT8"], "calibrator": True}


def test_versions():
    assert tb.trt_major("8.5.2.2") == 8 and tb.trt_major("10.3.0.26") == 10 and tb.trt_major("11.4.0.106") == 11
    assert tb.short_version("10.3.0.26") == "10.3"
    for bad in ("7.1.3", "12.0.0", "abc"):
        with pytest.raises(KdedgeError):
            tb.trt_major(bad)


def test_calibration_batches_are_fixed_shape_and_exhaust():
    rng = np.random.default_rng(0)
    images = [rng.random((1, 40, 50), dtype=np.float32), rng.random((1, 1, 20, 30), dtype=np.float32),
              rng.random((1, 64, 64), dtype=np.float32), rng.random((1, 33, 33), dtype=np.float32),
              rng.random((1, 33, 33), dtype=np.float32)]
    batches = tb.CalibrationBatches(images, batch_size=2, hw=(32, 32))
    assert batches.shape == [2, 1, 32, 32] and len(batches) == 2
    got = []
    while True:
        b = batches.next_batch()
        if b is None:
            break
        assert b.shape == (2, 1, 32, 32) and b.dtype == np.float32 and b.flags["C_CONTIGUOUS"]
        got.append(b)
    assert len(got) == 2  # the 5th image would make a partial batch: dropped
    # centre crop of the 40x50 image, edge padding of the 20x30 one
    np.testing.assert_array_equal(got[0][0, 0], images[0][0, 4:36, 9:41])
    np.testing.assert_array_equal(got[0][1, 0, :20, :30], images[1][0, 0])
    np.testing.assert_array_equal(got[0][1, 0, 25, :30], images[1][0, 0, 19])
    batches.reset()
    np.testing.assert_array_equal(batches.next_batch(), got[0])
    with pytest.raises(KdedgeError):
        tb.CalibrationBatches(images[:1], batch_size=2)
    with pytest.raises(KdedgeError, match="C x H x W"):
        tb.CalibrationBatches([np.zeros((5, 5), np.float32)])


def test_calibration_cache_round_trip(tmp_path):
    cache = tb.CalibrationCache(tmp_path / "engines" / "calibration.cache")
    assert cache.read() is None
    cache.write(b"TRT-8601-EntropyCalibration2\nlr: 3c010a14\n")
    assert cache.read().startswith(b"TRT-8601")
    assert [p.name for p in (tmp_path / "engines").iterdir()] == ["calibration.cache"]  # no temp file left


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


def test_real_engine_build():
    pytest.importorskip("tensorrt", reason="needs TensorRT and an NVIDIA GPU (a Jetson): never executed on the CPU-only dev machines")


def test_trt_build_is_python38_clean():
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    if not Path(vermin).exists():
        pytest.skip("vermin not installed (pip install vermin)")
    out = subprocess.run([vermin, "-t=3.8-", "--no-tips", "--violations", "--eval-annotations",
                          str(REPO / "runtime" / "trt_build.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
