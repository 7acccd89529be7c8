"""Issue 19 §5: a slow writer's file was stored truncated.

Written in place through one handle with pauses longer than STABLE_SECONDS, the file was
claimed after the first pause and stored as its first chunk (268 B of 4,193 B, outcome
``stored``), while the writer went on filling the claimed, then archived, file.  Now the
watcher compares the file with what it sent before it archives it: changed, the outcome is
superseded, the partial document is marked (``document.failed``, reason ``superseded``) and the
final content is ingested again with ``metadata.supersedes``.  This test plays the worker: it
answers every message ``stored`` as it comes.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.inbox import Running, content, make_inbox_watcher, queued, reply
from worker.models import Outcome
from worker.watcher import InboxWatcher

CHUNKS = [f"paragraph {i}: the council met again and the vote was postponed.\n".encode() for i in range(5)]


def _answer_all(
    client: redis.Redis, reply_key: str, answered: set[str], seen: dict[str, float], delay: float = 0.0
) -> list[dict[str, Any]]:
    """Reply ``stored`` to every ingest message not answered yet, ``delay`` seconds after it was
    first seen (a busy worker); return all messages."""
    msgs = queued(client)
    now = time.monotonic()
    for msg in msgs:
        if msg["task"] != "seedworker.ingest":
            continue
        key = msg["kwargs"]["request"]["idempotency_key"]
        seen.setdefault(key, now)
        if key not in answered and now - seen[key] >= delay:
            answered.add(key)
            doc = f"doc_{len(answered)}"
            reply(client, reply_key, Outcome(status="stored", key=key, filename="slow.txt", document_id=doc))
    return msgs


def _write_slowly(path: Path) -> threading.Thread:
    def write() -> None:
        with path.open("wb") as fh:  # one handle, never closed in between
            for chunk in CHUNKS:
                fh.write(chunk)
                fh.flush()
                time.sleep(1.0)  # longer than STABLE_SECONDS (0.4 s here)

    writer = threading.Thread(target=write)
    writer.start()
    return writer


def _run(w: InboxWatcher, client: redis.Redis, delay: float) -> list[dict[str, Any]]:
    answered: set[str] = set()
    seen: dict[str, float] = {}
    with Running(w):
        w.inbox.mkdir(parents=True, exist_ok=True)
        writer = _write_slowly(w.inbox / "slow.txt")
        archived = Path(str(w.settings.archive_dir)) / "slow.txt"
        deadline = time.monotonic() + 60
        # Until the file is archived: between a superseded reply and its next version the
        # watcher holds no claim for a moment (in_flight alone would end the loop too soon).
        while (writer.is_alive() or w.in_flight or not archived.exists()) and time.monotonic() < deadline:
            _answer_all(client, w.reply_key, answered, seen, delay)
            time.sleep(0.05)
        writer.join()
        assert w.in_flight == 0, "claims left in flight"
        return _answer_all(client, w.reply_key, answered, seen)


def test_a_file_still_open_for_writing_is_not_taken_however_long_its_writer_pauses(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis
) -> None:
    """The kernel says whether anyone holds the file open for writing (a read lease is refused
    then): the watcher waits for the writer to close it, and sends it once, whole."""
    w = make_inbox_watcher(tmp_path, broker_url, redis_client, stable_seconds=0.4)
    msgs = _run(w, redis_client, delay=0.0)
    full = b"".join(CHUNKS)
    assert [(m["task"], content(m)) for m in msgs] == [("seedworker.ingest", full)]
    assert (Path(str(w.settings.archive_dir)) / "slow.txt").read_bytes() == full


def test_a_file_that_changed_after_it_was_sent_is_superseded_never_stored_truncated(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernel cannot say (the watcher is not the file's owner, NFS), STABLE_SECONDS
    decides and the file is taken mid-way; a busy worker replies 2 s later, when the file has
    grown. The watcher compares before it archives: superseded, marked, sent again."""
    monkeypatch.setattr("worker.inbox.fs.held_for_writing", lambda *_: None)
    w = make_inbox_watcher(tmp_path, broker_url, redis_client, stable_seconds=0.4)
    msgs = _run(w, redis_client, delay=2.0)
    full = b"".join(CHUNKS)
    archived = Path(str(w.settings.archive_dir)) / "slow.txt"
    assert archived.read_bytes() == full
    ingests = [m for m in msgs if m["task"] == "seedworker.ingest"]
    marks = [m["kwargs"] for m in msgs if m["task"] == "seedworker.record_failure"]
    print(f"\nslow writer: {len(ingests)} sends, sizes {[len(content(m)) for m in ingests]}, {len(marks)} marks")
    assert content(ingests[-1]) == full  # the last document sent holds the whole file
    partial_keys = {m["kwargs"]["request"]["idempotency_key"] for m in ingests if content(m) != full}
    assert partial_keys, "no partial read: the test did not reproduce the slow writer"
    # Every partial send is marked on the stream and named by its successor.
    assert {k["key"].removesuffix(":superseded") for k in marks} == partial_keys
    assert all(k["reason"] == "superseded" and "doc_" in k["message"] for k in marks)
    last = ingests[-1]["kwargs"]["request"]
    assert last["metadata"]["supersedes"]["key"] in partial_keys
    # claim:<id>.<token> is followed by claim:<id>.<n>.<token'>: the same claim, renamed.
    first_claim = ingests[0]["kwargs"]["request"]["idempotency_key"].rsplit(".", 1)[0]
    assert last["idempotency_key"].rsplit(".", 1)[0].startswith(first_claim + ".")


def test_an_unchanged_file_is_archived_without_being_read_again(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis
) -> None:
    w = make_inbox_watcher(tmp_path, broker_url, redis_client)
    answered: set[str] = set()
    seen: dict[str, float] = {}
    with Running(w):
        (w.inbox / "a.txt").parent.mkdir(parents=True, exist_ok=True)
        (w.inbox / "a.txt").write_bytes(b"a finished story")
        deadline = time.monotonic() + 15
        while (w.in_flight or not answered) and time.monotonic() < deadline:
            _answer_all(redis_client, w.reply_key, answered, seen)
            time.sleep(0.05)
    assert [m["task"] for m in queued(redis_client)] == ["seedworker.ingest"]
    assert (Path(str(w.settings.archive_dir)) / "a.txt").read_bytes() == b"a finished story"


def test_asking_the_kernel_about_writers_never_kills_the_watcher(tmp_path: Path) -> None:
    """The question is a read lease held for microseconds; a writer opening the file in that
    window makes the kernel signal the holder, by default with SIGIO, which ends a process.
    Thousands of questions against a writer that opens the file in a loop: the asker lives."""
    target = tmp_path / "busy.txt"
    target.write_bytes(b"x")
    asker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from worker.inbox import fs\n"
            "folder = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
            "answers = [fs.held_for_writing(folder, 'busy.txt') for _ in range(20000)]\n"
            "print(answers.count(True), answers.count(False))\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    opens = 0
    while asker.poll() is None:
        with target.open("ab"):
            opens += 1
    out = asker.communicate()[0]
    assert asker.returncode == 0, f"the asker died with {asker.returncode} after {opens} writer opens"
    busy, free = map(int, out.split())
    assert busy + free == 20000 and busy > 0 and free > 0
