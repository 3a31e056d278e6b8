"""Run statistics (counters, rolling latency windows, the stats JSON) and the hand-over between the
capture thread and the SR threads, which counts every frame it drops so the books balance."""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

END = object()  # end-of-stream marker on the slot and the writer queue


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
        self.last_status = self.start  # when the last status line was due

    def count(self, counter: str, n: int = 1) -> None:
        """Add n to one counter: captured, dropped or reconnects."""
        with self.lock:
            setattr(self, counter, getattr(self, counter) + n)

    def processed_one(self, model_s: float, hw: Tuple[int, int], status_interval: float) -> Tuple[int, bool]:
        """A frame came out of the model: frames processed so far, and whether a status line is due
        (throttled: one per `status_interval` seconds)."""
        with self.lock:
            self.processed += 1
            self.model.append(model_s)
            if self.in_size is None:
                self.in_size = (hw[1], hw[0])
            now = time.perf_counter()
            due = now - self.last_status >= status_interval
            if due:
                self.last_status = now
            return self.processed, due

    def written_one(self, t0: float, out: np.ndarray) -> None:
        """A frame captured at `t0` was written: its latency, the write time, the output size."""
        now = time.perf_counter()
        with self.lock:
            self.written += 1
            self.latency.append(now - t0)
            self.write_times.append(now)
            if self.out_size is None:
                self.out_size = (out.shape[1], out.shape[0])

    def draw(self, frame: np.ndarray) -> None:
        """The status line on `frame` (--overlay), white on a black outline."""
        import cv2

        text = self.line()
        cv2.putText(frame, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)

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


class FrameSlot:
    """Hand-over between the capture thread and the SR loop: newest-only (live) or a blocking queue."""

    def __init__(self, live: bool, stats: Stats):
        self.live = live
        self.stats = stats
        self.cond = threading.Condition()
        self.items = collections.deque()  # type: collections.deque
        self.capacity = 1 if live else 3

    def put(self, item, stop: threading.Event) -> None:
        with self.cond:
            if self.live or item is END:
                if item is not END and self.items and self.items[-1] is not END:
                    self.items.pop()
                    self.stats.count("dropped")
                self.items.append(item)
                self.cond.notify_all()
                return
            while len(self.items) >= self.capacity and not stop.is_set():
                self.cond.wait(0.1)
            if stop.is_set():
                self.stats.count("dropped")  # read but never processed: the run is stopping
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
            n = sum(1 for it in self.items if it is not END)
            self.items.clear()
            self.cond.notify_all()
        self.stats.count("dropped", n)
        return n
