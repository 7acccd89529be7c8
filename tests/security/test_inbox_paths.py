"""Issue 19 §1: nothing from outside the inbox is ever moved, read, stored or deleted.

A user who may write only into an inbox sub-folder notes a file there, then swaps the folder
for a link to a folder outside (``drop/d -> /outside``) that holds a file with the same name,
size and mtime.  The old watcher re-checked the noted path with ``lstat`` and claimed it with
``os.rename`` on the path string, both of which follow links in parent folders: it moved the
outside file into its processing folder and sent its text.  Also: a hard link to an outside
file.  These tests time the swap between noting and claiming exactly.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.inbox import Running, content, make_inbox_watcher, queued, reply, wait_idle, wait_queued
from worker.models import Outcome

SECRET = b"root-only: the payroll of the whole newsroom, never to be ingested\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    victim = folder / "victim.txt"
    victim.write_bytes(SECRET)
    victim.chmod(0o600)
    return victim


def _decoy_like(victim: Path, path: Path) -> None:
    """A file of the attacker's with the victim's name, size and mtime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * len(SECRET))
    st = victim.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _nothing_outside_was_taken(victim: Path, client: redis.Redis) -> None:
    assert victim.read_bytes() == SECRET, "the outside file was moved or changed"
    for msg in queued(client):
        assert SECRET not in content(msg)
        assert b"payroll" not in json.dumps(msg).encode()


@pytest.mark.parametrize("after_success", ["archive", "delete"])
def test_a_folder_swapped_for_a_link_between_note_and_claim_yields_nothing_from_outside(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis, outside: Path, after_success: str
) -> None:
    w = make_inbox_watcher(tmp_path, broker_url, redis_client, after_success=after_success)
    decoy = w.inbox / "drop" / "d" / "victim.txt"
    _decoy_like(outside, decoy)
    w.detect.note(decoy, closed=False)  # noted by path, as an inotify event or a scan would
    os.rename(w.inbox / "drop" / "d", w.inbox / "drop" / "d-away")
    os.symlink(outside.parent, w.inbox / "drop" / "d")
    w.detect.candidates[decoy].changed_at -= 60  # stable long since: the claim happens now
    w._take_ready_files()
    try:
        _nothing_outside_was_taken(outside, redis_client)
        assert w.in_flight == 0
        # Whatever was sent is answered "stored": with AFTER_SUCCESS=delete the old watcher
        # would then have deleted the file it took from outside.
        for msg in queued(redis_client):
            key = msg["kwargs"]["request"]["idempotency_key"]
            reply(redis_client, w.reply_key, Outcome(status="stored", key=key, filename="x", document_id="doc_x"))
        w._collect_replies()
        _nothing_outside_was_taken(outside, redis_client)
    finally:
        w.stop()


def test_the_swap_against_a_running_watcher_fails_the_link_and_leaves_the_outside_file(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis, outside: Path
) -> None:
    """The same attack in real time: the decoy is held open (no close-write), so the watcher
    waits STABLE_SECONDS for it, and the folder is swapped for a link in that window."""
    w = make_inbox_watcher(tmp_path, broker_url, redis_client, stable_seconds=1.5)
    decoy = w.inbox / "drop" / "d" / "victim.txt"
    with Running(w):
        decoy.parent.mkdir(parents=True)
        with decoy.open("wb") as held:
            held.write(b"x" * len(SECRET))
            held.flush()
            st = outside.stat()
            os.utime(decoy, ns=(st.st_atime_ns, st.st_mtime_ns))
            deadline = time.monotonic() + 10
            while decoy not in w.detect.candidates and time.monotonic() < deadline:
                time.sleep(0.01)
            assert decoy in w.detect.candidates, "the watcher never noted the decoy"
            os.rename(w.inbox / "drop" / "d", w.inbox / "drop" / "d-away")
            os.symlink(outside.parent, w.inbox / "drop" / "d")
            time.sleep(2.5)  # past STABLE_SECONDS: the old watcher claimed the outside file here
            _nothing_outside_was_taken(outside, redis_client)
        msgs = wait_queued(redis_client, 2)  # the link itself, and the decoy under its new folder
        time.sleep(0.5)
    _nothing_outside_was_taken(outside, redis_client)
    failures = [m["kwargs"] for m in queued(redis_client) if m["task"] == "seedworker.record_failure"]
    assert [(f["summary"]["filename"], f["reason"]) for f in failures] == [("d", "unsafe_path")]
    stored = [m["kwargs"]["request"] for m in msgs if m["task"] == "seedworker.ingest"]
    decoy_moved = ("drop/d-away/victim.txt", ["drop", "d-away"])
    assert [(r["metadata"]["path"], r["folder_tags"]) for r in stored] == [decoy_moved]


def test_a_file_replaced_by_another_between_note_and_claim_is_not_claimed(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis
) -> None:
    """Same name, size and mtime is not the same file: the claim compares device and inode."""
    w = make_inbox_watcher(tmp_path, broker_url, redis_client)
    w.inbox.mkdir(parents=True)
    first = w.inbox / "a.txt"
    first.write_bytes(b"first")
    w.detect.note(first, closed=True)
    st = first.stat()
    other = w.inbox / "other.tmp"
    other.write_bytes(b"other")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(other, first)  # replaced, looking the same
    w.detect.candidates[first].changed_at -= 60
    w._take_ready_files()
    try:
        assert queued(redis_client) == [] and w.in_flight == 0
        assert first.read_bytes() == b"other"  # left for the next look, which notes it afresh
    finally:
        w.stop()


@pytest.mark.parametrize("allowed", [False, True])
def test_a_hard_link_is_refused_unless_allowed(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis, outside: Path, allowed: bool
) -> None:
    w = make_inbox_watcher(tmp_path, broker_url, redis_client, allow_hardlinks=allowed)
    w.inbox.mkdir(parents=True)
    with Running(w):
        os.link(outside, w.inbox / "linked.txt")
        [msg] = wait_queued(redis_client, 1)
        kwargs: dict[str, Any] = msg["kwargs"]
        if allowed:
            assert content(msg) == SECRET  # the operator chose to trust hard links
            return
        assert msg["task"] == "seedworker.record_failure"
        assert kwargs["reason"] == "unsafe_path" and "hard links" in kwargs["message"]
        reply(
            redis_client,
            w.reply_key,
            Outcome(status="failed", key=kwargs["key"], filename="linked.txt", reason="unsafe_path", message="x"),
        )
        wait_idle(w)
    _nothing_outside_was_taken(outside, redis_client)
    assert outside.stat().st_nlink == 2  # the link now sits in failed/, the file is untouched
