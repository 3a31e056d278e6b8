"""Build a TensorRT engine from a kdedge bundle, on the device that will run it (torch-free, Python 3.8+).

NOT EXECUTED HERE. The machines kdedge is developed and tested on have no GPU and no TensorRT
library. Every TensorRT call below is written against the documented Python API of each version it
claims, and tests/test_trt_symbols.py checks each `trt.` name and attribute used in a version branch
against the names extracted from that version's bindings wheel (scripts/extract_trt_symbols.py):
TensorRT 8.6 (standing in for 8.5, JetPack 5.1: no 8.5 wheel exists), 10.3 (JetPack 6.1+) and 11.4.
That proves names exist, not that the build works: the first real run is on a Jetson.

What is built, per TensorRT major version and precision:

| precision | 8.5 / 8.6                         | 10.x                               | 11.x                          |
|-----------|-----------------------------------|------------------------------------|-------------------------------|
| int8      | model.int8.onnx (Q/DQ), INT8 flag | model.int8.onnx, STRONGLY_TYPED    | model.int8.onnx (always typed)|
| fp16      | model.onnx, FP16 flag             | model.fp16.onnx typed, else FP16 flag on model.onnx | model.fp16.onnx       |
| fp32      | model.onnx                        | model.onnx, STRONGLY_TYPED         | model.onnx                    |
| int8 implicit (optional, `calibrator=`) | model.onnx + IInt8EntropyCalibrator2 | not offered (deprecated 10.1) | removed in 11 |

Explicit quantization (the Q/DQ file) is the path that works on every version; the implicit
calibrator exists for TensorRT 8.x users who want TensorRT's own entropy calibration. Its batch
stream (`CalibrationBatches`) and cache (`CalibrationCache`) are plain Python + numpy and are tested
here; only the thin `make_entropy_calibrator` subclass and its pycuda device copy are not.

Every engine gets one optimisation profile from the manifest's min/opt/max shapes, a timing cache
(bundle/engines/timing.cache, reused across builds on the same device), and a file name carrying the
device and TensorRT version (`Bundle.engine_path`); it is written to a temp file and renamed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence

import numpy as np

from kdedge.errors import KdedgeError
from kdedge.runtime.bundle import Bundle, atomic_write_bytes, load_bundle

TIMING_CACHE = "timing.cache"
DEFAULT_WORKSPACE_MB = 1024


def trt_major(version: str) -> int:
    """'8.5.2.2' -> 8. Raises KdedgeError for versions kdedge does not claim."""
    m = re.match(r"^(\d+)\.", str(version))
    if not m:
        raise KdedgeError("cannot read TensorRT version %r" % (version,))
    major = int(m.group(1))
    if major < 8 or major > 11:
        raise KdedgeError("TensorRT %s is not supported" % version, fix="kdedge builds engines with TensorRT 8.5-8.6, 10.x and 11.x")
    return major


def short_version(version: str) -> str:
    """'10.3.0.26' -> '10.3' (engine names: a minor version change invalidates an engine)."""
    parts = str(version).split(".")
    return ".".join(parts[:2])


def device_slug(default: str = "gpu") -> str:
    """A file-name-safe name of this device: the Jetson model from the device tree, else $KDEDGE_DEVICE."""
    env = os.environ.get("KDEDGE_DEVICE")
    if env:
        return env
    try:
        with open("/proc/device-tree/model", "rb") as f:
            model = f.read().decode("ascii", "ignore").strip("\x00 \n")
        if model:
            return re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-").lower()
    except OSError:
        pass
    return default


def plan_build(major: int, precision: str, bundle: Bundle, implicit_calibration: bool = False) -> dict:
    """Pure decision table (tested here): which ONNX file, whether strongly typed, which builder flags."""
    has = bundle.precisions
    if precision not in ("int8", "fp16", "fp32"):
        raise KdedgeError("no TensorRT build for precision %r" % precision, fix="choose int8, fp16 or fp32")
    if implicit_calibration:
        if precision != "int8" or major >= 10:
            raise KdedgeError("implicit INT8 calibration is offered for TensorRT 8.x only (deprecated in 10.1, removed in 11)",
                              fix="use the bundle's explicit Q/DQ model (the default)")
        return {"file_precision": "fp32", "strongly_typed": False, "flags": ["INT8"], "calibrator": True}
    if precision == "int8":
        if "int8" not in has:
            raise KdedgeError("bundle %s has no int8 model" % bundle.path, fix="re-export with --int8")
        if major >= 10:
            return {"file_precision": "int8", "strongly_typed": True, "flags": [], "calibrator": False}
        return {"file_precision": "int8", "strongly_typed": False, "flags": ["INT8"], "calibrator": False}
    if precision == "fp16":
        if major >= 10 and "fp16" in has:
            return {"file_precision": "fp16", "strongly_typed": True, "flags": [], "calibrator": False}
        if major >= 11:
            raise KdedgeError("TensorRT 11 builds FP16 only from an FP16 ONNX file, and bundle %s has none" % bundle.path,
                              fix="re-export with --fp16")
        return {"file_precision": "fp32", "strongly_typed": False, "flags": ["FP16"], "calibrator": False}
    return {"file_precision": "fp32", "strongly_typed": major >= 10, "flags": [], "calibrator": False}


# ---------------------------------------------------------------------------------------------
# implicit calibration (TensorRT 8.x only): plain-Python parts, tested without TensorRT


class CalibrationBatches:
    """Fixed-shape float32 NCHW batches from images (numpy arrays C x H x W or 1 x C x H x W in [0, 1]).

    TensorRT's implicit calibration runs at one shape (the calibration profile), so every image is
    centre-cropped (or edge-padded) to `hw` and grouped in `batch_size`; a last partial batch is
    dropped, as TensorRT expects full batches.
    """

    def __init__(self, images: Iterable[np.ndarray], batch_size: int = 1, hw: Sequence[int] = (128, 128)):
        self.batch_size = int(batch_size)
        self.hw = (int(hw[0]), int(hw[1]))
        self._images = [self._fit(np.asarray(im, dtype=np.float32)) for im in images]
        self._pos = 0
        if len(self._images) < self.batch_size:
            raise KdedgeError("calibration needs at least %d images, got %d" % (self.batch_size, len(self._images)))

    def _fit(self, im: np.ndarray) -> np.ndarray:
        if im.ndim == 4:
            im = im[0]
        if im.ndim != 3:
            raise KdedgeError("calibration images must be C x H x W arrays, got shape %s" % (im.shape,))
        h, w = self.hw
        ph, pw = max(0, h - im.shape[1]), max(0, w - im.shape[2])
        if ph or pw:
            im = np.pad(im, ((0, 0), (0, ph), (0, pw)), mode="edge")
        top, left = (im.shape[1] - h) // 2, (im.shape[2] - w) // 2
        return np.ascontiguousarray(im[:, top: top + h, left: left + w])

    @property
    def shape(self) -> List[int]:
        c = self._images[0].shape[0]
        return [self.batch_size, c, self.hw[0], self.hw[1]]

    def __len__(self) -> int:
        return len(self._images) // self.batch_size

    def reset(self) -> None:
        self._pos = 0

    def next_batch(self) -> Optional[np.ndarray]:
        """The next full batch, or None when exhausted (TensorRT's signal that calibration is done)."""
        if self._pos + self.batch_size > len(self._images):
            return None
        batch = np.stack(self._images[self._pos: self._pos + self.batch_size])
        self._pos += self.batch_size
        return np.ascontiguousarray(batch, dtype=np.float32)


class CalibrationCache:
    """TensorRT's calibration cache file: read if present (skips calibration), written atomically."""

    def __init__(self, path):
        self.path = Path(path)

    def read(self) -> Optional[bytes]:
        if self.path.is_file() and self.path.stat().st_size > 0:
            return self.path.read_bytes()
        return None

    def write(self, data) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, bytes(data))


def make_entropy_calibrator(trt: Any, batches: CalibrationBatches, cache: CalibrationCache,
                            to_device: Optional[Callable[[np.ndarray], int]] = None):
    """An IInt8EntropyCalibrator2 (TensorRT 8.x) over `batches`; `to_device(array) -> device pointer`.

    Without `to_device`, pycuda copies each batch into one reused device buffer. Not executed here.
    """
    if to_device is None:
        import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
        import pycuda.driver as cuda

        buf = {"mem": None}

        def to_device(batch: np.ndarray) -> int:
            if buf["mem"] is None:
                buf["mem"] = cuda.mem_alloc(batch.nbytes)
            cuda.memcpy_htod(buf["mem"], batch)
            return int(buf["mem"])

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self):
            return batches.batch_size

        def get_batch(self, names):
            batch = batches.next_batch()
            if batch is None:
                return None
            return [to_device(batch)]

        def read_calibration_cache(self):
            return cache.read()

        def write_calibration_cache(self, data):
            cache.write(data)

    return _EntropyCalibrator()


# ---------------------------------------------------------------------------------------------
# the build


def _network_flags(trt: Any, major: int, strongly_typed: bool) -> int:
    # if/elif/else rather than early returns: tests/test_trt_symbols.py reads these branches.
    if major >= 11:
        flags = 0  # strongly typed always (the flag is deprecated and ignored)
    elif major >= 10:
        flags = (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) if strongly_typed else 0
    else:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return flags


def _set_precision_flags(trt: Any, major: int, config: Any, flags: Sequence[str]) -> None:
    if major >= 11:
        if flags:
            raise KdedgeError("TensorRT 11 has no precision builder flags (asked for %s)" % list(flags))
    else:
        for flag in flags:
            if flag == "INT8":
                config.set_flag(trt.BuilderFlag.INT8)
            elif flag == "FP16":
                config.set_flag(trt.BuilderFlag.FP16)


def _load_timing_cache(config: Any, path: Path):
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):  # from another device/version: start afresh
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def build_engine(bundle, precision: str = "int8", device: Optional[str] = None, workspace_mb: int = DEFAULT_WORKSPACE_MB,
                 force: bool = False, calibration_images: Optional[Iterable[np.ndarray]] = None,
                 calibration_hw: Sequence[int] = (128, 128), log: Callable[[str], None] = print,
                 engine_path: Optional[Path] = None) -> Path:
    """Build (or reuse) the TensorRT engine of `bundle` for `precision`; returns the engine path.

    `calibration_images` (TensorRT 8.x, int8 only) switches to implicit entropy calibration of the
    FP32 model instead of the bundle's Q/DQ model. `engine_path` overrides the file name (the runtime's
    backend passes the one it looks up). Raises KdedgeError when TensorRT is missing or
    the build fails. NOT EXECUTED on the development machines (no GPU): see the module docstring.
    """
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise KdedgeError("TensorRT is not importable: %s" % exc,
                          fix="on a Jetson, TensorRT comes with JetPack (python3-libnvinfer); elsewhere use the ONNX Runtime backend") from exc
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    version = trt.__version__
    major = trt_major(version)
    plan = plan_build(major, precision, bundle, implicit_calibration=calibration_images is not None)
    slug = device or device_slug()
    if engine_path is None:
        engine_path = bundle.engine_path(precision if calibration_images is None else "int8-implicit", slug, short_version(version))
    engine_path = Path(engine_path)
    if engine_path.is_file() and not force:
        return engine_path
    onnx_path = bundle.model_path(plan["file_precision"])
    engine_path.parent.mkdir(parents=True, exist_ok=True)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt, major, plan["strongly_typed"]))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise KdedgeError("TensorRT %s cannot parse %s: %s" % (version, onnx_path, "; ".join(errors) or "unknown error"),
                          fix="re-export the bundle with this kdedge version (opset 17)")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    _set_precision_flags(trt, major, config, plan["flags"])

    shapes = bundle.shapes
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    profile.set_shape(name, tuple(shapes["min"]), tuple(shapes["opt"]), tuple(shapes["max"]))
    config.add_optimization_profile(profile)

    if major < 10:
        if plan["calibrator"]:
            batches = CalibrationBatches(calibration_images, 1, calibration_hw)
            calib_profile = builder.create_optimization_profile()
            calib_profile.set_shape(name, tuple(batches.shape), tuple(batches.shape), tuple(batches.shape))
            config.set_calibration_profile(calib_profile)
            cache = CalibrationCache(engine_path.parent / ("calibration.%s.trt%s.cache" % (slug, short_version(version))))
            config.int8_calibrator = make_entropy_calibrator(trt, batches, cache)
    elif plan["calibrator"]:
        raise KdedgeError("implicit calibration needs TensorRT 8.x")

    cache_path = bundle.engines_dir / TIMING_CACHE
    _load_timing_cache(config, cache_path)
    log("building TensorRT %s %s engine from %s (can take minutes)" % (version, precision, onnx_path.name))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise KdedgeError("TensorRT %s failed to build %s (see the TensorRT log above)" % (version, onnx_path))
    atomic_write_bytes(engine_path, bytes(serialized))
    timing = config.get_timing_cache()
    if timing is not None:
        atomic_write_bytes(cache_path, bytes(timing.serialize()))
    return engine_path
