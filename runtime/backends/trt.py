"""TensorRT backend through pycuda: pinned host buffers, one CUDA stream, async copies and execution.

NOT EXECUTED on the development machine (no GPU, no TensorRT, no pycuda there): this code is
written against the documented Python API and its tests skip. It uses only the name-based tensor
API that exists from TensorRT 8.5 (JetPack 5.1) through 10.x (JetPack 6) and 11.x:
`engine.num_io_tensors`, `get_tensor_name`, `get_tensor_mode`, `get_tensor_dtype`,
`context.set_input_shape`, `get_tensor_shape`, `set_tensor_address`, `execute_async_v3`.

The threading trap: a pycuda context belongs to the thread that made it current. `import
pycuda.autoinit` makes one in the importing (main) thread, and inference from the pipeline's worker
thread then fails with "invalid device context". So no autoinit: `activate_impl` creates a context
(which pushes it), sets everything up and pops it (on a failure it detaches it, which destroys and
pops it); every `infer` pushes and pops it around its CUDA calls. `deactivate` must run in the
activating thread (pycuda's out-of-thread `detach` silently does nothing): it raises elsewhere.
Input shapes outside the engine's optimisation profile are refused by `set_input_shape`; its result
is checked, and `input_limits()` gives the pipeline the profile so it tiles frames to fit.

Engines: `load_or_build_engine(bundle, precision)` asks `kdedge.runtime.trt_build.build_engine`
for the engine cached under `bundle/engines/model.<precision>.<device>.trt<major.minor>.engine`,
built on this device on first use.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from kdedge.errors import KdedgeError
from kdedge.runtime.backends.base import Backend, InputMetadata
from kdedge.runtime.backends.profile import Limits

_FIX = ("on a Jetson use the TensorRT and pycuda of JetPack (`sudo apt install python3-libnvinfer`, "
        "`pip install pycuda` with /usr/local/cuda/bin on PATH), or pick --backend ort-cuda / ort-cpu")


def import_tensorrt():
    """Import tensorrt and pycuda.driver or raise a KdedgeError saying how to get them."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise KdedgeError("TensorRT's Python bindings are not importable: %s" % exc, fix=_FIX) from exc
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise KdedgeError("pycuda is not importable: %s" % exc, fix=_FIX) from exc
    return trt, cuda


def tensorrt_available() -> bool:
    try:
        import_tensorrt()
        return True
    except KdedgeError:
        return False


def load_or_build_engine(bundle, precision: str) -> Path:
    """The engine file for (bundle, precision) on this device and TensorRT version.

    The builder (`kdedge.runtime.trt_build.build_engine`) owns the cache naming (`Bundle.engine_path`
    with its device slug and TensorRT major.minor) and returns the cached engine when it exists, so it
    is always asked first.
    """
    import_tensorrt()  # a KdedgeError naming what to install, before the builder's first TensorRT call
    from kdedge.runtime.trt_build import build_engine

    built = Path(build_engine(bundle, precision))
    if not built.is_file():
        raise KdedgeError("the TensorRT builder returned %s, which does not exist" % built)
    return built


class TrtBackend(Backend):
    """Run a serialized TensorRT engine. `infer_impl` returns pinned host buffers that the next call
    overwrites (`reuses_outputs`: `Backend.infer` hands callers copies).

    pycuda contexts belong to the thread that made them (pycuda's `Context.detach` from another thread
    does nothing: the context leaks). So the backend records the thread that activated it, and only
    that thread may deactivate it: from another thread `deactivate` raises instead of leaking
    silently. `kdedge.runtime.pipeline` activates and deactivates every backend in its own SR thread.
    """

    name = "tensorrt"
    reuses_outputs = True  # infer_impl returns its pinned host buffers; Backend.infer() copies them

    def __init__(self, engine_path, device: int = 0):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.device = device
        self.description = "tensorrt %s" % self.engine_path.name
        self._ctx = None
        self._owner = None  # type: Optional[int]  # ident of the thread that activated (owns the context)
        self._buffers = {}  # type: Dict[str, tuple]  # name -> (shape, host pinned array, device allocation)
        self._limits = None  # type: Optional[Limits]

    def activate_impl(self) -> None:
        trt, cuda = import_tensorrt()
        if not self.engine_path.is_file():
            raise KdedgeError("TensorRT engine %s does not exist" % self.engine_path)
        cuda.init()
        ctx = cuda.Device(self.device).make_context()  # created *and pushed* in this thread
        try:
            self._setup(trt, cuda)
        except BaseException:
            self._drop_objects()
            ctx.detach()  # current in this thread: pycuda destroys it and pops it (no pop before: that would leak it)
            raise
        ctx.pop()
        self._ctx = ctx
        self._owner = threading.get_ident()

    def _setup(self, trt, cuda) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise KdedgeError(
                "TensorRT %s could not deserialize %s" % (trt.__version__, self.engine_path),
                fix="engines are tied to one device and TensorRT version: delete it to rebuild",
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise KdedgeError("TensorRT could not create an execution context for %s (out of GPU memory?)" % self.engine_path)
        self.stream = cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self._dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        if len(self.inputs) == 1:
            lo, _, hi = self.engine.get_tensor_profile_shape(self.inputs[0], 0)  # NCHW min, opt, max of profile 0
            self._limits = ((int(lo[2]), int(lo[3])), (int(hi[2]), int(hi[3])))

    def _drop_objects(self) -> None:
        """Release TensorRT objects before their CUDA context goes (their destructors need it)."""
        self.context = None
        self.engine = None
        self.stream = None
        self._runtime = None

    def input_limits(self):
        return self._limits

    def _buffer(self, name: str, shape) -> tuple:
        """Pinned host + device buffers for `name`, reallocated only when the shape changes."""
        _, cuda = import_tensorrt()
        shape = tuple(int(s) for s in shape)
        have = self._buffers.get(name)
        if have is None or have[0] != shape:
            if have is not None:
                have[2].free()
            host = cuda.pagelocked_empty(shape, self._dtypes[name])
            dev = cuda.mem_alloc(max(host.nbytes, 1))
            self._buffers[name] = (shape, host, dev)
            self.context.set_tensor_address(name, int(dev))
        return self._buffers[name]

    def infer_impl(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        _, cuda = import_tensorrt()
        self._ctx.push()
        try:
            for name in self.inputs:
                arr = feed[name]
                if not self.context.set_input_shape(name, tuple(arr.shape)):
                    raise KdedgeError(shape_rejected_message(name, arr.shape, self._limits, self.engine_path),
                                      fix="pass --tile N (tiles must fit the profile), or rebuild the engine from a "
                                          "bundle exported with larger shapes")
                _, host, dev = self._buffer(name, arr.shape)
                np.copyto(host, arr)
                cuda.memcpy_htod_async(dev, host, self.stream)
            outs = {}
            for name in self.outputs:
                _, host, dev = self._buffer(name, self.context.get_tensor_shape(name))
                outs[name] = (host, dev)
            if not self.context.execute_async_v3(self.stream.handle):
                raise KdedgeError("TensorRT execute_async_v3 failed for %s" % self.engine_path)
            for host, dev in outs.values():
                cuda.memcpy_dtoh_async(host, dev, self.stream)
            self.stream.synchronize()
            return {name: host for name, (host, _) in outs.items()}
        finally:
            self._ctx.pop()

    def deactivate_impl(self) -> None:
        if self._ctx is None:
            return
        here = threading.get_ident()
        if here != self._owner:
            raise KdedgeError(
                "TrtBackend for %s deactivated from thread %s, but thread %s activated it: pycuda cannot release "
                "a context from another thread (it would leak GPU memory)" % (self.engine_path.name, here, self._owner),
                fix="call activate() and deactivate() in the same thread (kdedge.runtime.pipeline does)")
        self._ctx.push()
        try:
            for _, _, dev in self._buffers.values():
                dev.free()
        finally:
            self._buffers = {}
            self._drop_objects()
            self._ctx.detach()  # current here: destroyed and popped in the owning thread
            self._ctx = None
            self._owner = None

    def input_metadata_impl(self) -> InputMetadata:
        meta = {}
        for name in self.inputs:
            shape = [d if d >= 0 else None for d in self.engine.get_tensor_shape(name)]
            meta[name] = (self._dtypes[name], shape)
        return meta


def shape_rejected_message(name: str, shape, limits: Optional[Limits], engine_path) -> str:
    """What to say when set_input_shape returns False (pure: tested without TensorRT)."""
    dims = "x".join(str(int(d)) for d in shape)
    if limits is None:
        return "TensorRT rejected input %r of shape %s for %s" % (name, dims, Path(engine_path).name)
    (min_h, min_w), (max_h, max_w) = limits
    return ("TensorRT rejected input %r of shape %s for %s: its profile takes %dx%d to %dx%d (HxW)"
            % (name, dims, Path(engine_path).name, min_h, min_w, max_h, max_w))
