"""The real-time loop: capture thread -> SR (this thread) -> writer thread, with stats and clean shutdown.

Why three threads: ONNX Runtime and TensorRT release the GIL while they run, so the colour split of
frame i+1 (capture thread) and the chroma merge and encoding of frame i-1 (writer thread) overlap
the model on frame i; end-to-end throughput is then set by the model, not by the sum of the stages.

- Live sources (cameras, streams, a paced test pattern) go through a one-frame slot: the capture
  thread overwrites an unread frame and counts it as dropped, so latency cannot build up. Files and
  folders go through a small blocking queue instead: every frame is processed.
- Every frame read is accounted for: `captured == processed + dropped`, and every processed frame is
  handed to the sink (`written` is lower only when the sink itself failed, which is reported).
- SIGINT/SIGTERM set a stop flag: the loop stops taking frames, drains the writer and closes the sink,
  so a video file is finished and playable. A second Ctrl-C interrupts at once.
- A live source that fails is re-opened with exponential backoff when `reconnect` is set; otherwise,
  and for files, the run ends with the source's message and exit status 1 (output still finished).
- The model runs on Y/255 with bicubic chroma (manifest color "y") or on RGB; frames larger than
  `tile` LR pixels are processed in overlapping tiles.
- `workers` > 1 (CPU backends: ONNX Runtime CPU, OpenVINO) runs that many SR threads, each with its own session, on
  consecutive frames; the writer puts frames back in capture order. On a 2-core CPU two 1-thread
  workers beat one 2-thread session by 1.2-1.4x end to end (benchmarks/results/student_speed.md):
  one session leaves a core idle while Python and OpenCV do the per-frame colour work. Latency per
  frame grows (each frame gets one core), so 1 stays the default.
"""
from __future__ import annotations

import collections
import json
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from kdedge.errors import KdedgeError, from_os_error
from kdedge.runtime import colour
from kdedge.runtime.backends import describe_choice
from kdedge.runtime.backends.profile import choose_tile
from kdedge.runtime.bundle import FRAME_INPUT, FRAME_OUTPUT, atomic_write_bytes
from kdedge.runtime.sinks import ImageSink, Sink, open_sink
from kdedge.runtime.sources import EOS, OK, ImageFilesSource, Source, open_source
from kdedge.runtime.uri import VideoOptions, check_run_paths

_END = object()
_ERRORS = ("source-error", "sink-error", "model-error")  # end reasons that are failures: they outrank the others


class SRProcessor:
    """Frame -> super-resolved frame for one bundle and one (activated) backend, in three stages.

    `prepare` (any thread) splits colour and builds the model input; `infer` (the thread that
    activated the backend) runs the model, tiled when asked; `finish` (any thread) merges colour and
    returns BGR uint8. `process` runs all three.
    """

    def __init__(self, bundle, backend, tile: int = 0, tile_overlap: int = 16):
        self.bundle = bundle
        self.backend = backend
        self.scale = bundle.scale
        self.tile = int(tile or 0)
        self.overlap = int(tile_overlap)
        self.multiple = bundle.size_multiple
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
        if self.bundle.color == "y":
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
        out = self.backend.infer({self.bundle.input_name: x}, check_inputs=False)[self.bundle.output_name]
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
        if self.bundle.color == "y":
            return colour.merge_y(sr[0], cbcr)
        bgr = sr[::-1].transpose(1, 2, 0) * 255.0
        return np.clip(bgr + 0.5, 0, 255).astype(np.uint8)

    def process(self, frame: np.ndarray) -> np.ndarray:
        chw, cbcr, _ = self.prepare(frame)
        return self.finish(self.infer(chw), cbcr)


class Stats:
    """Counters and rolling latency windows; `summary()` is the stats JSON."""

    def __init__(self, window: int = 2000):
        self.lock = threading.Lock()
        self.captured = self.processed = self.dropped = self.written = 0
        self.reconnects = 0
        self.latency = collections.deque(maxlen=window)  # capture -> written, seconds
        self.model = collections.deque(maxlen=window)
        self.start = time.perf_counter()
        self.first_output = None  # type: Optional[float]
        self.in_size = self.out_size = None  # type: Optional[Tuple[int, int]]
        self.write_times = collections.deque(maxlen=window)  # for the live FPS and for benchmarks

    def fps(self) -> float:
        with self.lock:
            recent = list(self.write_times)[-120:]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    @staticmethod
    def _pct(values, q: float) -> Optional[float]:
        return float(np.percentile(np.asarray(values), q) * 1000.0) if len(values) else None

    def line(self) -> str:
        with self.lock:
            lat = list(self.latency)
            n, d = self.processed, self.dropped
        p50, p95 = self._pct(lat, 50), self._pct(lat, 95)
        size = "%dx%d -> %dx%d" % (self.in_size + self.out_size) if self.in_size and self.out_size else ""
        return "frame %d  %s  %.1f FPS  latency p50 %s p95 %s ms  dropped %d" % (
            n, size, self.fps(), "-" if p50 is None else "%.0f" % p50, "-" if p95 is None else "%.0f" % p95, d)

    def summary(self) -> Dict[str, Any]:
        with self.lock:
            lat, mod = list(self.latency), list(self.model)
            elapsed = time.perf_counter() - self.start
            return {
                "frames_captured": self.captured,
                "frames_processed": self.processed,
                "frames_dropped": self.dropped,
                "frames_written": self.written,
                "reconnects": self.reconnects,
                "elapsed_s": round(elapsed, 3),
                "fps": round(self.processed / elapsed, 3) if elapsed > 0 else 0.0,
                "input_size": list(self.in_size) if self.in_size else None,
                "output_size": list(self.out_size) if self.out_size else None,
                "latency_ms": {"p50": self._pct(lat, 50), "p95": self._pct(lat, 95),
                               "max": max(lat) * 1000.0 if lat else None, "window": len(lat)},
                "model_ms": {"p50": self._pct(mod, 50), "p95": self._pct(mod, 95), "window": len(mod)},
            }


class _Slot:
    """Hand-over between the capture thread and the SR loop: newest-only (live) or a blocking queue."""

    def __init__(self, live: bool, stats: Stats):
        self.live = live
        self.stats = stats
        self.cond = threading.Condition()
        self.items = collections.deque()  # type: collections.deque
        self.capacity = 1 if live else 3

    def put(self, item, stop: threading.Event) -> None:
        with self.cond:
            if self.live or item is _END:
                if item is not _END and self.items and self.items[-1] is not _END:
                    self.items.pop()
                    with self.stats.lock:
                        self.stats.dropped += 1
                self.items.append(item)
                self.cond.notify_all()
                return
            while len(self.items) >= self.capacity and not stop.is_set():
                self.cond.wait(0.1)
            if stop.is_set():
                with self.stats.lock:
                    self.stats.dropped += 1  # read but never processed: the run is stopping
                return
            self.items.append(item)
            self.cond.notify_all()

    def get(self, timeout: float):
        with self.cond:
            if not self.items:
                self.cond.wait(timeout)
            if not self.items:
                return None
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def push_back(self, item) -> None:
        """Return `item` to the front (another SR worker must see the end marker too)."""
        with self.cond:
            self.items.appendleft(item)
            self.cond.notify_all()

    def discard(self) -> int:
        """Frames still waiting when the run stops: counted as dropped so the books balance."""
        with self.cond:
            n = sum(1 for it in self.items if it is not _END)
            self.items.clear()
            self.cond.notify_all()
        with self.stats.lock:
            self.stats.dropped += n
        return n


class Pipeline:
    """source URI -> SR -> sink URI. Call `run()` from the thread that should own the backend."""

    def __init__(self, bundle, backend, input_uri: str = "test://", output_uri: str = "null://",
                 frames: Optional[int] = None, tile: int = 0, reconnect: bool = False,
                 stats_json: Optional[str] = None, overlay: bool = False, quiet: bool = False,
                 source_options: Optional[VideoOptions] = None, sink_options: Optional[VideoOptions] = None,
                 status_interval: float = 2.0, log: Optional[Callable[[str], None]] = None,
                 max_backoff: float = 8.0, progress: Optional[Callable[[int, Optional[int]], None]] = None,
                 source_timeout: float = 10.0, extra_backends: Sequence[Any] = ()):
        self.bundle = bundle
        self.backend = backend
        self.backends = [backend] + list(extra_backends)  # one per SR worker thread (the first runs in run()'s thread)
        self.input_uri, self.output_uri = input_uri, output_uri
        self.frames = frames
        self.tile = tile
        self.reconnect = reconnect
        self.stats_json = stats_json
        self.overlay = overlay
        self.quiet = quiet
        self.source_options = source_options or VideoOptions()
        self.sink_options = sink_options
        self.status_interval = status_interval
        self.max_backoff = max_backoff
        self.progress = progress  # called as progress(processed, total or None) after each frame
        self.source_timeout = source_timeout  # a live source silent this long has failed (0: wait forever)
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.stats = Stats()
        self.stop = threading.Event()
        self.end_reason = None  # type: Optional[str]
        self.error = None  # type: Optional[str]
        self.signal_received = None  # type: Optional[str]
        self.stuck_grace = 1.0  # seconds the SR loop waits, once stopping, for a capture thread stuck in read()
        self.capture_stuck = False

    def log(self, msg: str) -> None:
        if not self.quiet:
            self._log(msg)

    # -- threads -----------------------------------------------------------------------
    def _capture(self, source: Source, slot: _Slot, proc: SRProcessor) -> None:
        backoff = 0.5
        try:
            while not self.stop.is_set():
                status, frame = source.read()
                if status == OK:
                    backoff = 0.5
                    t = time.perf_counter()
                    with self.stats.lock:
                        self.stats.captured += 1
                    slot.put((t, frame.shape[:2], proc.prepare(frame)), self.stop)
                    continue
                if status == EOS:
                    self._finish("eos", stop=False)  # frames already read are still processed
                    break
                message = source.error or "%s failed" % self.input_uri
                if self.reconnect and source.live:
                    self.log("kdedge: %s; re-opening in %.1f s (--reconnect)" % (message, backoff))
                    source.close()
                    new = self._reopen(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    if new is None:
                        break
                    source = new
                    continue
                self._finish("source-error", message, stop=False)
                break
        except Exception as exc:  # a crash here must still end the run cleanly
            self._finish("source-error", "capture failed: %r" % (exc,))
        finally:
            source.close()
            slot.put(_END, self.stop)

    def _reopen(self, delay: float) -> Optional[Source]:
        while not self.stop.wait(delay):
            try:
                src = open_source(self.input_uri, self.source_options)
                with self.stats.lock:
                    self.stats.reconnects += 1
                self.log("kdedge: %s re-opened" % self.input_uri)
                return src
            except KdedgeError as exc:
                delay = min(delay * 2, self.max_backoff)
                self.log("kdedge: re-open failed (%s); next try in %.1f s" % (exc.message, delay))
        return None

    def _writer(self, sink: Sink, q: "queue.Queue", proc: SRProcessor) -> None:
        failed = False
        pending = {}  # type: Dict[int, Any]  # SR workers may finish out of order: frames wait for their turn
        next_seq = 0
        while True:
            item = q.get()
            if item is not _END:
                pending[item[0]] = item[1]
                ready = []  # type: List[Any]
                while next_seq in pending:
                    ready.append(pending.pop(next_seq))
                    next_seq += 1
            else:
                ready = [pending[k] for k in sorted(pending)]  # the end: whatever is left, in order
            for frame_item in ready:
                if frame_item is not None:  # None: a frame taken but dropped because the run was stopping
                    failed = self._write_one(sink, proc, frame_item, failed)
            if item is _END:
                break

    def _write_one(self, sink: Sink, proc: SRProcessor, item, failed: bool) -> bool:
        """Finish and write one SR frame; returns whether the sink has failed (then frames are drained unwritten)."""
        t0, sr, cbcr = item
        if failed:
            return True  # keep draining so the SR loop never blocks on a dead sink
        try:
            out = proc.finish(sr, cbcr)
            if self.overlay:
                self._draw_overlay(out)
            sink.write(out)
        except Exception as exc:
            message = _describe(exc, self.output_uri)  # the sinks' own errors name the file already
            self._finish("sink-error", message if isinstance(exc, KdedgeError) else "writing %s failed: %s" % (self.output_uri, message))
            return True
        now = time.perf_counter()
        with self.stats.lock:
            self.stats.written += 1
            self.stats.latency.append(now - t0)
            self.stats.write_times.append(now)
            if self.stats.out_size is None:
                self.stats.out_size = (out.shape[1], out.shape[0])
        if not sink.streaming:
            self._finish("sink-closed")
        return False

    def _draw_overlay(self, frame: np.ndarray) -> None:
        import cv2

        text = self.stats.line()
        cv2.putText(frame, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)

    def _finish(self, reason: str, error: Optional[str] = None, stop: bool = True) -> None:
        """Record why the run ends: the first reason wins, except that a failure (a write error on the
        last frame, after the source has ended) replaces an ordinary end. `stop` also stops taking
        frames at once; a source that ends instead lets the frames it already delivered through."""
        if self.end_reason is None or (reason in _ERRORS and self.end_reason not in _ERRORS):
            self.end_reason = reason
            self.error = error
        if stop:
            self.stop.set()

    def _on_signal(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self.signal_received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: the user really wants out
        self.signal_received = name
        self.log("kdedge: %s received, finishing the output (Ctrl-C again to abort)" % name)
        self._finish("signal")

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        """Run to the end; returns the stats dict (also written to `stats_json`). Never raises for a
        source or sink failure mid-stream: those end the run with `end_reason`/`error` set."""
        check_run_paths(self.input_uri, self.output_uri, self.stats_json)  # before anything is read or written
        source = open_source(self.input_uri, self.source_options)
        sink_opts = self.sink_options or VideoOptions(fps=source.fps or 30.0)
        try:
            sink = open_sink(self.output_uri, sink_opts)
        except BaseException:
            source.close()
            raise
        if isinstance(sink, ImageSink) and isinstance(source, ImageFilesSource) and sink.folder_mode:
            sink.names = [p.stem + ".png" for p in source.files]  # keep the input names in folder -> folder runs
        handlers = self._install_signals()
        slot = _Slot(source.live, self.stats)
        outq = queue.Queue(maxsize=4)  # type: queue.Queue
        writer = capture = None
        workers = []  # type: List[threading.Thread]
        try:
            self.backend.activate()  # in this thread: the TensorRT/pycuda context belongs here
            proc = SRProcessor(self.bundle, self.backend, tile=self.tile)
            self.log("kdedge: %s | %s -> %s | backend %s%s | x%d %s%s" % (
                self.bundle.name, self.input_uri, self.output_uri, self.backend.label,
                " x %d workers" % len(self.backends) if len(self.backends) > 1 else "", self.bundle.scale,
                self.bundle.color, " | tile %d" % self.tile if self.tile else ""))
            why = describe_choice(self.backend)
            if why:
                self.log("kdedge: auto picked %s" % why)
            writer = threading.Thread(target=self._writer, args=(sink, outq, proc), name="kdedge-writer", daemon=True)
            capture = threading.Thread(target=self._capture, args=(source, slot, proc), name="kdedge-capture", daemon=True)
            writer.start()
            capture.start()
            self.stats.start = time.perf_counter()
            self._seq_lock = threading.Lock()
            self._next_seq = 0
            self._last_status = time.perf_counter()
            self._worker_errors = []  # type: List[BaseException]
            workers = [threading.Thread(target=self._sr_worker, args=(be, slot, outq, capture, source),
                                        name="kdedge-sr-%d" % (i + 1), daemon=True)
                       for i, be in enumerate(self.backends[1:])]
            for w in workers:
                w.start()
            self._sr_loop(proc, slot, outq, capture, source)
            for w in workers:
                w.join()
            if self._worker_errors:
                raise self._worker_errors[0]
        finally:
            self.stop.set()
            if capture is not None:  # a capture thread stuck in a read() is left behind (a daemon), not waited for
                capture.join(timeout=0.1 if self.capture_stuck else 2.0 if self.end_reason in ("source-error", "signal") else 10.0)
            slot.discard()
            for w in workers:  # after an error in this thread: the other SR workers see the stop flag and end
                w.join(timeout=30.0)
            if writer is not None:
                outq.put(_END)
                writer.join()
            try:
                sink.close()  # finishes a video file; raises when it cannot (disk full while finishing)
            except Exception as exc:
                self._finish("sink-error", _describe(exc, self.output_uri))
            if capture is None:
                source.close()
            self.backend.deactivate()
            self._restore_signals(handlers)
        return self._report(source, sink)

    def _sr_worker(self, backend, slot: "_Slot", outq: "queue.Queue", capture: threading.Thread, source) -> None:
        """An extra SR thread (workers > 1): its own backend, activated here, the same loop."""
        try:
            backend.activate()
            try:
                self._sr_loop(SRProcessor(self.bundle, backend, tile=self.tile), slot, outq, capture, source)
            finally:
                backend.deactivate()
        except BaseException as exc:  # re-raised by run() once every thread has finished
            self._worker_errors.append(exc)
            self._finish("model-error", "SR worker failed: %r" % (exc,))

    def _sr_loop(self, proc: SRProcessor, slot: "_Slot", outq: "queue.Queue", capture: threading.Thread, source) -> None:
        """Take prepared frames, run the model, hand results to the writer with their capture order."""
        last_frame = time.perf_counter()
        stop_seen = None  # type: Optional[float]
        while True:
            item = slot.get(timeout=0.1)
            if item is None:
                if self.stop.is_set():
                    # Stop once the capture thread has ended, or after a grace period when it has not:
                    # a read() stuck in a camera driver (or a hung test source) never returns, and the
                    # run must still end on --source-timeout or a signal.
                    stop_seen = stop_seen or time.perf_counter()
                    if not capture.is_alive():
                        break
                    if time.perf_counter() - stop_seen > self.stuck_grace:
                        self.capture_stuck = True
                        break
                    continue
                silent = time.perf_counter() - last_frame
                if source.live and self.source_timeout and silent > self.source_timeout and not self.stop.is_set():
                    # a camera read that never returns cannot be interrupted; give up on it
                    self._finish("source-error", "%s delivered no frame for %.0f s" % (self.input_uri, silent))
                continue
            last_frame = time.perf_counter()
            if item is _END:
                slot.push_back(_END)  # the other SR workers stop on it too
                break
            with self._seq_lock:  # order numbers are taken in capture order, so the writer can restore it
                seq = self._next_seq
                self._next_seq += 1
                over = bool(self.frames) and seq >= self.frames
            if self.stop.is_set() or over:
                with self.stats.lock:
                    self.stats.dropped += 1
                outq.put((seq, None))
                continue
            t0, hw, (chw, cbcr, _) = item
            sr = proc.infer(chw)
            with self.stats.lock:
                self.stats.processed += 1
                self.stats.model.append(proc.model_time)
                if self.stats.in_size is None:
                    self.stats.in_size = (hw[1], hw[0])
                done = self.stats.processed
                now = time.perf_counter()
                status_due = now - self._last_status >= self.status_interval  # throttled: one line per interval
                if status_due:
                    self._last_status = now
            outq.put((seq, (t0, sr, cbcr)))
            if self.progress is not None:
                self.progress(done, self.frames or source.frame_count)
            if status_due:
                self.log("kdedge: " + self.stats.line())
            if self.frames and done >= self.frames:
                self._finish("frames")

    def _report(self, source: Source, sink: Sink) -> Dict[str, Any]:
        summary = self.stats.summary()
        summary.update({
            "bundle": self.bundle.name, "bundle_path": str(self.bundle.path), "scale": self.bundle.scale,
            "color": self.bundle.color, "backend": self.backend.label, "precision": self.backend.precision,
            "frame_graph": bool(getattr(self.backend, "frame_graph", False)), "workers": len(self.backends),
            "auto_choices": getattr(self.backend, "choice", None),
            "input": self.input_uri, "output": self.output_uri, "output_path": sink.path,
            "tile": self.tile, "end_reason": self.end_reason or "eos", "error": self.error,
            "signal": self.signal_received,
        })
        summary["accounted"] = summary["frames_captured"] == summary["frames_processed"] + summary["frames_dropped"]
        summary["frames_safe"] = sink.frames_safe
        summary["input_frames"] = source.frame_count  # None for live sources
        if self.end_reason in _ERRORS and sink.path:  # say what survives the failure
            summary["error"] = self.error = "%s; %s" % (self.error, sink.saved_text())
        self.log("kdedge: done (%s): %d processed, %d dropped, %d written, %.1f FPS%s" % (
            summary["end_reason"], summary["frames_processed"], summary["frames_dropped"], summary["frames_written"],
            summary["fps"], ", output %s" % sink.path if sink.path else ""))
        if self.error:
            self.log("kdedge: error: %s" % self.error)
        if self.stats_json:
            path = Path(self.stats_json)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
            except (OSError, KdedgeError) as exc:  # checked before the run; a disk that filled up since
                self.error = summary["error"] = "; ".join(
                    filter(None, [summary["error"], "--stats-json: " + _describe(exc, str(path))]))
                self._log("kdedge: error: %s" % summary["error"])
        return summary

    def _install_signals(self) -> Optional[Dict[int, Any]]:
        if threading.current_thread() is not threading.main_thread():
            return None
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, self._on_signal)
        return old

    @staticmethod
    def _restore_signals(old: Optional[Dict[int, Any]]) -> None:
        for sig, handler in (old or {}).items():
            signal.signal(sig, handler)


def create_backends(bundle, backend: str = "auto", precision: str = "auto", threads: Optional[int] = None,
                    workers: int = 1, frame_graph: str = "auto", tile: int = 0) -> List[Any]:
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


def run_pipeline(bundle_path, input_uri: str = "test://", output_uri: str = "null://", backend: str = "auto",
                 precision: str = "auto", threads: Optional[int] = None, workers: int = 1, frame_graph: str = "auto",
                 **kwargs) -> Dict[str, Any]:
    """Load a bundle, pick a backend (one per worker) and run the pipeline; returns the stats dict."""
    from kdedge.runtime.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    backends = create_backends(bundle, backend, precision, threads, workers, frame_graph, kwargs.get("tile", 0))
    return Pipeline(bundle, backends[0], input_uri, output_uri, extra_backends=backends[1:], **kwargs).run()


def _describe(exc: BaseException, path: str) -> str:
    """A failure's message for the user: KdedgeError's own, an OSError with its path and cause."""
    if isinstance(exc, KdedgeError):
        return exc.message
    if isinstance(exc, OSError):
        return from_os_error(exc, path).message
    return str(exc) or repr(exc)
