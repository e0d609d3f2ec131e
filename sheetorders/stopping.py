"""Stopping on a signal: after the first SIGINT/SIGTERM nothing new is sent; what was placed
is written back; a second signal stops at once (the journal still keeps every answer)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

from sheetorders.errors import ExitCode, Terminated


class StopSignal(Protocol):
    """Anything that says whether a stop was asked for (a StopRequest, a threading.Event)."""

    def is_set(self) -> bool: ...


class StopRequest:
    """Set once somebody asked the process to stop; says by which signal."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def request(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.TERMINATED if self.signum == signal.SIGTERM else ExitCode.INTERRUPTED


@contextmanager
def stop_on_signals(stop: StopRequest, on_first: Callable[[int], None]) -> Iterator[StopRequest]:
    """While inside, SIGINT and SIGTERM request `stop` (and call `on_first`); a second one
    raises KeyboardInterrupt (SIGINT) or Terminated (SIGTERM) where the main thread is."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            if signum == signal.SIGTERM:
                raise Terminated("terminated")
            raise KeyboardInterrupt
        stop.request(signum)
        on_first(signum)

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
