"""How often the watcher may walk the inbox, and when it gives up inotify for a while.

Issue 19 §8: with 5,000 sub-folders in the inbox, a burst of events overflowed the kernel's
inotify queue; watchdog answers an overflow by removing and re-adding every recursive watch,
which queues thousands of events of its own, overflows again, and so on: 55-90 % of a core
and ~7 warnings a second, for as long as the folders exist.  The watcher now counts overflows;
past ``STORM_OVERFLOWS`` in ``STORM_WINDOW`` seconds it stops the inotify observer and finds
files by scanning alone, tries inotify again after a calm period (doubling, up to ten minutes,
while storms recur), and never scans more often than a share of its time allows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STORM_OVERFLOWS = 2  # overflows within the window that make a storm
STORM_WINDOW = 30.0  # seconds
CALM_FIRST = 60.0  # seconds of scanning before inotify is tried again
CALM_MAX = 600.0


@dataclass
class ScanPacer:
    """A scan that took ``t`` seconds is followed by at least ``t / max_share`` seconds before
    the next one (and never less than ``min_interval``), so scanning costs at most
    ``max_share`` of a core however large the inbox grows."""

    min_interval: float
    max_share: float = 0.1
    last_cost: float = 0.0
    last_end: float = float("-inf")

    @property
    def interval(self) -> float:
        return max(self.min_interval, self.last_cost / self.max_share)

    def due(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) - self.last_end >= self.interval

    def measure(self, scan: Callable[[], Any]) -> None:
        """Run one scan and remember its cost (CPU time of this thread, not wall time: a scan
        that waited for the disk did not use the CPU the pacing protects)."""
        cpu = time.thread_time()
        try:
            scan()
        finally:
            self.last_cost = time.thread_time() - cpu
            self.last_end = time.monotonic()


@dataclass
class StormGuard:
    """Counts inotify overflows (called from watchdog's reader thread, through the watcher's
    observer: ``worker/watcher/observer.py``) and decides, in the watcher's loop, when to leave
    inotify and when to come back."""

    overflows: int = STORM_OVERFLOWS
    window: float = STORM_WINDOW
    calm: float = CALM_FIRST
    storms: int = 0
    scanning_since: float | None = None
    _times: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def overflowed(self) -> None:
        with self._lock:
            self._times.append(time.monotonic())

    def storming(self, now: float | None = None) -> bool:
        """True when the observer should be stopped now (then call ``entered``)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and now - self._times[0] > self.window:
                self._times.popleft()
            return len(self._times) >= self.overflows

    def entered(self, now: float | None = None) -> None:
        with self._lock:
            self._times.clear()
            self.storms += 1
            self.scanning_since = time.monotonic() if now is None else now
            self.calm = min(CALM_MAX, CALM_FIRST * 2 ** (self.storms - 1))

    def calm_again(self, now: float | None = None) -> bool:
        """True when it is time to try inotify again (then call ``left``)."""
        now = time.monotonic() if now is None else now
        return self.scanning_since is not None and now - self.scanning_since >= self.calm

    def left(self) -> None:
        with self._lock:
            self._times.clear()
            self.scanning_since = None
