"""Backends behind one interface (`base.Backend`), and `create_backend` that picks one for a bundle.

Names users pass to --backend: `auto` (TensorRT when tensorrt and pycuda import, else ONNX Runtime
with CUDA when that build has it, else OpenVINO on the CPU when it is installed, else ONNX Runtime
on the CPU), `tensorrt`, `ort-tensorrt`, `ort-cuda`, `openvino`, `ort-cpu`.

Precision `auto` is decided per backend by measurement (`choose_precision` says why in
`Choice.reason`, which the CLIs print): INT8 on TensorRT; on OpenVINO bf16 where the CPU computes
it natively, else INT8 (the U8S8 file when the bundle has one); FP32 on ONNX Runtime's CPU
provider, whose Q/DQ INT8 kernels are slower than FP32 for convolutions this small; the bundle's
default precision elsewhere (ONNX Runtime with CUDA or TensorRT).

`open_model(path)` runs a bare ONNX file (no bundle) on the ONNX Runtime CPU or OpenVINO backend:
evaluation, the export accuracy gate and calibration use it, so what they measure is the code that ships.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

from kdedge.common import PRECISIONS  # the bundle's files, plus bf16 (OpenVINO computes it from the FP32 file)
from kdedge.errors import KdedgeError
from kdedge.runtime.backends.base import Backend

BACKENDS = ("auto", "tensorrt", "ort-tensorrt", "ort-cuda", "openvino", "ort-cpu")
CPU_BACKENDS = ("openvino", "ort-cpu")  # the ones `open_model` and `--workers N` take


class Choice(NamedTuple):
    """What `auto` resolved to, and why (printed by the CLIs)."""

    value: str
    reason: str


def available_backends() -> List[str]:
    """Concrete backend names usable on this machine, fastest first."""
    from kdedge.runtime.backends.openvino import openvino_available
    from kdedge.runtime.backends.trt import tensorrt_available

    names = []
    if tensorrt_available():
        names.append("tensorrt")
    try:
        from kdedge.runtime.backends.ort import available_providers

        providers = available_providers()
    except ImportError:
        providers = []
    for prov in ("tensorrt", "cuda"):
        if prov in providers:
            names.append("ort-" + prov)
    if openvino_available():
        names.append("openvino")
    if "cpu" in providers:
        names.append("ort-cpu")
    return names


def choose_backend(name: str) -> Choice:
    if name not in BACKENDS:
        raise KdedgeError("unknown backend %r" % name, fix="choose one of: " + ", ".join(BACKENDS))
    if name != "auto":
        return Choice(name, "asked for")
    have = [n for n in available_backends() if n != "ort-tensorrt"]  # ORT's TRT EP builds slowly on first run
    if not have:
        raise KdedgeError("no inference backend: neither TensorRT+pycuda, onnxruntime nor openvino is importable",
                          fix="pip install onnxruntime or openvino (or on a Jetson install JetPack's TensorRT and pycuda)")
    why = {
        "tensorrt": "TensorRT and pycuda import: the GPU path",
        "ort-cuda": "onnxruntime has CUDA (no TensorRT+pycuda here)",
        # benchmarks/results/openvino_cpu.md: INT8 several times ONNX Runtime's on the same Q/DQ file
        "openvino": "no GPU; OpenVINO is installed, the fastest CPU engine measured for these bundles",
        "ort-cpu": "no GPU and no OpenVINO (pip install openvino for faster INT8 on CPUs)",
    }
    return Choice(have[0], why.get(have[0], "first available"))


def resolve_backend(name: str) -> str:
    return choose_backend(name).value


def choose_precision(bundle, backend: str, precision: Optional[str]) -> Choice:
    """The precision to run `bundle` at on `backend` (a concrete name), with the reason."""
    if precision == "bf16":
        if backend != "openvino":
            raise KdedgeError("bf16 is computed by OpenVINO from the FP32 file; %s has no bf16 path" % backend,
                              fix="use --backend openvino, or --precision fp32 / int8")
        bundle.resolve_precision("fp32")  # the file it runs
        return Choice("bf16", "asked for")
    if precision not in (None, "", "auto"):
        if precision not in PRECISIONS:
            raise KdedgeError("unknown precision %r" % precision, fix="choose one of: auto, " + ", ".join(PRECISIONS))
        return Choice(bundle.resolve_precision(precision), "asked for")
    if backend == "ort-cpu" and "fp32" in bundle.precisions:
        # Measured (benchmarks/results/openvino_cpu.md): ONNX Runtime's CPU Q/DQ INT8 runs the shipped
        # students slower than FP32 (default_x2 at 540x960: 14.9 vs 26.5 FPS): at ~10k MACs per pixel
        # the Q/DQ transitions around the float layers cost more than the INT8 convolutions save.
        return Choice("fp32", "ONNX Runtime's CPU INT8 kernels are slower than its FP32 for this model")
    if backend == "openvino":
        from kdedge.runtime.backends.openvino import cpu_has_bf16

        if "fp32" in bundle.precisions and cpu_has_bf16():
            # Measured (benchmarks/results/openvino_cpu.md): on a CPU with BF16 (AVX512-BF16/AMX) OpenVINO
            # runs the FP32 file in bf16 a little faster than the QAT INT8 U8S8 file (default_x2, 960x540 end
            # to end: 50.1 vs 46.9 FPS), at a smaller loss (Set5 -0.003 dB vs -0.027; benchmarks/results/openvino_eval.md).
            return Choice("bf16", "this CPU computes bf16 natively: measured faster than INT8 and closer to FP32")
        for prec in ("int8_u8s8", "int8"):
            if prec in bundle.precisions:
                return Choice(prec, "OpenVINO's INT8 kernels: several times its FP32 on CPUs without bf16")
    if backend == "tensorrt" and "int8" in bundle.precisions:
        return Choice("int8", "TensorRT builds the symmetric Q/DQ INT8 file")
    return Choice(bundle.default_precision, "the bundle's default")


def resolve_precision(bundle, backend: str, precision: Optional[str]) -> str:
    return choose_precision(bundle, backend, precision).value


def _openvino_hint(precision: str) -> str:
    """Float compute of an OpenVINO model: bf16 only for the bf16 precision. The float layers of an INT8
    graph stay f32: with them in bf16, default_x2's U8S8 file lost 0.006 dB on Set5 against ONNX Runtime
    (f32: within 0.0003; benchmarks/results/openvino_eval.md), and that mix was slower than plain bf16
    anyway (benchmarks/results/openvino_cpu.md), so it serves nobody."""
    return "bf16" if precision == "bf16" else "f32"


def open_model(path, backend: str = "ort-cpu", threads: Optional[int] = None, precision: str = "fp32") -> Backend:
    """An inactive backend for a bare ONNX file on a CPU backend ("ort-cpu" or "openvino"). `precision`
    only steers OpenVINO's float compute (see `_openvino_hint`); the file decides what it holds."""
    if backend == "openvino":
        from kdedge.runtime.backends.openvino import OpenVinoBackend

        be = OpenVinoBackend(path, hint=_openvino_hint(precision), threads=threads)  # type: Backend
    elif backend == "ort-cpu":
        from kdedge.runtime.backends.ort import OrtBackend

        be = OrtBackend(path, provider="cpu", threads=threads)
    else:
        raise KdedgeError("cannot run a bare ONNX file on %r" % backend, fix="choose one of: " + ", ".join(CPU_BACKENDS))
    be.precision = precision
    be.backend_name = backend
    return be


FRAME_GRAPH_MODES = ("auto", "on", "off")


def frame_graph_problem(bundle, backend: str, precision: str, tile: int = 0) -> Optional[str]:
    """Why the whole-frame graph cannot run here, or None when it can."""
    if bundle.color != "y":
        return "only Y-channel bundles have one (RGB models need no colour work)"
    if precision not in bundle.frame_graphs:
        return "bundle %s has none for %s" % (bundle.path, precision)
    if backend == "tensorrt":
        return "the TensorRT engine builder does not build it yet"
    if tile:
        return "--tile processes tiles of the model's input, which the whole-frame graph does not take"
    return None


def choose_frame_graph(bundle, backend: str, precision: str, requested: str = "auto", tile: int = 0) -> Choice:
    """Whether to run the bundle's whole-frame graph (colour conversion inside the model; export/frame_graph.py)
    instead of the Python colour path. Value "on" or "off", with the reason."""
    if requested not in FRAME_GRAPH_MODES:
        raise KdedgeError("unknown --frame-graph %r" % requested, fix="choose one of: " + ", ".join(FRAME_GRAPH_MODES))
    if requested == "off":
        return Choice("off", "asked for")
    problem = frame_graph_problem(bundle, backend, precision, tile)
    if requested == "on":
        if problem:
            raise KdedgeError("--frame-graph on: %s" % problem, fix="use --frame-graph off")
        return Choice("on", "asked for")
    if problem:
        return Choice("off", problem)
    # Measured (benchmarks/results/openvino_cpu.md): on CPUs OpenCV's uint8 SIMD colour path, run by the
    # capture and writer threads beside the model, costs less than the same work as float layers in the
    # engine, so the graph is slower end to end there. It is meant for GPUs, where the CPU is the slow part.
    return Choice("off", "the Python colour path measured faster end to end on CPU backends")


def create_backend(bundle, backend: str = "auto", precision: Optional[str] = "auto",
                   threads: Optional[int] = None, device: int = 0, frame_graph: str = "off", tile: int = 0) -> Backend:
    """An inactive Backend for `bundle` (activate it, ideally in the thread that will infer). Its
    `choice` attribute says which backend, precision and colour path `auto` resolved to, and why;
    `frame_graph` is True when it runs the whole-frame graph (BGR uint8 frame in and out)."""
    backend_choice = choose_backend(backend)
    name = backend_choice.value
    prec_choice = choose_precision(bundle, name, precision)
    prec = prec_choice.value
    frame_choice = choose_frame_graph(bundle, name, prec, frame_graph, tile)
    frame_on = frame_choice.value == "on"  # never on TensorRT (frame_graph_problem)
    if name == "tensorrt":
        from kdedge.runtime.backends.trt import TrtBackend, load_or_build_engine

        if prec == "int8_u8s8":
            raise KdedgeError("TensorRT cannot run the asymmetric int8_u8s8 variant", fix="use --precision int8")
        bundle.model_path(prec)  # verify the ONNX file the engine is built from
        be = TrtBackend(load_or_build_engine(bundle, prec), device=device)  # type: Backend
    elif name == "openvino":
        path = bundle.frame_model_path(prec) if frame_on else bundle.model_path("fp32" if prec == "bf16" else prec)
        # the frame graph's colour arithmetic is exact only in f32 (export/frame_graph.py): no bf16 there
        be = open_model(path, "openvino", threads, "fp32" if frame_on else prec)
    else:
        from kdedge.runtime.backends.ort import OrtBackend

        provider = name.split("-", 1)[1]
        path = bundle.frame_model_path(prec) if frame_on else bundle.model_path(prec)
        be = OrtBackend(path, provider=provider, threads=threads,
                        trt_cache_dir=str(bundle.engines_dir / "ort-trt") if provider == "tensorrt" and not frame_on else None)
    if frame_on:
        be.description += " frame-graph"
    be.precision = prec
    be.backend_name = name
    be.frame_graph = frame_on
    be.choice = {"backend": backend_choice._asdict(), "precision": prec_choice._asdict(),
                 "frame_graph": frame_choice._asdict()}
    return be


def describe_choice(be: Backend) -> str:
    """One line for logs: what runs and why `auto` chose it (empty when nothing was automatic)."""
    choice = getattr(be, "choice", None) or {}
    parts = []
    for what in ("backend", "precision", "frame_graph"):
        c = choice.get(what)
        if c and c["reason"] != "asked for":
            parts.append("%s %s: %s" % (what, c["value"], c["reason"]))
    return "; ".join(parts)
