"""One frame through the model: colour split, inference (tiled when asked or when a TensorRT profile
needs it), colour merge. The pipeline's SR threads each own one SRProcessor; benchmarks and tests
call it directly. `create_backends` builds the backends, one per SR worker.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from kdedge.errors import KdedgeError
from kdedge.runtime import colour
from kdedge.runtime.backends.base import Backend
from kdedge.runtime.backends.profile import choose_tile
from kdedge.runtime.bundle import FRAME_INPUT, FRAME_OUTPUT, ModelSpec


class SRProcessor:
    """Frame -> super-resolved frame for one model (`ModelSpec`) and one (activated) backend, in three stages.

    `prepare` (any thread) splits colour and builds the model input; `infer` (the thread that
    activated the backend) runs the model, tiled when asked; `finish` (any thread) merges colour and
    returns BGR uint8. `process` runs all three.
    """

    def __init__(self, spec: ModelSpec, backend, tile: int = 0, tile_overlap: int = 16):
        self.spec = spec  # a bundle's `spec`, or one built for a bare ONNX file
        self.backend = backend
        self.scale = spec.scale
        self.tile = int(tile or 0)
        self.overlap = int(tile_overlap)
        self.multiple = spec.size_multiple
        self.model_time = 0.0  # seconds spent in the backend for the last frame
        # the whole-frame graph (export/frame_graph.py) takes the BGR frame and returns the BGR result
        self.frame_graph = bool(getattr(backend, "frame_graph", False))
        if self.frame_graph and self.tile:
            raise KdedgeError("the whole-frame graph cannot run tiles", fix="use --frame-graph off with --tile")
        # input sizes the (activated) backend accepts: a TensorRT engine's profile, None for no limit
        limits = getattr(backend, "input_limits", None)
        self.limits = limits() if callable(limits) else None

    def prepare(self, frame: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray], Tuple[int, int]]:
        if frame.ndim == 2:
            import cv2

            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if self.frame_graph:
            return np.ascontiguousarray(frame)[None], None, frame.shape[:2]
        if self.spec.color == "y":
            y, cbcr = colour.split_y(frame, self.scale)
            return y[None], cbcr, frame.shape[:2]
        rgb = frame[..., ::-1].transpose(2, 0, 1).astype(np.float32) * (1.0 / 255.0)
        return rgb, None, frame.shape[:2]

    def infer(self, chw: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 in [0,1] -> (C, sH, sW), tiled when the frame exceeds `tile`, or tiled
        to the backend's input limits (a TensorRT profile) when the whole frame does not fit them; with
        the whole-frame graph (1, H, W, 3) uint8 BGR -> (sH, sW, 3) uint8 BGR."""
        self.model_time = 0.0
        if self.frame_graph:
            out = self.backend.infer({FRAME_INPUT: chw}, check_inputs=False)[FRAME_OUTPUT]
            self.model_time = self.backend.inference_time or 0.0
            return out[0]
        c, h, w = chw.shape
        tile = choose_tile(h, w, self.tile, self.overlap, self.multiple, self.limits)
        if tile and (h > tile or w > tile):
            return self._tiled(chw, tile)
        return self._run(chw)

    def _run(self, chw: np.ndarray) -> np.ndarray:
        c, h, w = chw.shape
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # edge padding to the size multiple the model needs, cropped off again below
            chw = np.pad(chw, ((0, 0), (0, ph), (0, pw)), mode="edge")
        x = np.ascontiguousarray(chw[None], dtype=np.float32)
        out = self.backend.infer({self.spec.input_name: x}, check_inputs=False)[self.spec.output_name]
        self.model_time += self.backend.inference_time or 0.0
        s = self.scale
        return out[0, :, : h * s, : w * s]

    def _tiled(self, chw: np.ndarray, tile: int) -> np.ndarray:
        """Overlapping tiles; each keeps only its centre so seams never show the model's border effects."""
        c, h, w = chw.shape
        s, t, o = self.scale, tile, self.overlap
        out = np.empty((c, h * s, w * s), np.float32)
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                ya, xa = max(y0 - o, 0), max(x0 - o, 0)
                yb, xb = min(y1 + o, h), min(x1 + o, w)
                sr = self._run(chw[:, ya:yb, xa:xb])
                out[:, y0 * s:y1 * s, x0 * s:x1 * s] = sr[:, (y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
        return out

    def finish(self, sr: np.ndarray, cbcr: Optional[np.ndarray]) -> np.ndarray:
        if self.frame_graph:
            return sr
        if self.spec.color == "y":
            return colour.merge_y(sr[0], cbcr)
        bgr = sr[::-1].transpose(1, 2, 0) * 255.0
        return np.clip(bgr + 0.5, 0, 255).astype(np.uint8)

    def process(self, frame: np.ndarray) -> np.ndarray:
        chw, cbcr, _ = self.prepare(frame)
        return self.finish(self.infer(chw), cbcr)


def create_backends(bundle, backend: str = "auto", precision: str = "auto", threads: Optional[int] = None,
                    workers: int = 1, frame_graph: str = "auto", tile: int = 0) -> List[Backend]:
    """One inactive backend per SR worker. workers > 1 is for the CPU backends (ONNX Runtime CPU, OpenVINO;
    a GPU is kept busy from one thread); each worker's engine gets `threads` threads, by default its share
    of the cores."""
    import os

    from kdedge.runtime.backends import CPU_BACKENDS, create_backend, resolve_backend

    if workers < 1:
        raise KdedgeError("--workers must be at least 1, got %d" % workers)
    if workers > 1:
        name = resolve_backend(backend)
        if name not in CPU_BACKENDS:
            raise KdedgeError("--workers %d needs a CPU backend (%s), not %s" % (workers, " or ".join(CPU_BACKENDS), name),
                              fix="use --backend openvino or ort-cpu, or --workers 1 on a GPU (TensorRT keeps it busy from one thread)")
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // workers)
    return [create_backend(bundle, backend, precision, threads=threads, frame_graph=frame_graph, tile=tile)
            for _ in range(workers)]
