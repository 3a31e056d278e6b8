"""Backends behind one interface (`base.Backend`), and `create_backend` that picks one for a bundle.

Names users pass to --backend: `auto` (TensorRT when tensorrt and pycuda import, else ONNX Runtime
with CUDA when that build has it, else ONNX Runtime on the CPU), `tensorrt`, `ort-tensorrt`,
`ort-cuda`, `ort-cpu`. Precision `auto` takes the bundle's default, except on the ONNX Runtime CPU
backend where the asymmetric U8S8 INT8 variant is faster when the bundle has it (ENVIRONMENT.md:
QDQ U8S8 397 vs S8S8 325 GMAC/s on this CPU).
"""
from __future__ import annotations

from typing import List, Optional

from kdedge.errors import KdedgeError
from kdedge.runtime.backends.base import Backend

BACKENDS = ("auto", "tensorrt", "ort-tensorrt", "ort-cuda", "ort-cpu")


def available_backends() -> List[str]:
    """Concrete backend names usable on this machine, fastest first."""
    from kdedge.runtime.backends.trt import tensorrt_available

    names = []
    if tensorrt_available():
        names.append("tensorrt")
    try:
        from kdedge.runtime.backends.ort import available_providers

        providers = available_providers()
    except ImportError:
        providers = []
    for prov in ("tensorrt", "cuda", "cpu"):
        if prov in providers:
            names.append("ort-" + prov)
    return names


def resolve_backend(name: str) -> str:
    if name not in BACKENDS:
        raise KdedgeError("unknown backend %r" % name, fix="choose one of: " + ", ".join(BACKENDS))
    if name != "auto":
        return name
    have = [n for n in available_backends() if n != "ort-tensorrt"]  # ORT's TRT EP builds slowly on first run
    if not have:
        raise KdedgeError("no inference backend: neither TensorRT+pycuda nor onnxruntime is importable",
                          fix="pip install onnxruntime (or on a Jetson install JetPack's TensorRT and pycuda)")
    return have[0]


def resolve_precision(bundle, backend: str, precision: Optional[str]) -> str:
    if precision not in (None, "", "auto"):
        return bundle.resolve_precision(precision)
    if backend == "ort-cpu" and "fp32" in bundle.precisions:
        # Measured (benchmarks/results/bench_default*.json, RESULTS.md): on ONNX Runtime CPU the shipped
        # student runs faster in FP32 (43.7 FPS at 270x480, quiet machine) than as mixed-precision Q/DQ
        # INT8 (26.1 FPS): at 11k MACs per pixel the Q/DQ transitions around its float layers cost more
        # than the INT8 convolutions save. FP16 is emulated on CPUs. INT8 stays an explicit --precision.
        return "fp32"
    if backend == "tensorrt" and bundle.default_precision == "int8_u8s8" and "int8" in bundle.precisions:
        return "int8"  # TensorRT wants symmetric Q/DQ
    return bundle.default_precision


def create_backend(bundle, backend: str = "auto", precision: Optional[str] = "auto",
                   threads: Optional[int] = None, device: int = 0) -> Backend:
    """An inactive Backend for `bundle` (activate it, ideally in the thread that will infer)."""
    name = resolve_backend(backend)
    prec = resolve_precision(bundle, name, precision)
    if name == "tensorrt":
        from kdedge.runtime.backends.trt import TrtBackend, load_or_build_engine

        if prec == "int8_u8s8":
            raise KdedgeError("TensorRT cannot run the asymmetric int8_u8s8 variant", fix="use --precision int8")
        bundle.model_path(prec)  # verify the ONNX file the engine is built from
        be = TrtBackend(load_or_build_engine(bundle, prec), device=device)
    else:
        from kdedge.runtime.backends.ort import OrtBackend

        provider = name.split("-", 1)[1]
        be = OrtBackend(bundle.model_path(prec), provider=provider, threads=threads,
                        trt_cache_dir=str(bundle.engines_dir / "ort-trt") if provider == "tensorrt" else None)
    be.precision = prec
    be.backend_name = name
    return be
