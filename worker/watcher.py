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

import datetime as dt
import errno
import json
import os
import shutil
import stat
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from pydantic import ValidationError
from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from worker.errors import InputError, InvalidRequest, TooLarge, UnreadableFile, UnsafePath
from worker.logs import get_logger
from worker.models import FileSummary, IngestRequest
from worker.outage import Outage
from worker.settings import Settings

log = get_logger("seedworker.watcher")

TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".swp", ".swx", "~")
INGEST_TASK = "seedworker.ingest"
BATCH_TASK = "seedworker.ingest_batch"
#: A batch message carries at most this much file content (larger files go alone).
BATCH_MAX_BYTES = 1024 * 1024
FAILURE_TASK = "seedworker.record_failure"
NAME_MAX = 255  # bytes in one path component on Linux filesystems
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


def _shorten_move_pairing() -> None:
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # no inotify here, or another watchdog layout: nothing to shorten
        return
    InotifyMoveEventGrouper.delay = MOVE_PAIRING_SECONDS


def is_ignored(name: str) -> bool:
    """Hidden and temporary files are never taken (editors and copy tools write these)."""
    return name.startswith((".", "~$")) or name.lower().endswith(TEMP_SUFFIXES)


def display_name(name: str) -> str:
    """A file or folder name as it may travel in messages, logs, events and the database.

    Names are bytes on Linux: bytes that are not UTF-8 (surrogate escapes after ``fsdecode``)
    become U+FFFD and a backslash becomes U+FF3C, so a hostile name can neither break JSON,
    PostgreSQL or a log line nor be refused by the request model.  The file on disk keeps
    its real name.
    """
    return os.fsencode(name).decode("utf-8", "replace").replace("\\", "\uff3c")[:255] or "unnamed"


def _fit(name: str, suffix: str = "") -> str:
    """``name + suffix``, with ``name`` cut short so that the whole is at most NAME_MAX bytes."""
    raw, room = os.fsencode(name), NAME_MAX - len(os.fsencode(suffix))
    return os.fsdecode(raw[:room]) + suffix


@dataclass
class Candidate:
    size: int
    mtime_ns: int
    changed_at: float
    closed: bool = False


@dataclass
class Claim:
    claim_id: str
    path: Path  # where the claimed file sits now
    rel: Path  # its path relative to the inbox (folder tags, archive layout)
    sent_at: float = 0.0
    summary: FileSummary | None = None

    @property
    def key(self) -> str:
        return f"claim:{self.claim_id}"

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
        self.reply_key = f"seedworker:replies:{self.watcher_id}"
        self._lock = threading.Lock()
        self._candidates: dict[Path, Candidate] = {}
        self._claims: dict[str, Claim] = {}
        self._rescan = threading.Event()
        self.observer: BaseObserver | None = None
        self.mode = ""
        self.broker = Outage("broker", log)

    # -- events from watchdog (observer thread) -------------------------------------------
    def note(self, path: Path, *, closed: bool) -> None:
        if not self._watchable(path):
            return
        try:
            st = path.lstat()
        except OSError:
            with self._lock:
                self._candidates.pop(path, None)
            return
        now = time.monotonic()
        with self._lock:
            cand = self._candidates.get(path)
            if cand is None or (cand.size, cand.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._candidates[path] = Candidate(st.st_size, st.st_mtime_ns, now, closed)
            elif closed:
                cand.closed = True

    def request_rescan(self) -> None:
        self._rescan.set()

    def _watchable(self, path: Path) -> bool:
        try:
            rel = path.relative_to(self.inbox)
        except ValueError:
            return False
        return bool(rel.parts) and not any(is_ignored(part) for part in rel.parts)

    # -- the loop ---------------------------------------------------------------------------
    def start(self) -> None:
        for directory in (self.inbox, self.own_dir, self.settings.archive_dir, self.settings.failed_dir):
            assert directory is not None
            Path(directory).mkdir(parents=True, exist_ok=True)
        self.observer = self._make_observer()
        self.observer.schedule(_Events(self), str(self.inbox), recursive=True)
        self.observer.start()
        self._recover_claims()
        self._scan()
        log.info("watching", inbox=str(self.inbox), mode=self.mode, watcher_id=self.watcher_id)

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
                if self._rescan.is_set() or time.monotonic() - last_scan > self.rescan_every:
                    self._rescan.clear()
                    self._scan()
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
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.observer = None
        log.info("watcher stopped", in_flight=len(self._claims))

    def tick(self) -> None:
        if not self._collect_replies():
            return  # the broker is down: claim and send nothing until it answers again
        self._take_ready_files()
        self._resend_stale()

    # -- finding files ----------------------------------------------------------------------
    def _scan(self) -> None:
        """Files present at start, and anything an event was missed for (rename storms, overflow)."""
        for root, dirs, files in os.walk(self.inbox):
            dirs[:] = [d for d in dirs if not is_ignored(d)]
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
        ready: list[Path] = []
        with self._lock:
            items = sorted(self._candidates.items(), key=lambda item: item[1].changed_at)
        for path, cand in items:
            if len(ready) == room:
                break  # the others are looked at (and their changes seen) when there is room
            wait = self.settings.settle_seconds if cand.closed else self.settings.stable_seconds
            if now - cand.changed_at < wait:
                continue
            try:
                st = path.lstat()
            except OSError:
                with self._lock:
                    self._candidates.pop(path, None)
                continue
            if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                with self._lock:
                    self._candidates[path] = Candidate(st.st_size, st.st_mtime_ns, now, cand.closed)
                continue
            ready.append(path)
        # Claimed and sent a batch at a time: the first files of a burst go out while the
        # rest still wait in the inbox, and several small files travel in one message.
        size = self.settings.watch_batch if self.settings.pipeline == "inline" else 1
        for start in range(0, len(ready), size):
            claims = []
            for path in ready[start : start + size]:
                with self._lock:
                    self._candidates.pop(path, None)
                claim = self._claim(path)
                if claim is not None:
                    claims.append(claim)
            self._send_many(claims)

    # -- claiming and sending -----------------------------------------------------------------
    def _claim_and_send(self, path: Path) -> None:
        claim = self._claim(path)
        if claim is not None:
            self._send(claim)

    def _claim(self, path: Path) -> Claim | None:
        claim_id = uuid.uuid4().hex
        rel = path.relative_to(self.inbox)
        dest = self.own_dir / claim_id / rel
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, dest)
        except FileNotFoundError:
            shutil.rmtree(self.own_dir / claim_id, ignore_errors=True)  # someone else won
            return None
        except OSError as exc:
            shutil.rmtree(self.own_dir / claim_id, ignore_errors=True)
            log.warning("could not claim file", file=display_name(str(rel)), error=str(exc))
            return None
        claim = Claim(claim_id=claim_id, path=dest, rel=rel)
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
                metadata={"path": claim.shown},
                folder_tags=claim.folders,
                idempotency_key=claim.key,
                reply_to=self.reply_key,
            )
        except ValidationError as exc:  # a name or folder the request model refuses
            raise InvalidRequest(f"'{claim.shown}' cannot be sent: {exc.errors()[0]['msg']}") from None

    def _read(self, claim: Claim) -> bytes:
        """Read the claimed file: never through a link, never a FIFO, never more than the limit.

        ``lstat`` decides before anything is opened: a link is never followed (not even to
        learn what it points at beyond its target's name), a FIFO, socket, device or
        directory is never opened, and an oversized file is never read.  The open itself
        is ``O_NOFOLLOW | O_NONBLOCK`` and is checked again with ``fstat``, so a file
        swapped for a link or a FIFO after the ``lstat`` is refused too.
        """
        shown = claim.shown
        try:
            st = claim.path.lstat()
        except OSError as exc:
            raise UnreadableFile(f"'{shown}' vanished before it could be read: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            target = display_name(os.readlink(claim.path))
            raise UnsafePath(f"'{shown}' is a symbolic link (to {target!r}); seedworker never follows links")
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"'{shown}' is not a regular file ({_kind(st.st_mode)})")
        limit = self.settings.max_file_bytes
        if st.st_size > limit:
            raise TooLarge(
                f"'{shown}' is {st.st_size} bytes, over the limit of {limit} bytes", size=st.st_size, limit=limit
            )
        try:
            fd = os.open(claim.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"'{shown}' became a symbolic link") from None
            raise UnreadableFile(f"cannot open '{shown}': {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise UnreadableFile(f"'{shown}' stopped being a regular file before it was read")
            try:
                data = fh.read(limit + 1)
            except OSError as exc:
                raise UnreadableFile(f"cannot read '{shown}': {exc.strerror}") from None
        if len(data) > limit:
            raise TooLarge(f"'{shown}' grew over the limit of {limit} bytes while being read", limit=limit)
        return data

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
            claim = Claim(claim_id=claim_dir.name, path=path, rel=path.relative_to(claim_dir))
            with self._lock:
                self._claims[claim.key] = claim
            log.info("recovering claim", file=claim.shown, key=claim.key)
            self._send(claim)

    def _resend_stale(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [c for c in self._claims.values() if now - c.sent_at > self.settings.watch_resend_seconds]
        for claim in stale:
            log.warning("no reply yet, resending", file=claim.shown, key=claim.key)
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
                reply = json.loads(raw)
            except ValueError:
                log.error("ignoring a reply that is not JSON", reply=repr(raw[:200]))
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

    def _finish(self, reply: dict[str, Any]) -> None:
        outcomes = reply.get("outcomes", [])
        keys = {o["key"].split("#L", 1)[0] for o in outcomes}
        for key in keys:
            with self._lock:
                claim = self._claims.pop(key, None)
            if claim is None:
                continue  # a repeat reply for a claim already finished
            mine = [o for o in outcomes if o["key"].split("#L", 1)[0] == key]
            failures = [o for o in mine if o["status"] == "failed"]
            try:
                if failures:
                    # Wholly failed, or a JSON Lines file with some bad lines (its good lines
                    # are stored): the original is kept in failed/ for the user to fix.
                    self._move_failed(claim, mine, failures)
                elif self.settings.after_success == "delete":
                    claim.path.unlink(missing_ok=True)
                else:
                    self._move(claim, Path(str(self.settings.archive_dir)))
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

    def _move(self, claim: Claim, root: Path) -> Path:
        dest = self._destination(claim, root)
        shutil.move(str(claim.path), str(dest))
        return dest

    @staticmethod
    def _destination(claim: Claim, root: Path) -> Path:
        """Where the claimed file goes under ``root``: its inbox path, made unique if taken."""
        dest = root / claim.rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() or dest.is_symlink():
            suffix = dest.suffix if len(dest.suffix) <= 16 else ""
            stem = dest.name[: len(dest.name) - len(suffix)] if suffix else dest.name
            dest = dest.with_name(_fit(stem, f".{claim.claim_id[:8]}{suffix}"))
        return dest

    def _move_failed(self, claim: Claim, outcomes: list[dict[str, Any]], failures: list[dict[str, Any]]) -> None:
        """The original into failed/, with ``<name>.error.json`` saying what went wrong.

        For a JSON Lines file ``failed_lines`` names every bad line (``records`` has each
        one's reason and message) and ``stored_records`` counts the lines that were stored.
        """
        # The report is written (atomically) before the file is moved: a watcher killed in
        # between leaves the file in its claim folder, is re-sent on restart, and the
        # replayed outcome writes the same report again and moves the file.  The other
        # order could leave a failed file without its report and nothing to re-send.
        dest = self._destination(claim, Path(str(self.settings.failed_dir)))
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
        side = dest.with_name(_fit(dest.name, ".error.json"))
        partial = side.with_name(_fit(f".{side.name}", ".part"))
        partial.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(partial, side)
        shutil.move(str(claim.path), str(dest))

    def _room(self) -> int:
        with self._lock:
            return max(0, self.settings.watch_max_in_flight - len(self._claims))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._claims)


def batch_argsrepr(claims: list[Claim]) -> str:
    """What Flower shows (and searches) for a batch: every file by name, never a body; with
    sizes and hashes unless that grows past 8,000 characters."""
    full = ", ".join(str(c.summary) for c in claims)
    return f"{len(claims)} files: " + (full if len(full) <= 8000 else ", ".join(c.shown for c in claims))


def _record_line(key: str) -> int | None:
    """The JSON Lines line number in an outcome key (``claim:<id>#L<line>``)."""
    _, sep, line = key.partition("#L")
    return int(line) if sep and line.isdigit() else None


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
