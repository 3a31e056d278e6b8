"""Build a TensorRT engine from a kdedge bundle, on the device that will run it (torch-free, Python 3.8+).

NOT EXECUTED HERE. The machines kdedge is developed and tested on have no GPU and no TensorRT
library. Every TensorRT call below is written against the Python API of each version it claims, and
tests/test_trt_symbols.py checks every `Class.member` it reaches (following the object types:
builder -> network -> tensor, config, profile, timing cache, ...) against the pybind11
registrations of TensorRT's own sources (scripts/extract_trt_symbols.py): release/8.6 (standing in
for 8.5, JetPack 5.1), release/10.3 (JetPack 6.1/6.2) and main (11.1), plus the exact names of the
11.4 bindings wheel. That proves the API names exist per version, not that the build works:
tests/test_trt_build.py::test_real_engine_build builds and runs a tiny engine where TensorRT and a GPU
exist, and has never run on the development machines.

What is built, per TensorRT major version and precision (INT8 is always explicit Q/DQ, DESIGN.md;
TensorRT's implicit calibration, deprecated in 10.1 and removed in 11, is not offered):

| precision | 8.5 / 8.6                         | 10.x                               | 11.x                          |
|-----------|-----------------------------------|------------------------------------|-------------------------------|
| int8      | model.int8.onnx (Q/DQ), INT8 flag | model.int8.onnx, STRONGLY_TYPED    | model.int8.onnx (always typed)|
| fp16      | model.onnx, FP16 flag             | model.fp16.onnx typed, else FP16 flag on model.onnx | model.fp16.onnx       |
| fp32      | model.onnx                        | model.onnx, STRONGLY_TYPED         | model.onnx                    |

Every engine gets one optimisation profile from the manifest's min/opt/max shapes (the runtime tiles
frames to it, runtime/backends/profile.py), a timing cache named per device and TensorRT version
(bundle/engines/timing.<device>.trt<major.minor>.cache; one that TensorRT rejects is replaced by an
empty one), and the file name `Bundle.engine_path` gives it:
bundle/engines/model.<precision>.<device>.trt<major.minor>.engine, where <device> is the Jetson model
from /proc/device-tree/model made file-name safe (e.g. nvidia-jetson-orin-nano-developer-kit), or
$KDEDGE_DEVICE. It is written to a temp file and renamed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from kdedge.common import atomic_write_bytes
from kdedge.errors import KdedgeError
from kdedge.runtime.bundle import Bundle, load_bundle

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


def plan_build(major: int, precision: str, bundle: Bundle) -> dict:
    """Pure decision table (tested here): which ONNX file, whether strongly typed, which builder flags."""
    has = bundle.precisions
    if precision not in ("int8", "fp16", "fp32"):
        raise KdedgeError("no TensorRT build for precision %r" % precision, fix="choose int8, fp16 or fp32")
    if precision == "int8":
        if "int8" not in has:
            raise KdedgeError("bundle %s has no int8 model" % bundle.path, fix="re-export with --int8")
        if major >= 10:
            return {"file_precision": "int8", "strongly_typed": True, "flags": []}
        return {"file_precision": "int8", "strongly_typed": False, "flags": ["INT8"]}
    if precision == "fp16":
        if major >= 10 and "fp16" in has:
            return {"file_precision": "fp16", "strongly_typed": True, "flags": []}
        if major >= 11:
            raise KdedgeError("TensorRT 11 builds FP16 only from an FP16 ONNX file, and bundle %s has none" % bundle.path,
                              fix="re-export with --fp16")
        return {"file_precision": "fp32", "strongly_typed": False, "flags": ["FP16"]}
    return {"file_precision": "fp32", "strongly_typed": major >= 10, "flags": []}


# ---------------------------------------------------------------------------------------------
# timing cache (decision logic split from the TensorRT calls, tested without TensorRT)


def timing_cache_path(engines_dir, slug: str, version: str) -> Path:
    """bundle/engines/timing.<device>.trt<major.minor>.cache: tactic timings are only valid for the
    GPU and the TensorRT version that measured them, like the engines beside them."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", slug).strip("-") or "gpu"
    return Path(engines_dir) / ("timing.%s.trt%s.cache" % (safe, short_version(version)))


def read_timing_cache(path: Path) -> bytes:
    """The cache file's bytes, or b"" when it is missing or cannot be read (then the build starts empty)."""
    try:
        return path.read_bytes() if path.is_file() else b""
    except OSError:
        return b""


def load_timing_cache(config: "trt.IBuilderConfig", data: bytes, log: Callable[[str], None] = print):
    """Attach a timing cache made from `data` to `config`; start empty when TensorRT rejects `data`
    (create_timing_cache returns None, or set_timing_cache False: another device or version, a
    truncated file). Returns the cache attached, or None when not even an empty one could be made
    (the build then runs without a timing cache)."""
    cache = config.create_timing_cache(data) if data else None
    if cache is not None and config.set_timing_cache(cache, False):
        return cache
    if data:
        log("the timing cache was not accepted by this TensorRT (other device or version, or damaged): starting empty")
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, False):
        log("TensorRT could not create an empty timing cache: building without one")
        return None
    return cache


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


def _set_precision_flags(trt: Any, major: int, config: "trt.IBuilderConfig", flags: Sequence[str]) -> None:
    if major >= 11:
        if flags:
            raise KdedgeError("TensorRT 11 has no precision builder flags (asked for %s)" % list(flags))
    else:
        for flag in flags:
            if flag == "INT8":
                config.set_flag(trt.BuilderFlag.INT8)
            elif flag == "FP16":
                config.set_flag(trt.BuilderFlag.FP16)


def build_engine(bundle, precision: str = "int8", device: Optional[str] = None, workspace_mb: int = DEFAULT_WORKSPACE_MB,
                 force: bool = False, log: Callable[[str], None] = print, engine_path: Optional[Path] = None) -> Path:
    """Build (or reuse) the TensorRT engine of `bundle` for `precision`; returns the engine path.

    INT8 is always the bundle's explicit Q/DQ model (DESIGN.md); TensorRT's implicit calibration is
    not offered. `engine_path` overrides the file name. Raises KdedgeError when TensorRT is missing or
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
    plan = plan_build(major, precision, bundle)
    slug = device or device_slug()
    if engine_path is None:
        engine_path = bundle.engine_path(precision, slug, short_version(version))
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

    cache_path = timing_cache_path(bundle.engines_dir, slug, version)
    load_timing_cache(config, read_timing_cache(cache_path), log)
    log("building TensorRT %s %s engine from %s (can take minutes)" % (version, precision, onnx_path.name))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise KdedgeError("TensorRT %s failed to build %s (see the TensorRT log above)" % (version, onnx_path))
    atomic_write_bytes(engine_path, bytes(serialized))
    timing = config.get_timing_cache()
    if timing is not None:
        atomic_write_bytes(cache_path, bytes(timing.serialize()))
    return engine_path
