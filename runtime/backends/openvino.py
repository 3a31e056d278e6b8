"""OpenVINO backend: the fast INT8 engine of x86 and Arm CPUs, running the bundle's ONNX files as they are.

Why a second CPU backend: ONNX Runtime's CPU kernels run the shipped Q/DQ INT8 students *slower*
than FP32 (a 9.9k-MAC/pixel student at 540x960: 14.9 FPS INT8 vs 26.5 FP32), while OpenVINO fuses
the same Q/DQ pairs into VNNI integer convolutions (77 FPS INT8, ENVIRONMENT.md). Nothing is
converted ahead of time: `Core.read_model` reads the ONNX file, so what is gated is what runs.

- Precision is explicit. OpenVINO's CPU plugin silently computes "FP32" models in bf16 on CPUs
  with AVX512-BF16 (Set5 36.961 instead of 36.970 dB for the default student), so every
  compilation sets `INFERENCE_PRECISION_HINT`: f32 for fp32/fp16/int8 files (the float layers of an
  INT8 graph stay f32, as on ONNX Runtime: same PSNR within 0.0003 dB) and bf16 only for the `bf16`
  precision, which runs the FP32 file and exists only where the CPU reports BF16.
- Static shapes: the CPU plugin runs a model reshaped to one input size faster than a dynamic
  one, so each input shape is compiled once (reshape + compile_model, ~0.1 s) and kept; a few
  shapes (whole frames, tiles, edge tiles) are cached, the least recently used dropped.
- Threads and streams: `threads` caps the plugin's threads (INFERENCE_NUM_THREADS) and one stream
  serves one infer request; the pipeline keeps both cores busy by running one backend per SR
  worker (`--workers 2`, one thread each), as with ONNX Runtime, with CPU pinning off (see `config`).
- Outputs: `InferRequest.infer` copies its results into new arrays (share_outputs=False), so
  `reuses_outputs` stays False.

Python 3.8 (JetPack 5's Python): openvino 2024.4.0 is the last release with cp38 wheels; the
calls used here (Core, read_model, reshape, compile_model with string properties,
create_infer_request, infer) exist unchanged from 2023.1 to 2026.4.
"""
from __future__ import annotations

import collections
import functools
from typing import Dict, Optional, Tuple

import numpy as np

from kdedge.errors import KdedgeError
from kdedge.runtime.backends.base import Backend, InputMetadata

HINTS = ("f32", "bf16")  # INFERENCE_PRECISION_HINT values used
_FIX = "pip install openvino (2024.4.0 on Python 3.8), or pick --backend ort-cpu"
_NP_TYPES = {"f32": np.float32, "f16": np.float16, "u8": np.uint8, "i8": np.int8, "i64": np.int64}


def import_openvino():
    try:
        import openvino as ov
    except ImportError as exc:
        raise KdedgeError("OpenVINO is not importable: %s" % exc, fix=_FIX) from exc
    if not hasattr(ov, "Core"):  # openvino < 2023.1 keeps Core in openvino.runtime
        raise KdedgeError("OpenVINO %s is too old (no openvino.Core)" % getattr(ov, "__version__", "?"), fix=_FIX)
    return ov


def openvino_available() -> bool:
    try:
        import_openvino()
        return True
    except KdedgeError:
        return False


@functools.lru_cache(maxsize=None)
def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin can compute in bf16 here (AVX512-BF16 or AMX). Asked once per
    process: every `auto` precision choice and bf16 activation needs it, and each ask makes a Core."""
    ov = import_openvino()
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend(Backend):
    """Run an ONNX file with OpenVINO on the CPU. `hint` is "f32" (default) or "bf16"."""

    name = "openvino"
    max_cached_shapes = 4  # whole frame + tile + edge tiles; each compiled model holds its own buffers

    def __init__(self, model_path, hint: str = "f32", threads: Optional[int] = None, device: str = "CPU"):
        super().__init__()
        if hint not in HINTS:
            raise KdedgeError("unknown OpenVINO precision hint %r" % hint, fix="choose one of: " + ", ".join(HINTS))
        self.model_path = str(model_path)
        self.hint = hint
        self.threads = threads
        self.device = device
        self.description = "openvino-%s" % device.lower()
        self._model = None
        self._compiled = collections.OrderedDict()  # type: collections.OrderedDict  # shape -> (compiled, request)

    def config(self) -> Dict[str, str]:
        """The properties every compilation gets (strings: the same keys from 2023.1 to 2026.x)."""
        cfg = {"INFERENCE_PRECISION_HINT": self.hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
               # Pinning puts the threads of every compiled model on the same first cores: two 1-thread
               # SR workers then share one core (measured, bf16 at 540x960: 29.7 FPS pinned vs 48.8
               # unpinned end to end; one 2-thread model: 45.7 either way). Let the OS place threads.
               "ENABLE_CPU_PINNING": "NO"}
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = str(int(self.threads))
        return cfg

    def activate_impl(self) -> None:
        ov = import_openvino()
        self._core = ov.Core()
        if self.hint == "bf16" and not cpu_has_bf16():
            raise KdedgeError("this CPU has no bf16 support (OpenVINO lists no BF16 capability)",
                              fix="use --precision fp32 or int8 on this machine")
        try:
            self._model = self._core.read_model(self.model_path)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with the parser's text
            raise KdedgeError("OpenVINO %s cannot read %s: %s" % (ov.__version__, self.model_path, str(exc).strip()[:500]),
                              fix="check the file (re-export the bundle), or use --backend ort-cpu") from exc
        self._inputs = [i.get_any_name() for i in self._model.inputs]
        self._outputs = [o.get_any_name() for o in self._model.outputs]
        self._meta = {}  # type: InputMetadata
        for port in self._model.inputs:
            dims = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
            dtype = _NP_TYPES.get(port.get_element_type().get_type_name(), np.float32)
            self._meta[port.get_any_name()] = (np.dtype(dtype), dims)
        self.description = "openvino-%s%s" % (self.device.lower(), " %d threads" % self.threads if self.threads else "")

    def _request_for(self, shapes: Tuple[Tuple[int, ...], ...]):
        """The infer request compiled for these input shapes (compiled on first use, LRU-cached)."""
        have = self._compiled.get(shapes)
        if have is not None:
            self._compiled.move_to_end(shapes)
            return have[1]
        ov = import_openvino()
        try:
            self._model.reshape({name: ov.PartialShape(list(shape)) for name, shape in zip(self._inputs, shapes)})
            compiled = self._core.compile_model(self._model, self.device, self.config())
        except Exception as exc:
            raise KdedgeError("OpenVINO cannot compile %s for input shape %s: %s"
                              % (self.model_path, " ".join("x".join(map(str, s)) for s in shapes), str(exc).strip()[:500]),
                              fix="this model needs other input sizes (see the bundle's shapes/size_multiple), "
                                  "or process large frames with --tile") from exc
        request = compiled.create_infer_request()
        self._compiled[shapes] = (compiled, request)
        while len(self._compiled) > self.max_cached_shapes:
            self._compiled.popitem(last=False)
        return request

    def infer_impl(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        arrays = [feed[name] for name in self._inputs]
        request = self._request_for(tuple(tuple(a.shape) for a in arrays))
        results = request.infer(arrays)  # a list feeds inputs by position; results are copies
        return {name: results[i] for i, name in enumerate(self._outputs)}

    def deactivate_impl(self) -> None:
        self._compiled.clear()
        self._model = None
        self._core = None

    def input_metadata_impl(self) -> InputMetadata:
        return dict(self._meta)
