"""The watched folder: files in, ingest requests out, files moved by their outcome.

A file's life:  inbox/x.txt --(stable)--> claimed: renamed atomically into
``inbox/.seedworker-processing/<watcher>/<claim>/x.txt`` (two watchers cannot both win a
rename) --> read, sent as ``seedworker.ingest`` with the content in the message --> the
worker's reply --> archived (or deleted), or moved to the failed folder with
``x.txt.error.json`` beside it.

Delivery is at-least-once: claims survive a watcher crash on disk and are re-sent with the
same idempotency key on restart (the store turns the repeat into a no-op), and a claim with
no reply for ``WATCH_RESEND_SECONDS`` (10 min) is re-sent too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import hmac
import json
import os
import shutil
import stat
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from pydantic import ValidationError
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
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from worker import datamode
from worker.errors import InputError, InvalidRequest, Superseded, TooLarge, UnreadableFile, UnsafePath
from worker.inbox import fs
from worker.inbox.ignore import IgnoreRules
from worker.inbox.pacing import ScanPacer, StormGuard, off_overflow, on_overflow
from worker.logs import Throttle, get_logger
from worker.models import FileSummary, IngestRequest, Reply, split_record_key
from worker.names import BATCH_TASK, CLAIM_SECRET_FILE, FAILURE_TASK, INGEST_TASK, reply_key
from worker.outage import Outage
from worker.settings import Settings

log = get_logger("seedworker.watcher")

#: A batch message carries at most this much file content (larger files go alone).
BATCH_MAX_BYTES = 1024 * 1024
REPORT_SUFFIX = ".error.json"
REPORT_MAX_BYTES = 16 * 1024 * 1024
NAME_MAX = fs.NAME_MAX
#: After the broker was unreachable, every claim still waiting for its reply is sent again
#: this soon (same key, so a repeat is a no-op): a message or a reply written just before
#: Redis died may be gone (AOF ``everysec``), and nothing else would send it for
#: ``WATCH_RESEND_SECONDS`` (10 min).
RESEND_AFTER_OUTAGE_SECONDS = 15.0


#: watchdog holds an unmatched IN_MOVED_FROM this long, waiting for its IN_MOVED_TO, in a
#: first-in first-out queue: every later event waits behind it.  Each claim (a rename into a
#: fresh processing sub-folder not watched yet) and each finished file (moved out of the
#: tree) leaves one, so with watchdog's 0.5 s a file dropped after another waited up to half a
#: second before it was even seen (docs/benchmarks.md: p50 latency 636 ms -> 174 ms).  The
#: kernel queues both halves of a rename together, so a short wait still pairs real moves.
MOVE_PAIRING_SECONDS = 0.02

#: The events the watcher acts on.  watchdog's default mask adds IN_OPEN and IN_CLOSE_NOWRITE,
#: two events for every folder any process lists (each scan of the inbox, and watchdog's own
#: walk when it rebuilds its watches after an overflow): with 5,000 sub-folders a scan alone
#: queued 10,000 events, and the rebuild overflowed the queue again (issue 19 §8).
EVENT_FILTER = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, DirCreatedEvent, DirMovedEvent]


def _shorten_move_pairing() -> None:
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # no inotify here, or another watchdog layout: nothing to shorten
        return
    InotifyMoveEventGrouper.delay = MOVE_PAIRING_SECONDS


def is_ignored(name: str) -> bool:
    """A name the default ``SEEDWORKER_IGNORE`` never takes (hidden, temporary, system clutter)."""
    rules = IgnoreRules()
    return rules.file(name) or rules.folder(name)


def display_name(name: str) -> str:
    """A file or folder name as it may travel in messages, logs, events and the database.

    Names are bytes on Linux: bytes that are not UTF-8 (surrogate escapes after ``fsdecode``)
    become U+FFFD and a backslash becomes U+FF3C, so a hostile name can neither break JSON,
    PostgreSQL or a log line nor be refused by the request model.  The file on disk keeps
    its real name.  Control characters (a newline, an escape sequence) become their visible
    Control Pictures (U+2400 block), which the request model accepts where it refuses controls.
    """
    shown = os.fsencode(name).decode("utf-8", "replace").replace("\\", "\uff3c").translate(_CONTROL_PICTURES)
    return shown[:255] or "unnamed"


#: C0 controls to U+2400..U+241F, DEL to U+2421, C1 controls to U+FFFD.
_CONTROL_PICTURES = {
    **{code: 0x2400 + code for code in range(0x20)},
    0x7F: 0x2421,
    **{code: 0xFFFD for code in range(0x80, 0xA0)},
}


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


@dataclass
class Claim:
    claim_id: str
    path: Path  # where the claimed file sits now
    rel: Path  # its path relative to the inbox (folder tags, archive layout)
    sent_at: float = 0.0
    summary: FileSummary | None = None
    read_as: tuple[int, int] | None = None  # (size, mtime_ns) when the sent bytes were read
    supersedes: dict[str, Any] | None = None  # the partial outcome this claim's content replaces
    settling: Candidate | None = None  # superseded: waiting for the file to be quiet to re-send
    token: str = ""  # HMAC of the claim id under the watcher's secret (see claim_token)

    @property
    def key(self) -> str:
        """The idempotency key: ``claim:<claim id>.<token>``.  The claim id is visible in the
        processing folder; the token is not, so no producer can send this key (docs/delivery.md)."""
        return f"claim:{self.claim_id}.{self.token}" if self.token else f"claim:{self.claim_id}"

    @property
    def base(self) -> Path:
        """The claim's own folder: ``path`` without its inbox path ``rel``."""
        return Path(*self.path.parts[: len(self.path.parts) - len(self.rel.parts)])

    @property
    def name(self) -> str:
        """The file name as messages, events and logs show it (see ``display_name``)."""
        return display_name(self.rel.name)

    @property
    def shown(self) -> str:
        """The path relative to the inbox, as messages, events and logs show it."""
        return "/".join(display_name(part) for part in self.rel.parts)

    @property
    def folders(self) -> list[str]:
        """Folder names that may become tags: shown names, 1 to 100 characters, at most 20."""
        names = (" ".join(display_name(p).split())[:100] for p in self.rel.parent.parts)
        return [name for name in names if name][:20]


class _Events(FileSystemEventHandler):  # type: ignore[misc]
    def __init__(self, watcher: InboxWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and not isinstance(event, DirMovedEvent):
            return
        if isinstance(event, DirMovedEvent):
            self.watcher.request_rescan()
            return
        path = event.dest_path if isinstance(event, FileMovedEvent) else event.src_path
        closed = isinstance(event, (FileClosedEvent, FileMovedEvent))
        if event.event_type in ("created", "modified", "closed", "moved"):
            self.watcher.note(Path(os.fsdecode(path)), closed=closed)


@dataclass
class InboxWatcher:
    settings: Settings
    app: Celery
    redis: redis.Redis
    watcher_id: str
    rescan_every: float = 5.0
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.inbox = self.settings.inbox.resolve()
        self.own_dir = self.settings.processing_dir.resolve() / self.watcher_id
        self.reply_key = reply_key(self.watcher_id)
        self._secret = claim_secret(self.settings.data_dir)
        self._lock = threading.Lock()
        self._candidates: dict[Path, Candidate] = {}
        self._claims: dict[str, Claim] = {}
        self._rescan = threading.Event()
        self.observer: BaseObserver | None = None
        self.mode = ""
        self.rules = IgnoreRules.of(self.settings.ignore)
        self.scanning_only = False  # inotify given up for a while (a storm of overflows)
        self._roots: dict[str, int] = {}  # handles on the inbox, own_dir, archive and failed
        self._throttle = Throttle(every=60.0)
        self.pacer = ScanPacer(min_interval=min(self.settings.poll_interval, 1.0))
        self.storm = StormGuard()
        self.broker = Outage("broker", log)

    # -- events from watchdog (observer thread) -------------------------------------------
    def note(self, path: Path, *, closed: bool) -> None:
        if not self._watchable(path):
            return
        st = self._stat_in_inbox(path)
        if st is None:
            with self._lock:
                self._candidates.pop(path, None)
            return
        now = time.monotonic()
        with self._lock:
            cand = self._candidates.get(path)
            if cand is None or not cand.same(st):
                self._candidates[path] = Candidate.of(st, now, closed)
            elif closed:
                cand.closed = True

    def request_rescan(self) -> None:
        self._rescan.set()

    def _watchable(self, path: Path) -> bool:
        try:
            rel = path.relative_to(self.inbox)
        except ValueError:
            return False
        return bool(rel.parts) and not self.rules.path(rel.parts)

    # -- the file system, through handles that never follow a link (worker/inbox/fs.py) --------
    def _root(self, name: str) -> int:
        """A handle on one of the watcher's roots, opened on first use and kept."""
        fd = self._roots.get(name)
        if fd is not None:
            return fd
        if name == "inbox":
            fd = fs.open_root(self.inbox)
        elif name == "own":
            # Below the inbox, where its writers could plant a link: reached without links, and
            # private (0700, also when an older version left it open), as claim ids are keys.
            fd = self._root("inbox")
            for part in self.own_dir.relative_to(self.inbox).parts:
                parent, fd = fd, fs.makedirs_beneath(fd, [part], 0o700)
                with contextlib.suppress(OSError):
                    os.fchmod(fd, 0o700)
                if parent != self._roots["inbox"]:
                    os.close(parent)
        else:
            folder = Path(str(self.settings.archive_dir if name == "archive" else self.settings.failed_dir))
            if not folder.is_dir():
                datamode.private_dir(folder, self.settings)
            fd = fs.open_root(folder)
        self._roots[name] = fd
        return fd

    def _close_roots(self) -> None:
        for fd in self._roots.values():
            os.close(fd)
        self._roots.clear()

    def _held_for_writing(self, path: Path) -> bool:
        """True only when the kernel says a process has the file open for writing (see
        ``fs.held_for_writing``); when it cannot say, STABLE_SECONDS alone decides."""
        try:
            rel = path.relative_to(self.inbox)
            folder = fs.open_beneath(self._root("inbox"), rel.parent.parts)
        except (OSError, ValueError):
            return False
        try:
            return fs.held_for_writing(folder, rel.name) is True
        finally:
            os.close(folder)

    def _stat_in_inbox(self, path: Path) -> os.stat_result | None:
        """``lstat`` of a file in the inbox, reached without following links; None when it is
        gone or a folder on its way is a link (that link is an entry of its own, failed as
        ``unsafe_path`` when the scan finds it)."""
        try:
            rel = path.relative_to(self.inbox)
            folder = fs.open_beneath(self._root("inbox"), rel.parent.parts)
        except (OSError, ValueError):
            return None
        try:
            return fs.lstat_at(folder, rel.name)
        except OSError:
            return None
        finally:
            os.close(folder)

    # -- the loop ---------------------------------------------------------------------------
    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)  # the users' folder: its mode is theirs
        for directory in (self.settings.archive_dir, self.settings.failed_dir):
            datamode.private_dir(Path(str(directory)), self.settings)
        for root in ("inbox", "own", "archive", "failed"):
            self._root(root)
        self._start_observer()
        self._recover_claims()
        self.pacer.measure(self._scan)
        log.info("watching", inbox=str(self.inbox), mode=self.mode, watcher_id=self.watcher_id)

    def _start_observer(self) -> None:
        observer = self._make_observer()
        observer.schedule(_Events(self), str(self.inbox), recursive=True, event_filter=EVENT_FILTER)
        off_overflow(os.fsencode(str(self.inbox)), self.storm.overflowed)  # once, after a storm too
        on_overflow(os.fsencode(str(self.inbox)), self.storm.overflowed)
        observer.start()
        self.observer = observer
        self.scanning_only = False

    def _weather(self, now: float) -> None:
        """Leave inotify while its queue keeps overflowing; come back when it has been calm."""
        if self.mode == "inotify" and not self.scanning_only and self.storm.storming(now):
            self.storm.entered(now)
            if self.observer is not None:
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
            self._start_observer()
            log.info("inotify again after a storm", storms=self.storm.storms)

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
                _shorten_move_pairing()
                observer = Observer()
                observer.schedule(FileSystemEventHandler(), str(self.inbox), recursive=False)
                observer.unschedule_all()
                self.mode = "inotify" if type(observer).__name__.startswith("Inotify") else type(observer).__name__
                if self.mode == "inotify" or self.settings.watch_mode == "auto":
                    return observer
            except OSError as exc:
                if self.settings.watch_mode == "inotify":
                    raise
                log.warning("inotify unavailable, polling instead", error=str(exc))
        self.mode = "polling"
        return PollingObserver(timeout=self.settings.poll_interval)

    def run(self) -> None:
        self.start()
        last_scan = time.monotonic()
        try:
            while not self.stop_event.is_set():
                self.tick()
                now = time.monotonic()
                self._weather(now)
                # Scans are paced by their own cost (worker/inbox/pacing.py): a rename storm
                # asking for a rescan every tick, or an inbox of 5,000 folders scanned while
                # inotify is off, costs at most a tenth of a core.
                wanted = self._rescan.is_set() or self.scanning_only or now - last_scan > self.rescan_every
                if wanted and self.pacer.due(now):
                    self._rescan.clear()
                    self.pacer.measure(self._scan)
                    last_scan = time.monotonic()
                self.stop_event.wait(self._next_wait())
        finally:
            self.stop()

    def _next_wait(self, tick: float = 0.05) -> float:
        """Seconds until the next tick: ``tick``, or less when a file's quiet time ends sooner, so
        a file is taken when it is ready rather than at the next 50 ms tick (latency)."""
        if self._room() == 0:
            return tick  # files wait for replies, not for their quiet time
        now = time.monotonic()
        with self._lock:
            due = [
                cand.changed_at + (self.settings.settle_seconds if cand.closed else self.settings.stable_seconds)
                for cand in self._candidates.values()
            ]
        if not due:
            return tick
        return min(tick, max(0.001, min(due) - now))

    def stop(self) -> None:
        self.stop_event.set()
        off_overflow(os.fsencode(str(self.inbox)), self.storm.overflowed)
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.observer = None
        self._close_roots()
        log.info("watcher stopped", in_flight=len(self._claims))

    def tick(self) -> None:
        if not self._collect_replies():
            return  # the broker is down: claim and send nothing until it answers again
        self._take_ready_files()
        self._send_settled()
        self._resend_stale()

    # -- finding files ----------------------------------------------------------------------
    def _scan(self) -> None:
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
                    known = path in self._candidates
                if not known:
                    self.note(path, closed=False)

    def _take_ready_files(self) -> None:
        # Back-pressure: at most WATCH_MAX_IN_FLIGHT files claimed without a reply. The rest stay
        # where they are, in the inbox and among the candidates, and are taken (oldest first) as
        # replies free room; a flood of files never becomes a flood of messages in Redis.
        room = self._room()
        if room == 0:
            return
        now = time.monotonic()
        ready: list[tuple[Path, Candidate]] = []
        with self._lock:
            items = sorted(self._candidates.items(), key=lambda item: item[1].changed_at)
        for path, cand in items:
            if len(ready) == room:
                break  # the others are looked at (and their changes seen) when there is room
            wait = self.settings.settle_seconds if cand.closed else self.settings.stable_seconds
            if now - cand.changed_at < wait:
                continue
            st = self._stat_in_inbox(path)
            if st is None:
                with self._lock:
                    self._candidates.pop(path, None)
                continue
            if not cand.same(st):
                with self._lock:
                    self._candidates[path] = Candidate.of(st, now, cand.closed)
                continue
            if stat.S_ISREG(st.st_mode) and self._held_for_writing(path):
                cand.changed_at = now  # a writer still has it open, however long it pauses
                continue
            ready.append((path, cand))
        # Claimed and sent a batch at a time: the first files of a burst go out while the
        # rest still wait in the inbox, and several small files travel in one message.
        size = self.settings.watch_batch  # in chain mode the batch task hands each request on (tasks/batch.py)
        for start in range(0, len(ready), size):
            claims = []
            for path, cand in ready[start : start + size]:
                with self._lock:
                    self._candidates.pop(path, None)
                claim = self._claim(path, cand)
                if claim is not None:
                    claims.append(claim)
            self._send_many(claims)

    # -- claiming and sending -----------------------------------------------------------------
    def _claim_and_send(self, path: Path) -> None:
        claim = self._claim(path, None)
        if claim is not None:
            self._send(claim)

    def _claim(self, path: Path, noted: Candidate | None = None) -> Claim | None:
        """Move the file into this watcher's processing folder, by one atomic rename.

        Both ends are reached through folder handles that never follow a link (a user who
        may write into an inbox folder can swap that folder for a link to anywhere between
        the moment a file is noted and this one: issue 19 §1), and the file must still be
        the one that was noted, same device and inode, or it is not taken.
        """
        claim_id = uuid.uuid4().hex
        rel = path.relative_to(self.inbox)
        shown = "/".join(display_name(part) for part in rel.parts)
        try:
            src = fs.open_beneath(self._root("inbox"), rel.parent.parts)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                log.warning("not claimed: a folder on its path is not a folder any more", file=shown)
            return None
        try:
            st = fs.lstat_at(src, rel.name)
            if noted is not None and (st.st_dev, st.st_ino) != (noted.dev, noted.ino):
                log.warning("not claimed: another file took its place since it was noted", file=shown)
                return None  # the newcomer is noted afresh by the next event or scan
            dst = fs.makedirs_beneath(self._root("own"), [claim_id, *rel.parent.parts])
            try:
                os.rename(rel.name, rel.name, src_dir_fd=src, dst_dir_fd=dst)
            finally:
                os.close(dst)
        except FileNotFoundError:
            shutil.rmtree(self.own_dir / claim_id, ignore_errors=True)  # someone else won
            return None
        except OSError as exc:
            shutil.rmtree(self.own_dir / claim_id, ignore_errors=True)
            log.warning("could not claim file", file=shown, error=str(exc))
            return None
        finally:
            os.close(src)
        claim = Claim(
            claim_id=claim_id, path=self.own_dir / claim_id / rel, rel=rel, token=claim_token(self._secret, claim_id)
        )
        with self._lock:
            self._claims[claim.key] = claim
        return claim

    def _send_many(self, claims: list[Claim]) -> None:
        """Small files ready together travel in one ``seedworker.ingest_batch`` message (each
        with its own key and reply); a file that cannot be read fails alone, as in ``_send``."""
        if len(claims) <= 1:
            for claim in claims:
                self._send(claim)
            return
        batch: list[tuple[Claim, IngestRequest]] = []
        size = 0
        for claim in claims:
            try:
                data = self._read(claim)
                request = self._request(claim, data)
            except InputError as exc:
                self._send_failure(claim, exc)
                continue
            claim.summary = FileSummary.of(claim.name, data)
            if len(data) > BATCH_MAX_BYTES // 4:
                self._enqueue(
                    claim,
                    INGEST_TASK,
                    kwargs={"request": request.model_dump(mode="json", exclude_none=True)},
                    argsrepr=str(claim.summary),
                )
                continue
            if size + len(data) > BATCH_MAX_BYTES:
                self._enqueue_batch(batch)
                batch, size = [], 0
            batch.append((claim, request))
            size += len(data)
        self._enqueue_batch(batch)

    def _enqueue_batch(self, batch: list[tuple[Claim, IngestRequest]]) -> None:
        if len(batch) <= 1:
            for claim, request in batch:
                kwargs = {"request": request.model_dump(mode="json", exclude_none=True)}
                self._enqueue(claim, INGEST_TASK, kwargs=kwargs, argsrepr=str(claim.summary))
            return
        claims = [claim for claim, _ in batch]
        try:
            self.app.send_task(
                BATCH_TASK,
                kwargs={"requests": [r.model_dump(mode="json", exclude_none=True) for _, r in batch]},
                task_id=f"batch-{claims[0].claim_id}-{int(time.time() * 1000)}",
                argsrepr=batch_argsrepr(claims),
                kwargsrepr="",
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )
            now = time.monotonic()
            for claim in claims:
                claim.sent_at = now
            log.info("sent", files=len(batch), first=claims[0].shown, last=claims[-1].shown, task=BATCH_TASK)
        except Exception as exc:  # broker down: the claims stay on disk and are re-sent later
            for claim in claims:
                claim.sent_at = time.monotonic() - self.settings.watch_resend_seconds + 2.0
            self.broker.failed(str(exc), files=len(batch), will="resend")

    def _send(self, claim: Claim) -> None:
        if claim.supersedes is not None:
            self._mark_superseded(claim)  # with every (re-)send: idempotent by its key
        try:
            data = self._read(claim)
            request = self._request(claim, data)
        except InputError as exc:
            self._send_failure(claim, exc)
            return
        claim.summary = FileSummary.of(claim.name, data)
        self._enqueue(
            claim,
            INGEST_TASK,
            kwargs={"request": request.model_dump(mode="json", exclude_none=True)},
            argsrepr=str(claim.summary),
        )

    def _request(self, claim: Claim, data: bytes) -> IngestRequest:
        try:
            return IngestRequest.from_bytes(
                data,
                filename=claim.name,
                source="inbox",
                metadata={"path": claim.shown, **({"supersedes": claim.supersedes} if claim.supersedes else {})},
                folder_tags=claim.folders,
                idempotency_key=claim.key,
                reply_to=self.reply_key,
            )
        except ValidationError as exc:  # a name or folder the request model refuses
            raise InvalidRequest(f"'{claim.shown}' cannot be sent: {exc.errors()[0]['msg']}") from None

    def _read(self, claim: Claim) -> bytes:
        """Read the claimed file: never through a link, never a FIFO, never more than the limit.

        The claim's folders are walked one handle at a time with ``O_NOFOLLOW``; then
        ``lstat`` decides before anything is opened: a link is never followed (not even to
        learn what it points at beyond its target's name), a FIFO, socket, device or
        directory is never opened, a file with other hard links (perhaps to a file outside
        the inbox) is refused, and an oversized file is never read.  The open itself is
        ``O_NOFOLLOW | O_NONBLOCK`` and is checked again with ``fstat``, so a file swapped
        for a link or a FIFO after the ``lstat`` is refused too.
        """
        shown = claim.shown
        try:
            base = self._claim_folder(claim)
            try:
                folder = fs.open_beneath(base, claim.rel.parent.parts)
            finally:
                os.close(base)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(
                    f"a folder on the way to '{shown}' is a link; seedworker never follows links"
                ) from None
            raise UnreadableFile(f"'{shown}' vanished before it could be read: {exc.strerror}") from None
        try:
            data, st = self._read_at(folder, claim.rel.name, shown)
        finally:
            os.close(folder)
        claim.read_as = (st.st_size, st.st_mtime_ns)
        return data

    def _claim_folder(self, claim: Claim) -> int:
        """A handle on the claim's own folder (``own_dir/<claim id>``)."""
        base = claim.base
        if base.parent == self.own_dir:
            return fs.open_beneath(self._root("own"), [base.name])
        return os.open(base, fs.DIR_FLAGS)  # a claim made by hand (tests): its folder as given

    def _read_at(self, folder: int, name: str, shown: str) -> tuple[bytes, os.stat_result]:
        """The bytes of a regular file, and its ``fstat`` from before they were read."""
        try:
            st = fs.lstat_at(folder, name)
        except OSError as exc:
            raise UnreadableFile(f"'{shown}' vanished before it could be read: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            target = display_name(os.readlink(name, dir_fd=folder))
            raise UnsafePath(f"'{shown}' is a symbolic link (to {target!r}); seedworker never follows links")
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"'{shown}' is not a regular file ({_kind(st.st_mode)})")
        self._check_links(st, shown)
        limit = self.settings.max_file_bytes
        if st.st_size > limit:
            raise TooLarge(
                f"'{shown}' is {st.st_size} bytes, over the limit of {limit} bytes", size=st.st_size, limit=limit
            )
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"'{shown}' became a symbolic link") from None
            raise UnreadableFile(f"cannot open '{shown}': {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            opened = os.fstat(fh.fileno())
            if not stat.S_ISREG(opened.st_mode) or not fs.same_file(opened, st):
                raise UnreadableFile(f"'{shown}' stopped being the same regular file before it was read")
            self._check_links(opened, shown)
            try:
                data = fh.read(limit + 1)
            except OSError as exc:
                raise UnreadableFile(f"cannot read '{shown}': {exc.strerror}") from None
        if len(data) > limit:
            raise TooLarge(f"'{shown}' grew over the limit of {limit} bytes while being read", limit=limit)
        return data, opened

    def _check_links(self, st: os.stat_result, shown: str) -> None:
        """A second hard link may be a file outside the inbox (issue 19 §1): its text would be
        stored and the archived copy would stay linked to it."""
        if st.st_nlink > 1 and not self.settings.allow_hardlinks:
            raise UnsafePath(
                f"'{shown}' has {st.st_nlink} hard links; seedworker takes only files with one"
                " (SEEDWORKER_ALLOW_HARDLINKS=true to take them)"
            )

    def _send_failure(self, claim: Claim, exc: InputError) -> None:
        claim.summary = FileSummary.of(claim.name, b"")
        self._enqueue(
            claim,
            FAILURE_TASK,
            kwargs={
                "key": claim.key,
                "summary": claim.summary.model_dump(),
                "source": "inbox",
                "reason": exc.reason,
                "message": exc.message,
                "reply_to": self.reply_key,
            },
            argsrepr=f"{claim.name}: {exc.reason}",
        )

    def _enqueue(self, claim: Claim, task: str, *, kwargs: dict[str, Any], argsrepr: str) -> None:
        try:
            self.app.send_task(
                task,
                kwargs=kwargs,
                task_id=f"{claim.claim_id}-{int(time.time() * 1000)}",
                argsrepr=argsrepr,
                kwargsrepr="",
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )
            claim.sent_at = time.monotonic()
            log.info("sent", file=claim.shown, key=claim.key, task=task)
        except Exception as exc:  # broker down: the claim stays on disk and is re-sent later
            claim.sent_at = time.monotonic() - self.settings.watch_resend_seconds + 2.0
            self.broker.failed(str(exc), file=claim.shown, will="resend")

    def _recover_claims(self) -> None:
        """Claims left by an earlier run of this watcher: re-send them with the same key."""
        if not self.own_dir.exists():
            return
        for claim_dir in sorted(self.own_dir.iterdir()):
            path = _claimed_entry(claim_dir)
            if path is None:
                shutil.rmtree(claim_dir, ignore_errors=True)
                continue
            token = claim_token(self._secret, claim_dir.name)
            claim = Claim(claim_id=claim_dir.name, path=path, rel=path.relative_to(claim_dir), token=token)
            with self._lock:
                self._claims[claim.key] = claim
            log.info("recovering claim", file=claim.shown, key=claim.key)
            self._send(claim)

    def _resend_stale(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [
                c
                for c in self._claims.values()
                if c.settling is None and now - c.sent_at > self.settings.watch_resend_seconds
            ]
        for claim in stale:
            if (held := self._throttle("resend")) is not None:  # every claim, every 2 s, while the broker is down
                log.warning("no reply yet, resending", file=claim.shown, key=claim.key, repeated=held)
            self._send(claim)

    # -- outcomes -------------------------------------------------------------------------------
    def _collect_replies(self) -> bool:
        """Finish the claims whose replies came; False while the broker does not answer."""
        try:
            replies = self.redis.rpop(self.reply_key, 200)
        except (redis.RedisError, OSError) as exc:
            self.broker.failed(str(exc), reading="replies")
            return False
        if self.broker.ok():
            self._resend_soon()
        for raw in replies or []:
            try:
                reply = Reply.model_validate_json(raw)
            except ValidationError:
                log.error("ignoring a reply that is not a seedworker reply", reply=repr(raw[:200]))
                continue
            self._finish(reply)
        return True

    def _resend_soon(self) -> None:
        """After an outage: every claim without a reply is sent again in a few seconds."""
        due = time.monotonic() - self.settings.watch_resend_seconds + RESEND_AFTER_OUTAGE_SECONDS
        with self._lock:
            for claim in self._claims.values():
                claim.sent_at = min(claim.sent_at, due)
            waiting = len(self._claims)
        if waiting:
            log.info("resending after the outage", files=waiting, in_seconds=RESEND_AFTER_OUTAGE_SECONDS)

    def _finish(self, reply: Reply | dict[str, Any]) -> None:
        if not isinstance(reply, Reply):
            reply = Reply.model_validate(reply)
        for key, outcomes in reply.by_request().items():
            with self._lock:
                claim = self._claims.pop(key, None)
            if claim is None:
                continue  # a repeat reply for a claim already finished, or not a key of ours
            mine = [o.model_dump(mode="json") for o in outcomes]
            failures = [o for o in mine if o["status"] == "failed"]
            if not failures and self._changed_since_sent(claim):
                self._supersede(claim, mine)
                continue
            try:
                if failures:
                    # Wholly failed, or a JSON Lines file with some bad lines (its good lines
                    # are stored): the original is kept in failed/ for the user to fix.
                    self._move_failed(claim, mine, failures)
                elif self.settings.after_success == "delete":
                    self._delete(claim)
                else:
                    self._move(claim, "archive")
            except (OSError, ValueError) as exc:
                # Never drop the original: the claim stays on disk and in flight, and the
                # re-send (same key, replayed outcome) tries the move again later.
                log.error("could not move finished file, will retry", file=claim.shown, error=str(exc))
                claim.sent_at = time.monotonic()
                with self._lock:
                    self._claims.setdefault(key, claim)
                continue
            self._remove_claim_dir(claim)
            status = "done" if not failures else "failed" if len(failures) == len(mine) else "partly failed"
            log.info("finished", file=claim.shown, key=key, status=status)

    # -- a file that changed after it was sent (issue 19 §5) ------------------------------------
    def _changed_since_sent(self, claim: Claim) -> bool:
        """Whether the claimed file now holds other bytes than the ones that were sent (a writer
        that kept its handle open after the watcher took the file). Size and mtime first; the
        file is hashed again only when they differ."""
        if claim.summary is None or claim.read_as is None:
            return False
        try:
            with self._claimed_in(claim) as folder:
                st = fs.lstat_at(folder, claim.rel.name)
                if (st.st_size, st.st_mtime_ns) == claim.read_as:
                    return False
                data, _ = self._read_at(folder, claim.rel.name, claim.shown)
        except InputError:
            return True  # grown over the limit, or no longer a plain file: send it again to say so
        except OSError:
            return False
        return hashlib.sha256(data).hexdigest() != claim.summary.sha256

    def _supersede(self, claim: Claim, outcomes: list[dict[str, Any]]) -> None:
        """The stored document holds only what the file held when it was read.  The file is
        not archived: its claim becomes a new version (``<claim id>.2``, a folder rename, so
        the key survives a restart), which is sent again once the file has been quiet for a
        while, with ``metadata.supersedes`` naming the partial outcome; a ``document.failed``
        event with reason ``superseded`` marks the partial document on the stream."""
        base, _, version = claim.claim_id.partition(".")
        number = int(version) + 1 if version.isdigit() else 2
        new_id = f"{base}.{number}"
        try:
            own = self._root("own")
            os.rename(claim.claim_id, new_id, src_dir_fd=own, dst_dir_fd=own)
            with self._claimed_in(
                Claim(
                    claim_id=new_id,
                    path=self.own_dir / new_id / claim.rel,
                    rel=claim.rel,
                    token=claim_token(self._secret, new_id),
                )
            ) as f:
                st = fs.lstat_at(f, claim.rel.name)
        except OSError as exc:
            log.error("could not re-claim a file that changed after it was sent", file=claim.shown, error=str(exc))
            claim.sent_at = time.monotonic()
            with self._lock:
                self._claims.setdefault(claim.key, claim)
            return
        first = outcomes[0]
        partial = {
            "key": claim.key,
            "document_id": first.get("document_id") or first.get("duplicate_of"),
            "status": first.get("status"),
            "size": claim.summary.size if claim.summary else None,
            "sha256": claim.summary.sha256 if claim.summary else None,
        }
        new = Claim(
            claim_id=new_id,
            path=self.own_dir / new_id / claim.rel,
            rel=claim.rel,
            supersedes=partial,
            token=claim_token(self._secret, new_id),
        )
        # Each new version waits longer for quiet (STABLE_SECONDS x 2, x 4 … up to a minute):
        # a writer that pauses longer than STABLE_SECONDS is caught up with in a few rounds.
        new.settling = Candidate.of(st, time.monotonic(), closed=False)
        new.settling.changed_at += min(60.0, self.settings.stable_seconds * (2 ** (number - 1) - 1))
        new.sent_at = time.monotonic()
        with self._lock:
            self._claims[new.key] = new
        log.warning(
            "file changed after it was sent: its final content will be ingested again",
            file=claim.shown,
            partial=partial["document_id"],
            sent_bytes=partial["size"],
            now_bytes=st.st_size,
            key=new.key,
        )

    def _send_settled(self) -> None:
        now = time.monotonic()
        with self._lock:
            waiting = [c for c in self._claims.values() if c.settling is not None]
        for claim in waiting:
            assert claim.settling is not None
            try:
                with self._claimed_in(claim) as folder:
                    st = fs.lstat_at(folder, claim.rel.name)
            except OSError:
                st = None
            if st is not None and not claim.settling.same(st):
                claim.settling = Candidate.of(st, now, closed=False)
                continue
            if st is None or now >= claim.settling.changed_at + self.settings.stable_seconds:
                claim.settling = None
                self._send(claim)

    def _mark_superseded(self, claim: Claim) -> None:
        partial = claim.supersedes or {}
        exc = Superseded(
            f"'{claim.shown}' changed after it was read: {partial.get('status')} {partial.get('document_id')}"
            f" holds its first {partial.get('size')} bytes only; the final content is sent again as {claim.key}"
        )
        summary = FileSummary(filename=claim.name, size=partial.get("size") or 0, sha256=partial.get("sha256") or "")
        self._enqueue(
            claim,
            FAILURE_TASK,
            kwargs={
                "key": f"{partial.get('key')}:superseded",
                "summary": summary.model_dump(),
                "source": "inbox",
                "reason": exc.reason,
                "message": exc.message,
            },
            argsrepr=f"{claim.name}: {exc.reason}",
        )

    def _remove_claim_dir(self, claim: Claim) -> None:
        """The claim's folder, empty once its file has moved on: one rmdir per level of the
        file's inbox path (shutil.rmtree opens and lists each folder first: a fifth of the
        watcher's main-thread CPU in a burst); rmtree only if something is left inside."""
        folder = claim.path.parent  # own_dir / claim_id / the file's inbox folders
        try:
            for _ in claim.rel.parts:  # the inbox folders, innermost first, then the claim's own
                os.rmdir(folder)
                folder = folder.parent
        except OSError:
            shutil.rmtree(self.own_dir / claim.claim_id, ignore_errors=True)

    @contextlib.contextmanager
    def _claimed_in(self, claim: Claim) -> Iterator[int]:
        """A handle on the folder that holds the claimed file, inside the claim's folder."""
        base = self._claim_folder(claim)
        try:
            folder = fs.open_beneath(base, claim.rel.parent.parts)
        finally:
            os.close(base)
        try:
            yield folder
        finally:
            os.close(folder)

    @contextlib.contextmanager
    def _folder_in(self, root: str, claim: Claim) -> Iterator[int]:
        """A handle on the claim's inbox folders below ``root`` (archive, failed), created."""
        folder = fs.makedirs_beneath(self._root(root), claim.rel.parent.parts)
        try:
            yield folder
        finally:
            os.close(folder)

    def _delete(self, claim: Claim) -> None:
        """AFTER_SUCCESS=delete: the claimed entry only, unlinked in its claim folder, which
        is reached without links: nothing outside the processing folder can be deleted."""
        with self._claimed_in(claim) as folder, contextlib.suppress(FileNotFoundError):
            os.unlink(claim.rel.name, dir_fd=folder)

    def _move(self, claim: Claim, root: str) -> str:
        """Into the archive, under its inbox path; a taken name gets the claim's suffix."""
        with self._claimed_in(claim) as src, self._folder_in(root, claim) as dst:
            name = fs.free_name(dst, claim.rel.name, claim.claim_id[:8])
            fs.move_at(src, claim.rel.name, dst, name)
        return name

    def _move_failed(self, claim: Claim, outcomes: list[dict[str, Any]], failures: list[dict[str, Any]]) -> None:
        """The original into failed/, with ``<name>.error.json`` saying what went wrong.

        For a JSON Lines file ``failed_lines`` names every bad line (``records`` has each
        one's reason and message) and ``stored_records`` counts the lines that were stored.
        """
        # The report is written (atomically) before the file is moved: a watcher killed in
        # between leaves the file in its claim folder, is re-sent on restart, and the
        # replayed outcome writes the same report again and moves the file.  The other
        # order could leave a failed file without its report and nothing to re-send.
        first = failures[0]
        lines = sorted(line for o in failures if (line := _record_line(o["key"])) is not None)
        message = first.get("message")
        if lines and len(failures) < len(outcomes):
            message = f"{len(failures)} of {len(outcomes)} records failed (lines {_ranges(lines)}); first: {message}"
        elif lines and len(failures) > 1:
            message = f"all {len(failures)} records failed (lines {_ranges(lines)}); first: {message}"
        report = {
            "file": claim.shown,
            "reason": first.get("reason"),
            "message": message,
            "failure_id": first.get("document_id"),
            "key": claim.key,
            "failed_at": dt.datetime.now(dt.UTC).isoformat(),
            "failed_lines": lines,
            "stored_records": len(outcomes) - len(failures),
            "records": [
                {
                    "line": _record_line(o["key"]),
                    "reason": o.get("reason"),
                    "message": o.get("message"),
                    "failure_id": o.get("document_id"),
                }
                for o in failures
            ],
            "outcomes": outcomes,
        }
        data = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        with self._claimed_in(claim) as src, self._folder_in("failed", claim) as dst:
            # A report never replaces a file of the user's (issue 19 §10: failed/x.error.json,
            # a user's own file that failed, was overwritten by the report of x); it replaces
            # only this claim's own report from an attempt a kill interrupted.
            name = fs.free_name(
                dst,
                claim.rel.name,
                claim.claim_id[:8],
                companions=("", REPORT_SUFFIX),
                mine=lambda name: _report_key(dst, fs.fit(name, REPORT_SUFFIX)) == claim.key,
            )
            fs.write_file_at(dst, fs.fit(name, REPORT_SUFFIX), data)
            fs.move_at(src, claim.rel.name, dst, name)

    def _room(self) -> int:
        with self._lock:
            return max(0, self.settings.watch_max_in_flight - len(self._claims))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._claims)


def _report_key(folder: int, name: str) -> str | None:
    """The claim key in an ``.error.json`` report, if ``name`` is one of ours (small, JSON)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        try:
            report = json.loads(fh.read(REPORT_MAX_BYTES))
        except (OSError, ValueError):
            return None
    key = report.get("key") if isinstance(report, dict) else None
    return key if isinstance(key, str) else None


def batch_argsrepr(claims: list[Claim]) -> str:
    """What Flower shows (and searches) for a batch: every file by name, never a body; with
    sizes and hashes unless that grows past 8,000 characters."""
    full = ", ".join(str(c.summary) for c in claims)
    return f"{len(claims)} files: " + (full if len(full) <= 8000 else ", ".join(c.shown for c in claims))


def _record_line(key: str) -> int | None:
    """The JSON Lines line number in an outcome key (``claim:<id>.<token>#L<line>``)."""
    return split_record_key(key)[1]


def claim_secret(data_dir: Path) -> bytes:
    """The watcher's key for claim tokens: ``DATA_DIR/claim-key.secret``, made once (0600).

    It must outlive the watcher (a recovered claim is re-sent with the same key) and stay out of
    the inbox and of Redis, where producers can look."""
    path = Path(data_dir) / CLAIM_SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32).hex().encode())
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        secret = fh.read().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret; remove it and restart the watcher")
    return secret


def claim_token(secret: bytes, claim_id: str) -> str:
    return hmac.new(secret, claim_id.encode(), hashlib.sha256).hexdigest()[:32]


def _ranges(lines: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"; long lists are cut short."""
    parts: list[str] = []
    start = prev = lines[0]
    for line in [*lines[1:], None]:
        if line is not None and line == prev + 1:
            prev = line
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if line is not None:
            start = prev = line
    return ", ".join(parts[:20]) + (", ..." if len(parts) > 20 else "")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _claimed_entry(claim_dir: Path) -> Path | None:
    """The one entry (file, link, FIFO...) inside a claim folder, or None if it is empty.

    Links to directories count as entries: ``os.walk`` lists them among the folders.
    """
    for root, dirs, files in os.walk(claim_dir):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        if files or links:
            return Path(root) / sorted([*files, *links])[0]
    return None
