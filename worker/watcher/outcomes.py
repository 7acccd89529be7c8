"""Outcomes: the worker's replies, and what they do to the claimed files.

A reply (``worker.models.Reply``) names each request's outcomes by key (``#L<line>`` for a
JSON Lines record: ``split_record_key``).  Stored or duplicate: the file goes to archive/ (or is
deleted, ``AFTER_SUCCESS=delete``); failed, wholly or some lines of a JSON Lines file: it goes
to failed/ with ``<name>.error.json`` beside it.  A file whose bytes changed after they were
sent is not finished: it becomes a new version of its claim, sent again once quiet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
from typing import Any

from worker.errors import InputError
from worker.inbox import fs
from worker.logs import get_logger
from worker.models import Outcome, Reply, split_record_key
from worker.settings import Settings
from worker.watcher.claims import Claim, Claims
from worker.watcher.detect import Candidate
from worker.watcher.reading import Reader
from worker.watcher.sending import Sender

log = get_logger("seedworker.watcher")

REPORT_SUFFIX = ".error.json"
REPORT_MAX_BYTES = 16 * 1024 * 1024


class Outcomes:
    def __init__(self, settings: Settings, claims: Claims, reader: Reader, sender: Sender) -> None:
        self.settings = settings
        self.claims = claims
        self.reader = reader
        self.sender = sender
        # The superseded claims waiting for quiet (``_supersede`` sets ``settling``): the ones
        # ``send_settled`` looks at, so a tick does not walk every claim in flight.
        self._settling: list[Claim] = []

    def finish(self, reply: Reply) -> None:
        # Files archived by this reply: renamed one by one, their archive folders fsynced once
        # each after the last rename (not once per file), and only then finished (released, logged).
        folders: dict[tuple[str, ...], int] = {}
        archived: list[tuple[Claim, str, tuple[str, ...]]] = []
        try:
            for key, outcomes in reply.by_request().items():
                claim = self.claims.pop(key)
                if claim is None:
                    continue  # a repeat reply for a claim already finished, or not a key of ours
                failures = [o for o in outcomes if o.status == "failed"]
                if not failures and self._changed_since_sent(claim):
                    self._supersede(claim, outcomes)
                    continue
                try:
                    if failures:
                        # Wholly failed, or a JSON Lines file with some bad lines (its good lines
                        # are stored): the original is kept in failed/ for the user to fix.
                        self._move_failed(claim, outcomes, failures)
                    elif self.settings.after_success == "delete":
                        self._delete(claim)
                    else:
                        archived.append((claim, key, self._archive(claim, folders)))
                        continue
                except (OSError, ValueError) as exc:
                    self._not_moved(claim, exc)
                    continue
                self._finished(claim, key, failures, outcomes)
            self._sync_archived(folders, archived)
        finally:
            for fd in folders.values():
                os.close(fd)

    def _finished(self, claim: Claim, key: str, failures: list[Outcome], outcomes: list[Outcome]) -> None:
        self.claims.release(claim)
        status = "done" if not failures else "failed" if len(failures) == len(outcomes) else "partly failed"
        log.info("finished", file=claim.shown, key=key, status=status)

    def _not_moved(self, claim: Claim, exc: Exception) -> None:
        # Never drop the original: the claim stays on disk and in flight, and the
        # re-send (same key, replayed outcome) tries the move again later.
        log.error("could not move finished file, will retry", file=claim.shown, error=str(exc))
        claim.sent_at = time.monotonic()
        self.claims.keep_unless_replaced(claim)

    def _sync_archived(
        self, folders: dict[tuple[str, ...], int], archived: list[tuple[Claim, str, tuple[str, ...]]]
    ) -> None:
        """One fsync per archive folder this reply moved files into, then each file is finished
        (a folder whose fsync fails keeps its files' claims, as a failed move does)."""
        broken: dict[tuple[str, ...], OSError] = {}
        for parts, fd in folders.items():
            try:
                fs.fsync_dir(fd)
            except OSError as exc:
                broken[parts] = exc
        for claim, key, parts in archived:
            if parts in broken:
                self._not_moved(claim, broken[parts])
            else:
                self._finished(claim, key, [], [])

    # -- a file that changed after it was sent (issue 19 §5) ------------------------------------
    def _changed_since_sent(self, claim: Claim) -> bool:
        """Whether the claimed file now holds other bytes than the ones that were sent (a writer
        that kept its handle open after the watcher took the file). Size and mtime first; the
        file is hashed again only when they differ."""
        if claim.summary is None or claim.read_as is None:
            return False
        try:
            with self.claims.folder(claim) as folder:
                st = fs.lstat_at(folder, claim.entry)
                if (st.st_size, st.st_mtime_ns) == claim.read_as:
                    return False
                data, _ = self.reader.read_at(folder, claim.entry, claim.shown)
        except InputError:
            return True  # grown over the limit, or no longer a plain file: send it again to say so
        except OSError:
            return False
        return hashlib.sha256(data).hexdigest() != claim.summary.sha256

    def _supersede(self, claim: Claim, outcomes: list[Outcome]) -> None:
        """The stored document holds only what the file held when it was read.  The file is
        not archived: its claim becomes a new version (``<claim id>.2``, a rename, so the key
        survives a restart), which is sent again once the file has been quiet for a while,
        with ``metadata.supersedes`` naming the partial outcome; a ``document.failed`` event
        with reason ``superseded`` marks the partial document on the stream."""
        try:
            new, number = self.claims.supersede(claim)
            with self.claims.folder(new) as folder:
                st = fs.lstat_at(folder, new.entry)
        except OSError as exc:
            log.error("could not re-claim a file that changed after it was sent", file=claim.shown, error=str(exc))
            claim.sent_at = time.monotonic()
            self.claims.keep_unless_replaced(claim)
            return
        first = outcomes[0]
        partial = {
            "key": claim.key,
            "document_id": first.document_id or first.duplicate_of,
            "status": first.status,
            "size": claim.summary.size if claim.summary else None,
            "sha256": claim.summary.sha256 if claim.summary else None,
        }
        new.supersedes = partial
        # Each new version waits longer for quiet (STABLE_SECONDS x 2, x 4 … up to a minute):
        # a writer that pauses longer than STABLE_SECONDS is caught up with in a few rounds.
        new.settling = Candidate.of(st, time.monotonic(), closed=False)
        new.settling.changed_at += min(60.0, self.settings.stable_seconds * (2 ** (number - 1) - 1))
        new.sent_at = time.monotonic()
        self.claims.keep(new)
        self._settling.append(new)
        log.warning(
            "file changed after it was sent: its final content will be ingested again",
            file=claim.shown,
            partial=partial["document_id"],
            sent_bytes=partial["size"],
            now_bytes=st.st_size,
            key=new.key,
        )

    def send_settled(self) -> None:
        """Superseded claims whose file has been quiet long enough: sent again."""
        if not self._settling:
            return
        now = time.monotonic()
        waiting, self._settling = self._settling, []
        for claim in waiting:
            if claim.settling is None or self.claims.get(claim.key) is not claim:
                continue  # sent already, or no longer in flight
            self._settling.append(claim)
            assert claim.settling is not None
            try:
                with self.claims.folder(claim) as folder:
                    st: os.stat_result | None = fs.lstat_at(folder, claim.entry)
            except OSError:
                st = None
            if st is not None and not claim.settling.same(st):
                claim.settling = Candidate.of(st, now, closed=False)
                continue
            if st is None or now >= claim.settling.changed_at + self.settings.stable_seconds:
                claim.settling = None
                self._settling.remove(claim)
                self.sender.send(claim)

    # -- moving the file on --------------------------------------------------------------------
    def _delete(self, claim: Claim) -> None:
        """AFTER_SUCCESS=delete: the claimed entry only, unlinked in its claim folder, which
        is reached without links: nothing outside the processing folder can be deleted."""
        with self.claims.folder(claim) as folder, contextlib.suppress(FileNotFoundError):
            os.unlink(claim.entry, dir_fd=folder)

    def _dst(self, root: str, claim: Claim) -> int:
        """A handle on the claim's inbox folders below ``root`` (archive, failed), created."""
        return fs.makedirs_beneath(self.claims.roots.archive_or_failed(root), claim.rel.parent.parts)

    def _archive(self, claim: Claim, folders: dict[tuple[str, ...], int]) -> tuple[str, ...]:
        """Into the archive, under its inbox path; a taken name gets the claim's suffix.  The
        archive folder's handle is opened once per reply (``folders``, keyed by the inbox
        folders) and fsynced by the caller after the reply's last move; returns its key."""
        parts = claim.rel.parent.parts
        with self.claims.folder(claim) as src:
            dst = folders.get(parts)
            if dst is None:
                dst = folders[parts] = self._dst("archive", claim)
            name = fs.free_name(dst, claim.rel.name, claim.claim_id[:8])
            fs.move_at(src, claim.entry, dst, name, sync=False)
        return parts

    def _move_failed(self, claim: Claim, outcomes: list[Outcome], failures: list[Outcome]) -> None:
        """The original into failed/, with ``<name>.error.json`` saying what went wrong.

        For a JSON Lines file ``failed_lines`` names every bad line (``records`` has each
        one's reason and message) and ``stored_records`` counts the lines that were stored.
        """
        # The report is written (atomically) before the file is moved: a watcher killed in
        # between leaves the file in its claim folder, is re-sent on restart, and the
        # replayed outcome writes the same report again and moves the file.  The other
        # order could leave a failed file without its report and nothing to re-send.
        data = _report(claim, outcomes, failures)
        with self.claims.folder(claim) as src:
            dst = self._dst("failed", claim)
            try:
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
                fs.move_at(src, claim.entry, dst, name)
            finally:
                os.close(dst)


def _report(claim: Claim, outcomes: list[Outcome], failures: list[Outcome]) -> bytes:
    first = failures[0]
    lines = sorted(line for o in failures if (line := split_record_key(o.key)[1]) is not None)
    message = first.message
    if lines and len(failures) < len(outcomes):
        message = f"{len(failures)} of {len(outcomes)} records failed (lines {_ranges(lines)}); first: {message}"
    elif lines and len(failures) > 1:
        message = f"all {len(failures)} records failed (lines {_ranges(lines)}); first: {message}"
    report: dict[str, Any] = {
        "file": claim.shown,
        "reason": first.reason,
        "message": message,
        "failure_id": first.document_id,
        "key": claim.key,
        "failed_at": dt.datetime.now(dt.UTC).isoformat(),
        "failed_lines": lines,
        "stored_records": len(outcomes) - len(failures),
        "records": [
            {
                "line": split_record_key(o.key)[1],
                "reason": o.reason,
                "message": o.message,
                "failure_id": o.document_id,
            }
            for o in failures
        ],
        "outcomes": [o.model_dump(mode="json") for o in outcomes],
    }
    return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


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
