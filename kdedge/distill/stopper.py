"""Stop a training loop cleanly on SIGINT/SIGTERM: finish the step, save, then exit.

`kdedge train`/`distill` save last.safetensors and `kdedge qat` its best step so far, so a run cut
short by Ctrl-C, a job scheduler or a time-boxed machine loses nothing already learned.
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Dict, List, Optional


class Stopper:
    """SIGINT/SIGTERM handlers that only record the signal (the loop stops at the next step boundary);
    a second signal interrupts at once. Installed from the main thread only; `restore()` puts back
    the previous handlers."""

    def __init__(self, enabled: bool = True):
        self.signal: Optional[str] = None
        self.old: Dict[int, Any] = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
            Stopper.active.append(self)

    def _handle(self, signum, _frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # a second signal: out now (the checkpoint of the last eval stays)
        self.signal = signal.Signals(signum).name
        print("\n%s received: finishing this step and saving a checkpoint (again to abort)" % self.signal, flush=True)

    def restore(self) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        self.old = {}

    active: List["Stopper"] = []

    @classmethod
    def restore_all(cls) -> None:
        while cls.active:
            cls.active.pop().restore()
