"""The watcher's own inotify observer: watchdog's, with a short move-pairing delay and an
overflow hook, both local to this observer (earlier versions patched watchdog's classes for
the whole process, issue 20's "hidden paths").

* Move pairing: watchdog holds an unmatched IN_MOVED_FROM for ``InotifyMoveEventGrouper.delay``
  (0.5 s) waiting for its IN_MOVED_TO, in a first-in first-out queue: every later event waits
  behind it.  Each finished file (moved out of the tree to archive/) leaves one, so a file
  dropped after another waited up to half a second before it was even seen (docs/benchmarks.md:
  p50 latency 636 ms -> 174 ms).  The kernel queues both halves of a rename together, so a
  short wait still pairs real moves.
* Overflow: watchdog answers a queue overflow by rebuilding its watches and offers no hook; the
  watcher counts overflows to leave inotify during a storm (``worker/inbox/pacing.py``).

Both ride on watchdog 7's ``InotifyWatchGroup`` (a dataclass whose ``_move_event_grouper`` is
built per watch): a subclass of it, built by a subclass of the emitter, scheduled by a subclass
of the observer.  With another watchdog layout ``make_observer`` falls back to watchdog's own
observer (0.5 s pairing, no storm detection) and says so in the log.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from worker.logs import get_logger

log = get_logger("seedworker.watcher")

#: Seconds an unmatched IN_MOVED_FROM waits for its IN_MOVED_TO (watchdog's default: 0.5).
MOVE_PAIRING_SECONDS = 0.02


def make_observer(overflowed: Callable[[], None]) -> tuple[BaseObserver, str]:
    """An observer and its mode (``inotify``, or the class name of what watchdog offers here)."""
    try:
        cls = _observer_class()
    except (ImportError, AttributeError, TypeError) as exc:
        observer = Observer()
        name = type(observer).__name__
        if name.startswith("Inotify"):
            log.warning("watchdog's inotify internals differ: default move pairing, no storm detection", error=str(exc))
        return observer, "inotify" if name.startswith("Inotify") else name
    return cls(overflowed), "inotify"


def _observer_class() -> Any:
    from watchdog.observers.inotify import InotifyEmitter, InotifyObserver, InotifyWatchGroup
    from watchdog.observers.inotify_c import InotifyFD
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

    if "_move_event_grouper" not in getattr(InotifyWatchGroup, "__dataclass_fields__", {}):
        raise AttributeError("InotifyWatchGroup has no _move_event_grouper field")

    class QuickGrouper(InotifyMoveEventGrouper):  # type: ignore[misc]
        delay = MOVE_PAIRING_SECONDS

    @dataclass
    class WatchGroup(InotifyWatchGroup):  # type: ignore[misc]
        overflowed: Callable[[], None] | None = None
        _move_event_grouper: InotifyMoveEventGrouper = field(default_factory=QuickGrouper, init=False)

        def on_queue_overflow(self) -> None:
            if self.overflowed is not None:
                self.overflowed()
            super().on_queue_overflow()

    class Emitter(InotifyEmitter):  # type: ignore[misc]
        def __init__(self, *args: Any, overflowed: Callable[[], None] | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._overflowed = overflowed

        def on_thread_start(self) -> None:
            self._inotify = WatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
                overflowed=self._overflowed,
            )

    class WatcherObserver(InotifyObserver):  # type: ignore[misc]
        def __init__(self, overflowed: Callable[[], None]) -> None:
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            BaseObserver.__init__(self, Emitter, inotify_fd=self._inotify_fd, overflowed=overflowed)

    return WatcherObserver
