"""ONNX Runtime backend: CPU, or the CUDA / TensorRT execution providers where that build has them.

This is the backend that runs (and is tested) on the development machine. On a Jetson the TensorRT
backend (`trt.py`) is preferred; ORT with CUDA is the fallback when TensorRT's Python bindings are
missing. `threads` sets intra-op threads (None lets ORT decide: all physical cores).
`session_options` sets further `onnxruntime.SessionOptions` attributes by name, for the benchmarks
that measure ONNX Runtime itself (its profiler, graph optimisations off) through this same backend.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import numpy as np

from kdedge.common import FILE_PRECISIONS
from kdedge.errors import KdedgeError
from kdedge.runtime.backends.base import Backend, InputMetadata

# our provider name -> ORT provider list (always ending with CPU as ORT's own fallback)
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}


def tensorrt_provider_options(precision: Optional[str], model_path: str, cache_dir: str) -> Dict[str, object]:
    """Options of ONNX Runtime's TensorRT execution provider for one bundle precision (pure, tested).

    The precision decides the TensorRT builder flags: fp32 runs FP32 (no FP16 kernels), fp16 enables
    FP16, int8 (the bundle's explicit Q/DQ file) enables INT8 and leaves the layers the export kept
    in float at FP32, as runtime/trt_build.py does. Without a precision, the file name decides
    (`model.int8*.onnx` -> int8, `model.fp16.onnx` -> fp16, else fp32).
    """
    name = os.path.basename(model_path)
    if precision in (None, "", "auto"):
        precision = "int8" if "int8" in name else ("fp16" if "fp16" in name else "fp32")
    if precision not in FILE_PRECISIONS:
        raise KdedgeError("no TensorRT provider settings for precision %r" % precision, fix="choose fp32, fp16 or int8")
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache_dir,
        "trt_int8_enable": precision.startswith("int8"),
        "trt_fp16_enable": precision == "fp16",
    }


def available_providers() -> List[str]:
    """Our names ("cpu", "cuda", "tensorrt") that this onnxruntime build offers."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [k for k, v in PROVIDERS.items() if v[0] in have]


class OrtBackend(Backend):
    """Run an ONNX file with onnxruntime. `provider` is "cpu", "cuda" or "tensorrt"."""

    name = "onnxruntime"

    def __init__(self, model_path, provider: str = "cpu", threads: Optional[int] = None,
                 trt_cache_dir: Optional[str] = None, session_options: Optional[Dict[str, Any]] = None):
        super().__init__()
        if provider not in PROVIDERS:
            raise KdedgeError("unknown onnxruntime provider %r" % provider, fix="choose one of: " + ", ".join(PROVIDERS))
        self.model_path = str(model_path)
        self.provider = provider
        self.threads = threads
        self.trt_cache_dir = trt_cache_dir
        self.session_options = dict(session_options or {})
        self.session = None
        self.description = "onnxruntime-%s" % provider

    def activate_impl(self) -> None:
        import onnxruntime as ort

        if self.provider not in available_providers():
            raise KdedgeError(
                "onnxruntime %s has no %s execution provider (it has: %s)"
                % (ort.__version__, PROVIDERS[self.provider][0], ", ".join(ort.get_available_providers())),
                fix="use --backend ort-cpu, or on a Jetson install the onnxruntime-gpu wheel for your JetPack",
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # warnings from QDQ graphs are noise for users
        for key, value in self.session_options.items():
            if not hasattr(opts, key):
                raise KdedgeError("onnxruntime %s has no session option %r" % (ort.__version__, key),
                                  fix="see onnxruntime.SessionOptions for the names this version takes")
            setattr(opts, key, value)
        providers = list(PROVIDERS[self.provider])
        if self.provider == "tensorrt" and self.trt_cache_dir:
            os.makedirs(self.trt_cache_dir, exist_ok=True)
            providers[0] = ("TensorrtExecutionProvider",
                            tensorrt_provider_options(self.precision, self.model_path, self.trt_cache_dir))
        try:
            self.session = ort.InferenceSession(self.model_path, sess_options=opts, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise KdedgeError("onnxruntime cannot load %s: %s" % (self.model_path, exc),
                              fix="re-export the bundle, or upgrade onnxruntime") from exc
        got = self.session.get_providers()[0]
        self.description = "onnxruntime-%s%s" % (self.provider, "" if got == PROVIDERS[self.provider][0] else " (fell back to %s)" % got)
        if self.threads:
            self.description += " %d threads" % self.threads
        self._outputs = [o.name for o in self.session.get_outputs()]

    def infer_impl(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        results = self.session.run(self._outputs, feed)
        return dict(zip(self._outputs, results))

    def deactivate_impl(self) -> None:
        self.session = None

    def input_metadata_impl(self) -> InputMetadata:
        meta = {}
        for inp in self.session.get_inputs():
            shape = [d if isinstance(d, int) else None for d in inp.shape]
            meta[inp.name] = (np.dtype(_DTYPES.get(inp.type, np.float32)), shape)
        return meta
