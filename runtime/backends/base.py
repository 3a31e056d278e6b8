"""One small backend contract (after Polygraphy's runners): activate / infer / deactivate.

Backends implement only the `*_impl` methods; this base class enforces the order (infer on an
inactive backend is an error), works as a context manager, records `inference_time` (seconds of the
last `infer`, host to host) and warns when a backend is garbage-collected while still active (that
leaks device memory on a Jetson).

Output ownership is part of the contract, not of each caller: `infer()` always returns arrays the
caller owns. A backend whose `infer_impl` hands back buffers it overwrites on the next call (TensorRT's
pinned host buffers; any engine with pre-bound outputs) sets the class attribute `reuses_outputs =
True`, and `infer()` then copies them (one memcpy of the output, small beside the model). So the
pipeline's writer thread, tiles, SR workers, benchmarks and `kdedge eval` may all keep an output past
the next `infer` without knowing which backend produced it. Only `infer_impl` sees reused buffers.
"""
from __future__ import annotations

import time
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np

from kdedge.errors import KdedgeError

# name -> (numpy dtype, shape with None for dynamic dimensions)
InputMetadata = Dict[str, Tuple[np.dtype, List[Optional[int]]]]


class Backend:
    """Base class: subclasses set `name` and implement activate_impl/infer_impl/deactivate_impl/input_metadata_impl."""

    name = "backend"
    # True when infer_impl returns buffers that the next infer_impl overwrites: infer() then copies them.
    reuses_outputs = False

    def __init__(self) -> None:
        self.is_active = False
        self.inference_time = None  # type: Optional[float]
        self.description = self.name  # e.g. "onnxruntime-cpu 2 threads", set on activation
        self.precision = None  # type: Optional[str]  # set by create_backend

    @property
    def label(self) -> str:
        """What runs, for logs and stats: "onnxruntime-cpu int8"."""
        return self.description if not self.precision else "%s %s" % (self.description, self.precision)

    # -- public contract ---------------------------------------------------------------
    def activate(self) -> "Backend":
        if self.is_active:
            return self
        self.activate_impl()
        self.is_active = True
        return self

    def infer(self, feed: Dict[str, np.ndarray], check_inputs: bool = True) -> Dict[str, np.ndarray]:
        """Run one inference. `feed` maps input name -> float32 NCHW array; returns name -> array.

        The arrays returned belong to the caller (copies when the backend `reuses_outputs`);
        `inference_time` covers the model only, not that copy."""
        if not self.is_active:
            raise KdedgeError("%s.infer() called before activate()" % type(self).__name__,
                              fix="use the backend as a context manager: `with backend: backend.infer(...)`")
        if check_inputs:
            self._check(feed)
        start = time.perf_counter()
        out = self.infer_impl(feed)
        self.inference_time = time.perf_counter() - start
        if self.reuses_outputs:
            out = {key: np.array(value, copy=True) for key, value in out.items()}
        return out

    def deactivate(self) -> None:
        if not self.is_active:
            return
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False

    def input_metadata(self) -> InputMetadata:
        return self.input_metadata_impl()

    def input_limits(self) -> "Optional[Tuple[Tuple[int, int], Tuple[int, int]]]":
        """((min_h, min_w), (max_h, max_w)) of the inputs an active backend accepts, None when any size
        runs. TensorRT returns its engine profile; the pipeline tiles frames to it (backends/profile.py)."""
        return None

    def __enter__(self) -> "Backend":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def __del__(self) -> None:
        if getattr(self, "is_active", False):
            warnings.warn("%s was never deactivated: call deactivate() or use it as a context manager"
                          % type(self).__name__, ResourceWarning)

    # -- for subclasses ----------------------------------------------------------------
    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError

    def input_metadata_impl(self) -> InputMetadata:
        raise NotImplementedError

    def _check(self, feed: Dict[str, np.ndarray]) -> None:
        meta = self.input_metadata()
        if set(feed) != set(meta):
            raise KdedgeError("%s: inputs %s given, model expects %s" % (self.name, sorted(feed), sorted(meta)))
        for key, (dtype, shape) in meta.items():
            arr = feed[key]
            if arr.dtype != dtype:
                raise KdedgeError("%s: input %r is %s, model expects %s" % (self.name, key, arr.dtype, dtype))
            if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
                raise KdedgeError("%s: input %r has shape %s, model expects %s" % (self.name, key, list(arr.shape), shape))
