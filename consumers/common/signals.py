"""SIGTERM and SIGINT ask a service loop to stop after its current batch."""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["StopFlag"]


class StopFlag:
    """A thread-safe flag; `install` makes SIGTERM/SIGINT set it (main thread only)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)

    def install(self) -> StopFlag:
        """Route SIGTERM and SIGINT to this flag when called from the main thread."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.set()
