"""Stopping on SIGTERM/SIGINT, the one way every long-running loop does it (the processes,
``seedworker events tail``, ``worker.consumer.consume``): call ``stop``, finish what is in
flight, and restore the previous handlers afterwards."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from worker.logs import get_logger

log = get_logger("seedworker.services")


@contextmanager
def stop_on_signals(
    stop: Callable[[], object], *, received: list[int] | None = None, announce: bool = True, enabled: bool = True
) -> Iterator[None]:
    """Call ``stop`` on SIGTERM/SIGINT while the block runs, then restore the previous handlers.

    ``received`` collects the signal numbers (for an exit code such as 130 after Ctrl-C);
    ``announce`` logs "stopping".  Only the main thread may install handlers: elsewhere, or
    with ``enabled=False``, the block runs without them.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, _: FrameType | None) -> None:
        if announce:
            log.info("stopping", signal=signal.Signals(signum).name)
        if received is not None:
            received.append(signum)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
