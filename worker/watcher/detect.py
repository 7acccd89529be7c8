"""Finding files: watchdog's events, scans of the inbox, and when a noted file is ready.

A file is a *candidate* from its first event (or the scan that found it) until it has been
quiet long enough: ``SETTLE_SECONDS`` after its writer closed it, ``STABLE_SECONDS`` of
unchanged size and mtime otherwise, and never while the kernel says a process holds it open
for writing.  Scans find what events missed (files present at start, rename storms, a queue
overflow); they are paced by their own cost (``worker/inbox/pacing.py``) and, while inotify is
healthy, run only when asked for or as a slow safety net (``SAFETY_SCAN_SHARE``).
"""

from __future__ import annotations

import os
import stat
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from worker.inbox import fs
from worker.inbox.ignore import IgnoreRules
from worker.inbox.pacing import ScanPacer, StormGuard
from worker.logs import get_logger
from worker.settings import Settings
from worker.watcher import observer as inotify
from worker.watcher.roots import Roots

log = get_logger("seedworker.watcher")

#: The events the watcher acts on.  watchdog's default mask adds IN_OPEN and IN_CLOSE_NOWRITE,
#: two events for every folder any process lists (each scan of the inbox, and watchdog's own
#: walk when it rebuilds its watches after an overflow): with 5,000 sub-folders a scan alone
#: queued 10,000 events, and the rebuild overflowed the queue again (issue 19 §8).
EVENT_FILTER = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, DirCreatedEvent, DirMovedEvent]
#: While inotify reports every change, the periodic scan is only a safety net: it may cost at
#: most this share of a core (a scan of 5,000 folders that takes 50 ms runs every 20 s; issue
#: 21: the watcher idle with 5,000 sub-folders below 1 % of a core), where scans that were asked
#: for (a folder moved in, a storm) may take ``ScanPacer``'s 10 %.
SAFETY_SCAN_SHARE = 0.0025


@dataclass
class Candidate:
    size: int
    mtime_ns: int
    changed_at: float
    closed: bool = False
    dev: int = 0  # the file it was, so that a claim never takes another one (issue 19 §1)
    ino: int = 0

    @classmethod
    def of(cls, st: os.stat_result, now: float, closed: bool) -> Candidate:
        return cls(st.st_size, st.st_mtime_ns, now, closed, st.st_dev, st.st_ino)

    def same(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.dev, self.ino) == (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def is_ignored(name: str) -> bool:
    """A name the default ``SEEDWORKER_IGNORE`` never takes (hidden, temporary, system clutter)."""
    rules = IgnoreRules()
    return rules.file(name) or rules.folder(name)


class _Events(FileSystemEventHandler):  # type: ignore[misc]
    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and not isinstance(event, DirMovedEvent):
            return
        if isinstance(event, DirMovedEvent):
            self.detector.request_rescan()
            return
        path = event.dest_path if isinstance(event, FileMovedEvent) else event.src_path
        closed = isinstance(event, (FileClosedEvent, FileMovedEvent))
        if event.event_type in ("created", "modified", "closed", "moved"):
            self.detector.note(Path(os.fsdecode(path)), closed=closed)


@dataclass
class Detector:
    settings: Settings
    roots: Roots
    wake: threading.Event  # set when a file is noted: the loop stops waiting
    rescan_every: float = 5.0
    candidates: dict[Path, Candidate] = field(default_factory=dict)
    observer: BaseObserver | None = None
    mode: str = ""
    scanning_only: bool = False  # inotify given up for a while (a storm of overflows)

    def __post_init__(self) -> None:
        self.inbox = self.roots.inbox_dir
        self.rules = IgnoreRules.of(self.settings.ignore)
        self.pacer = ScanPacer(min_interval=min(self.settings.poll_interval, 1.0))
        self.safety = ScanPacer(min_interval=self.rescan_every, max_share=SAFETY_SCAN_SHARE)
        self.storm = StormGuard()
        self._lock = threading.Lock()
        self._rescan = threading.Event()

    # -- events (watchdog's thread) ----------------------------------------------------------
    def note(self, path: Path, *, closed: bool) -> None:
        if not self._watchable(path):
            return
        st = self.stat_in_inbox(path)
        if st is None:
            with self._lock:
                self.candidates.pop(path, None)
            return
        now = time.monotonic()
        with self._lock:
            cand = self.candidates.get(path)
            if cand is None or not cand.same(st):
                self.candidates[path] = Candidate.of(st, now, closed)
            elif closed:
                cand.closed = True
        self.wake.set()

    def request_rescan(self) -> None:
        self._rescan.set()
        self.wake.set()

    def _watchable(self, path: Path) -> bool:
        try:
            rel = path.relative_to(self.inbox)
        except ValueError:
            return False
        return bool(rel.parts) and not self.rules.path(rel.parts)

    # -- the observer ------------------------------------------------------------------------
    def start(self) -> None:
        observer = self._make_observer()
        observer.schedule(_Events(self), str(self.inbox), recursive=True, event_filter=EVENT_FILTER)
        observer.start()
        self.observer = observer
        self.scanning_only = False

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.observer = None

    def _make_observer(self) -> BaseObserver:
        # watchdog's recursive inotify watch can add the same sub-folder twice when a claim
        # creates nested folders (the walk of a new folder and that folder's own IN_CREATE
        # both add it), and then find nothing left to remove for the second; watchdog
        # documents both as harmless bookkeeping (the callback is overwritten, the removal
        # skipped) and warns.  Under ``-W error`` the warning is raised inside watchdog's
        # reader thread and kills it, so the watcher would go deaf: both are silenced here.
        warnings.filterwarnings(
            "ignore",
            message=r"Callback with id .* (already exists|does not exist) for watch",
            category=RuntimeWarning,
            module=r"watchdog\.observers",
        )
        if self.settings.watch_mode != "polling":
            try:
                observer, self.mode = inotify.make_observer(self.storm.overflowed)
                if self.mode == "inotify" or self.settings.watch_mode == "auto":
                    return observer
            except OSError as exc:
                if self.settings.watch_mode == "inotify":
                    raise
                log.warning("inotify unavailable, polling instead", error=str(exc))
        self.mode = "polling"
        return PollingObserver(timeout=self.settings.poll_interval)

    def weather(self, now: float) -> None:
        """Leave inotify while its queue keeps overflowing; come back when it has been calm."""
        if self.mode == "inotify" and not self.scanning_only and self.storm.storming(now):
            self.storm.entered(now)
            if self.observer is not None:  # stopped, and kept for the record until inotify is back
                self.observer.stop()
                self.observer.join(timeout=10)
            self.scanning_only = True
            log.warning(
                "inotify queue keeps overflowing: finding files by scanning for a while",
                storms=self.storm.storms,
                inotify_again_in=self.storm.calm,
                scan_every=round(self.pacer.interval, 3),
            )
        elif self.scanning_only and self.storm.calm_again(now):
            self.storm.left()
            self.start()
            log.info("inotify again after a storm", storms=self.storm.storms)

    # -- scans -------------------------------------------------------------------------------
    def scan_if_due(self, now: float) -> None:
        """A scan when one was asked for or inotify is off for a storm (paced to 10 % of a
        core), else the periodic safety net (every ``rescan_every`` at most, paced to
        ``SAFETY_SCAN_SHARE``)."""
        if self._rescan.is_set() or self.scanning_only:
            if self.pacer.due(now):
                self._rescan.clear()
                self.pacer.measure(self.scan)
                self.safety.last_end = self.pacer.last_end
        elif self.safety.due(now):
            self.safety.measure(self.scan)

    def first_scan(self) -> None:
        self.pacer.measure(self.scan)
        self.safety.last_cost, self.safety.last_end = self.pacer.last_cost, self.pacer.last_end

    def scan(self) -> None:
        """Files present at start, and anything an event was missed for (rename storms, overflow)."""
        for root, dirs, files in os.walk(self.inbox):
            dirs[:] = [d for d in dirs if not self.rules.folder(d)]
            # A link to a directory is listed among the folders (and never entered): it is
            # an entry of the inbox like any file, claimed and failed as unsafe_path.
            links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
            dirs[:] = [d for d in dirs if d not in links]
            for name in [*files, *links]:
                path = Path(root) / name
                with self._lock:
                    known = path in self.candidates
                if not known:
                    self.note(path, closed=False)

    # -- ready files -------------------------------------------------------------------------
    def _quiet_for(self, cand: Candidate) -> float:
        return self.settings.settle_seconds if cand.closed else self.settings.stable_seconds

    def ready(self, room: int) -> list[tuple[Path, Candidate]]:
        """Up to ``room`` candidates that have been quiet long enough, oldest first, taken off
        the list (the others are looked at, and their changes seen, when there is room)."""
        now = time.monotonic()
        ready: list[tuple[Path, Candidate]] = []
        with self._lock:
            items = sorted(self.candidates.items(), key=lambda item: item[1].changed_at)
        for path, cand in items:
            if len(ready) == room:
                break
            if now - cand.changed_at < self._quiet_for(cand):
                continue
            st = self.stat_in_inbox(path)
            if st is None:
                with self._lock:
                    self.candidates.pop(path, None)
                continue
            if not cand.same(st):
                with self._lock:
                    self.candidates[path] = Candidate.of(st, now, cand.closed)
                continue
            if stat.S_ISREG(st.st_mode) and self._held_for_writing(path):
                cand.changed_at = now  # a writer still has it open, however long it pauses
                continue
            ready.append((path, cand))
        with self._lock:
            for path, _ in ready:
                self.candidates.pop(path, None)
        return ready

    def next_due(self) -> float | None:
        """When the earliest candidate's quiet time ends (monotonic), None with no candidates."""
        with self._lock:
            due = [cand.changed_at + self._quiet_for(cand) for cand in self.candidates.values()]
        return min(due) if due else None

    # -- the file system, through handles that never follow a link (worker/inbox/fs.py) --------
    def _held_for_writing(self, path: Path) -> bool:
        """True only when the kernel says a process has the file open for writing (see
        ``fs.held_for_writing``); when it cannot say, STABLE_SECONDS alone decides."""
        return self._at(path, lambda folder, name: fs.held_for_writing(folder, name) is True) is True

    def stat_in_inbox(self, path: Path) -> os.stat_result | None:
        """``lstat`` of a file in the inbox, reached without following links; None when it is
        gone or a folder on its way is a link (that link is an entry of its own, failed as
        ``unsafe_path`` when the scan finds it)."""
        result = self._at(path, fs.lstat_at)
        return result if isinstance(result, os.stat_result) else None

    def _at(self, path: Path, call: Callable[[int, str], Any]) -> Any:
        try:
            rel = path.relative_to(self.inbox)
            folder = fs.open_beneath(self.roots.inbox, rel.parent.parts)
        except (OSError, ValueError):
            return None
        try:
            return call(folder, rel.name)
        except OSError:
            return None
        finally:
            os.close(folder)
