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
  `tile` LR pixels are processed in overlapping tiles (runtime/processor.py).
- More than one backend (`workers` > 1; CPU backends: ONNX Runtime CPU, OpenVINO) runs that many SR threads, each with its own session, on
  consecutive frames; the writer puts frames back in capture order. On a 2-core CPU two 1-thread
  workers beat one 2-thread session by 1.2-1.4x end to end (benchmarks/experiments/results/student_speed.md):
  one session leaves a core idle while Python and OpenCV do the per-frame colour work. Latency per
  frame grows (each frame gets one core), so 1 stays the default.

`Pipeline(bundle, backends, input_uri, output_uri, PipelineOptions(...))` is the API; `run_pipeline`
loads the bundle and builds the backends first. Counters and the frame hand-over: runtime/stats.py.
"""
from __future__ import annotations

import json
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from kdedge.errors import KdedgeError, from_os_error
from kdedge.runtime.backends import describe_choice
from kdedge.runtime.backends.base import Backend
from kdedge.runtime.bundle import atomic_write_bytes
from kdedge.runtime.processor import SRProcessor, create_backends
from kdedge.runtime.sinks import ImageSink, Sink, open_sink
from kdedge.runtime.sources import EOS, OK, ImageFilesSource, Source, open_source
from kdedge.runtime.stats import END, FrameSlot, Stats
from kdedge.runtime.uri import VideoOptions, check_run_paths

_ERRORS = ("source-error", "sink-error", "model-error")  # end reasons that are failures: they outrank the others


@dataclass
class PipelineOptions:
    """How a run behaves, apart from what it runs (bundle, backends) and where (input, output URIs)."""

    frames: Optional[int] = None  # stop after this many processed frames
    tile: int = 0  # LR pixels; larger frames are processed in overlapping tiles (0: whole frames)
    reconnect: bool = False  # re-open a live source that fails, with exponential backoff up to max_backoff s
    max_backoff: float = 8.0
    source_timeout: float = 10.0  # a live source silent this long has failed (0: wait forever)
    stats_json: Optional[str] = None  # the stats dict is also written here at the end
    overlay: bool = False  # draw FPS, latency and drops on the output
    quiet: bool = False  # no console lines
    status_interval: float = 2.0  # seconds between status lines
    source_options: Optional[VideoOptions] = None
    sink_options: Optional[VideoOptions] = None  # None: the source's frame rate, codec by extension
    log: Optional[Callable[[str], None]] = None  # where console lines go (default: stderr)
    progress: Optional[Callable[[int, Optional[int]], None]] = None  # progress(processed, total or None) per frame


class Pipeline:
    """source URI -> SR -> sink URI. Call `run()` from the thread that should own the first backend;
    each further backend gets an SR worker thread of its own."""

    def __init__(self, bundle, backends: Sequence[Backend], input_uri: str = "test://", output_uri: str = "null://",
                 options: Optional[PipelineOptions] = None):
        if not backends:
            raise KdedgeError("a pipeline needs at least one backend")
        self.bundle = bundle
        self.backends = list(backends)
        self.backend = self.backends[0]  # runs in run()'s thread: its label and precision describe the run
        self.input_uri, self.output_uri = input_uri, output_uri
        self.opts = options or PipelineOptions()
        self.source_options = self.opts.source_options or VideoOptions()
        self._log = self.opts.log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.stats = Stats()
        self.stop = threading.Event()
        self.end_reason = None  # type: Optional[str]
        self.error = None  # type: Optional[str]
        self.signal_received = None  # type: Optional[str]
        self.stuck_grace = 1.0  # seconds the SR loop waits, once stopping, for a capture thread stuck in read()
        self.capture_stuck = False

    def log(self, msg: str) -> None:
        if not self.opts.quiet:
            self._log(msg)

    # -- threads -----------------------------------------------------------------------
    def _capture(self, source: Source, slot: FrameSlot, proc: SRProcessor) -> None:
        backoff = 0.5
        try:
            while not self.stop.is_set():
                status, frame = source.read()
                if status == OK:
                    backoff = 0.5
                    t = time.perf_counter()
                    self.stats.count("captured")
                    slot.put((t, frame.shape[:2], proc.prepare(frame)), self.stop)
                    continue
                if status == EOS:
                    self._finish("eos", stop=False)  # frames already read are still processed
                    break
                message = source.error or "%s failed" % self.input_uri
                if self.opts.reconnect and source.live:
                    self.log("kdedge: %s; re-opening in %.1f s (--reconnect)" % (message, backoff))
                    source.close()
                    new = self._reopen(backoff)
                    backoff = min(backoff * 2, self.opts.max_backoff)
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
            slot.put(END, self.stop)

    def _reopen(self, delay: float) -> Optional[Source]:
        while not self.stop.wait(delay):
            try:
                src = open_source(self.input_uri, self.source_options)
                self.stats.count("reconnects")
                self.log("kdedge: %s re-opened" % self.input_uri)
                return src
            except KdedgeError as exc:
                delay = min(delay * 2, self.opts.max_backoff)
                self.log("kdedge: re-open failed (%s); next try in %.1f s" % (exc.message, delay))
        return None

    def _writer(self, sink: Sink, q: "queue.Queue", proc: SRProcessor) -> None:
        failed = False
        pending = {}  # type: Dict[int, Any]  # SR workers may finish out of order: frames wait for their turn
        next_seq = 0
        while True:
            item = q.get()
            if item is not END:
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
            if item is END:
                break

    def _write_one(self, sink: Sink, proc: SRProcessor, item, failed: bool) -> bool:
        """Finish and write one SR frame; returns whether the sink has failed (then frames are drained unwritten)."""
        t0, sr, cbcr = item
        if failed:
            return True  # keep draining so the SR loop never blocks on a dead sink
        try:
            out = proc.finish(sr, cbcr)
            if self.opts.overlay:
                self.stats.draw(out)
            sink.write(out)
        except Exception as exc:
            message = _describe(exc, self.output_uri)  # the sinks' own errors name the file already
            self._finish("sink-error", message if isinstance(exc, KdedgeError) else "writing %s failed: %s" % (self.output_uri, message))
            return True
        self.stats.written_one(t0, out)
        if not sink.streaming:
            self._finish("sink-closed")
        return False

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
        check_run_paths(self.input_uri, self.output_uri, self.opts.stats_json)  # before anything is read or written
        source = open_source(self.input_uri, self.source_options)
        sink_opts = self.opts.sink_options or VideoOptions(fps=source.fps or 30.0)
        try:
            sink = open_sink(self.output_uri, sink_opts)
        except BaseException:
            source.close()
            raise
        if isinstance(sink, ImageSink) and isinstance(source, ImageFilesSource) and sink.folder_mode:
            sink.names = [p.stem + ".png" for p in source.files]  # keep the input names in folder -> folder runs
        handlers = self._install_signals()
        slot = FrameSlot(source.live, self.stats)
        outq = queue.Queue(maxsize=4)  # type: queue.Queue
        writer = capture = None
        workers = []  # type: List[threading.Thread]
        try:
            self.backend.activate()  # in this thread: the TensorRT/pycuda context belongs here
            proc = SRProcessor(self.bundle.spec, self.backend, tile=self.opts.tile)
            self.log("kdedge: %s | %s -> %s | backend %s%s | x%d %s%s" % (
                self.bundle.name, self.input_uri, self.output_uri, self.backend.label,
                " x %d workers" % len(self.backends) if len(self.backends) > 1 else "", self.bundle.scale,
                self.bundle.color, " | tile %d" % self.opts.tile if self.opts.tile else ""))
            why = describe_choice(self.backend)
            if why:
                self.log("kdedge: auto picked %s" % why)
            writer = threading.Thread(target=self._writer, args=(sink, outq, proc), name="kdedge-writer", daemon=True)
            capture = threading.Thread(target=self._capture, args=(source, slot, proc), name="kdedge-capture", daemon=True)
            writer.start()
            capture.start()
            self.stats.start = self.stats.last_status = time.perf_counter()
            self._seq_lock = threading.Lock()
            self._next_seq = 0
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
                outq.put(END)
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

    def _sr_worker(self, backend, slot: "FrameSlot", outq: "queue.Queue", capture: threading.Thread, source) -> None:
        """An extra SR thread (workers > 1): its own backend, activated here, the same loop."""
        try:
            backend.activate()
            try:
                self._sr_loop(SRProcessor(self.bundle.spec, backend, tile=self.opts.tile), slot, outq, capture, source)
            finally:
                backend.deactivate()
        except BaseException as exc:  # re-raised by run() once every thread has finished
            self._worker_errors.append(exc)
            self._finish("model-error", "SR worker failed: %r" % (exc,))

    def _sr_loop(self, proc: SRProcessor, slot: "FrameSlot", outq: "queue.Queue", capture: threading.Thread, source) -> None:
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
                if source.live and self.opts.source_timeout and silent > self.opts.source_timeout and not self.stop.is_set():
                    # a camera read that never returns cannot be interrupted; give up on it
                    self._finish("source-error", "%s delivered no frame for %.0f s" % (self.input_uri, silent))
                continue
            last_frame = time.perf_counter()
            if item is END:
                slot.push_back(END)  # the other SR workers stop on it too
                break
            with self._seq_lock:  # order numbers are taken in capture order, so the writer can restore it
                seq = self._next_seq
                self._next_seq += 1
                over = bool(self.opts.frames) and seq >= self.opts.frames
            if self.stop.is_set() or over:
                self.stats.count("dropped")
                outq.put((seq, None))
                continue
            t0, hw, (chw, cbcr, _) = item
            sr = proc.infer(chw)
            done, status_due = self.stats.processed_one(proc.model_time, hw, self.opts.status_interval)
            outq.put((seq, (t0, sr, cbcr)))
            if self.opts.progress is not None:
                self.opts.progress(done, self.opts.frames or source.frame_count)
            if status_due:
                self.log("kdedge: " + self.stats.line())
            if self.opts.frames and done >= self.opts.frames:
                self._finish("frames")

    def _report(self, source: Source, sink: Sink) -> Dict[str, Any]:
        summary = self.stats.summary()
        summary.update({
            "bundle": self.bundle.name, "bundle_path": str(self.bundle.path), "scale": self.bundle.scale,
            "color": self.bundle.color, "backend": self.backend.label, "precision": self.backend.precision,
            "frame_graph": bool(getattr(self.backend, "frame_graph", False)), "workers": len(self.backends),
            "auto_choices": getattr(self.backend, "choice", None),
            "input": self.input_uri, "output": self.output_uri, "output_path": sink.path,
            "tile": self.opts.tile, "end_reason": self.end_reason or "eos", "error": self.error,
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
        if self.opts.stats_json:
            path = Path(self.opts.stats_json)
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


def run_pipeline(bundle_path, input_uri: str = "test://", output_uri: str = "null://", backend: str = "auto",
                 precision: str = "auto", threads: Optional[int] = None, workers: int = 1, frame_graph: str = "auto",
                 **options) -> Dict[str, Any]:
    """Load a bundle, pick a backend (one per worker) and run the pipeline; `options` are
    PipelineOptions fields. Returns the stats dict."""
    from kdedge.runtime.bundle import load_bundle

    opts = PipelineOptions(**options)
    bundle = load_bundle(bundle_path)
    backends = create_backends(bundle, backend, precision, threads, workers, frame_graph, opts.tile)
    return Pipeline(bundle, backends, input_uri, output_uri, opts).run()


def _describe(exc: BaseException, path: str) -> str:
    """A failure's message for the user: KdedgeError's own, an OSError with its path and cause."""
    if isinstance(exc, KdedgeError):
        return exc.message
    if isinstance(exc, OSError):
        return from_os_error(exc, path).message
    return str(exc) or repr(exc)
