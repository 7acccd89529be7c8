"""The watcher against a real inbox and the real embedded Redis, with no worker: what it puts
on the queue, what it never reads, and what it does with replies."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.inbox import Running, inbox_settings, queued, wait_queued
from worker.app import create_app
from worker.inbox import fs
from worker.models import FileSummary, IngestResult, Outcome, Reply
from worker.settings import Settings
from worker.watcher import InboxWatcher
from worker.watcher.loop import IDLE_TICK
from worker.watcher.replies import ReplyListener


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return inbox_settings(tmp_path, **{"max_file_bytes": 1000, **kw})


@pytest.fixture
def make_watcher(tmp_path: Path, broker_url: str, redis_client: redis.Redis) -> Iterator[Any]:
    def make(watcher_id: str = "w1", **kw: Any) -> InboxWatcher:
        settings = _settings(tmp_path, **kw)
        return InboxWatcher(
            settings=settings, app=create_app(settings, broker_url), redis=redis_client, watcher_id=watcher_id
        )

    yield make


def test_dropped_file_is_claimed_and_sent_with_content_and_folder_tags(
    make_watcher: Any, redis_client: redis.Redis
) -> None:
    w = make_watcher()
    with Running(w):
        (w.inbox / "politics").mkdir(parents=True)
        (w.inbox / "politics" / "a.txt").write_bytes(b"hello world")
        [msg] = wait_queued(redis_client, 1)
    req = msg["kwargs"]["request"]
    assert msg["task"] == "seedworker.ingest"
    assert base64.b64decode(req["content_b64"]) == b"hello world"
    assert req["filename"] == "a.txt" and req["folder_tags"] == ["politics"]
    assert req["idempotency_key"].startswith("claim:")
    assert msg["argsrepr"].startswith("a.txt (11 B, sha256:")  # short and readable in Flower
    assert not (w.inbox / "politics" / "a.txt").exists()  # claimed: moved into processing


def test_hidden_and_temporary_files_are_ignored(make_watcher: Any, redis_client: redis.Redis) -> None:
    w = make_watcher()
    with Running(w):
        for name in (".hidden.txt", "x.txt.part", "y.tmp", "z.txt~", "doc.crdownload"):
            (w.inbox / name).write_bytes(b"data")
        (w.inbox / "real.txt").write_bytes(b"data")
        wait_queued(redis_client, 1)
        time.sleep(0.8)
    assert [m["kwargs"]["request"]["filename"] for m in queued(redis_client)] == ["real.txt"]
    assert (w.inbox / ".hidden.txt").exists()


def test_symlink_fifo_and_oversize_fail_without_being_read(
    make_watcher: Any, redis_client: redis.Redis, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the inbox")
    w = make_watcher()
    with Running(w):
        os.symlink(secret, w.inbox / "link.txt")
        os.mkfifo(w.inbox / "pipe.txt")
        (w.inbox / "big.txt").write_bytes(b"x" * 5000)
        msgs = wait_queued(redis_client, 3)
    reasons = {m["kwargs"]["summary"]["filename"]: m["kwargs"]["reason"] for m in msgs}
    assert reasons == {"link.txt": "unsafe_path", "pipe.txt": "unreadable", "big.txt": "too_large"}
    assert all(m["task"] == "seedworker.record_failure" for m in msgs)
    assert "outside the inbox" not in json.dumps(msgs)
    assert secret.read_text() == "outside the inbox"


def test_two_watchers_on_one_inbox_send_each_file_once(make_watcher: Any, redis_client: redis.Redis) -> None:
    a, b = make_watcher("a"), make_watcher("b")
    with Running(a), Running(b):
        for i in range(60):
            (a.inbox / f"f{i:03}.txt").write_bytes(f"file {i}".encode())
        wait_queued(redis_client, 60)
        time.sleep(1.0)
    names = sorted(m["kwargs"]["request"]["filename"] for m in queued(redis_client))
    assert names == [f"f{i:03}.txt" for i in range(60)]


def test_polling_mode_waits_until_a_growing_file_is_stable(make_watcher: Any, redis_client: redis.Redis) -> None:
    w = make_watcher(watch_mode="polling", stable_seconds=0.6)
    with Running(w), (w.inbox / "slow.txt").open("wb") as fh:
        for _ in range(8):  # written over ~1.6 s, never quiet for 0.6 s
            fh.write(b"chunk ")
            fh.flush()
            time.sleep(0.2)
            assert queued(redis_client) == []
        fh.close()
        [msg] = wait_queued(redis_client, 1)
        assert base64.b64decode(msg["kwargs"]["request"]["content_b64"]) == b"chunk " * 8


def test_restarted_watcher_resends_its_claims_with_the_same_key(make_watcher: Any, redis_client: redis.Redis) -> None:
    w = make_watcher("same")
    with Running(w):
        (w.inbox / "a.txt").write_bytes(b"hello")
        [first] = wait_queued(redis_client, 1)
    redis_client.delete("seedworker")  # as if the message were lost with a broker without AOF
    w2 = make_watcher("same")
    with Running(w2):
        [again] = wait_queued(redis_client, 1)
    assert again["kwargs"]["request"]["idempotency_key"] == first["kwargs"]["request"]["idempotency_key"]


def test_a_claim_without_a_reply_is_sent_again_after_watch_resend_seconds(
    make_watcher: Any, redis_client: redis.Redis
) -> None:
    """A message can vanish from Redis with no process at fault: kombu's Redis transport takes a
    message with BRPOP and records it as unacknowledged in a second command, so a broker that
    stops in between loses it. The watcher, still waiting for a reply, sends it again, with the
    same key, after WATCH_RESEND_SECONDS; and not before."""
    w = make_watcher(watch_resend_seconds=1.5)
    with Running(w):
        (w.inbox / "a.txt").write_bytes(b"hello")
        [first] = wait_queued(redis_client, 1)
        redis_client.delete("seedworker")  # the worker took it; the broker stopped before unacked
        time.sleep(0.8)
        assert queued(redis_client) == []  # not re-sent before its time
        [again] = wait_queued(redis_client, 1, timeout=5)
    assert again["kwargs"]["request"]["idempotency_key"] == first["kwargs"]["request"]["idempotency_key"]
    assert w.in_flight == 1  # still waiting for the reply


def _reply(client: redis.Redis, key: str, outcome: Outcome) -> None:
    result = IngestResult(filename=outcome.filename, outcomes=[outcome])
    client.lpush(
        key, json.dumps({"filename": result.filename, "outcomes": [o.model_dump(mode="json") for o in result.outcomes]})
    )


def test_claims_of_files_in_nested_folders_keep_the_watch_alive(make_watcher: Any, redis_client: redis.Redis) -> None:
    """Each claim of ``a/b/x.txt`` creates ``<claim>/a/b`` inside the watched tree, which
    watchdog may add twice and warn about; under ``-W error`` (this suite) the warning used to
    kill watchdog's reader thread (CI failure in test_replies_archive_or_fail_the_claimed_file).
    The events must keep coming: files dropped after the nested claims are seen by inotify,
    long before the 60 s rescan."""
    w = make_watcher()
    w.detect.safety.min_interval = 60.0
    with Running(w):
        for i in range(40):
            folder = w.inbox / f"d{i}" / "sub" / "deeper"
            folder.mkdir(parents=True)
            (folder / f"x{i}.txt").write_bytes(b"nested %d" % i)
        wait_queued(redis_client, 40, timeout=20)
        (w.inbox / "after.txt").write_bytes(b"after")
        names = [m["kwargs"]["request"]["filename"] for m in wait_queued(redis_client, 41, timeout=10)]
        assert "after.txt" in names
        assert w.observer is not None and w.observer.is_alive()


def test_replies_archive_or_fail_the_claimed_file(make_watcher: Any, redis_client: redis.Redis) -> None:
    w = make_watcher()
    with Running(w):
        (w.inbox / "sub").mkdir(parents=True)
        (w.inbox / "sub" / "good.txt").write_bytes(b"good")
        (w.inbox / "bad.txt").write_bytes(b"bad")
        msgs = {m["kwargs"]["request"]["filename"]: m["kwargs"]["request"] for m in wait_queued(redis_client, 2)}
        _reply(
            redis_client,
            w.reply_key,
            Outcome(status="stored", key=msgs["good.txt"]["idempotency_key"], filename="good.txt", document_id="doc_1"),
        )
        _reply(
            redis_client,
            w.reply_key,
            Outcome(
                status="failed",
                key=msgs["bad.txt"]["idempotency_key"],
                filename="bad.txt",
                reason="binary",
                message="it is binary",
                document_id="fail_1",
            ),
        )
        deadline = time.monotonic() + 10
        while w.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
    archive, failed = Path(str(w.settings.archive_dir)), Path(str(w.settings.failed_dir))
    assert (archive / "sub" / "good.txt").read_bytes() == b"good"
    assert (failed / "bad.txt").read_bytes() == b"bad"
    report = json.loads((failed / "bad.txt.error.json").read_text())
    assert report["reason"] == "binary" and report["failure_id"] == "fail_1"
    assert not any(p.is_file() for p in w.own_dir.rglob("*"))  # nothing stuck in processing
    assert list(w.own_dir.iterdir()) == []  # the claims' folders are gone too, nested ones included


def test_file_summary_is_short() -> None:
    assert str(FileSummary.of("a.txt", b"x" * 10)).startswith("a.txt (10 B, sha256:")


def test_unmatched_move_events_do_not_hold_back_later_files(make_watcher: Any) -> None:
    """watchdog keeps an unmatched IN_MOVED_FROM (each claim, each file moved to the archive)
    at the head of a first-in first-out queue for its pairing delay, and every later event
    waits behind it; the running emitter must use the watcher's short delay, not 0.5 s."""
    from worker.watcher import MOVE_PAIRING_SECONDS

    w = make_watcher()
    with Running(w):
        assert w.observer is not None
        groups = [getattr(e, "_inotify", None) for e in w.observer.emitters]
        groupers = [g._move_event_grouper for g in groups if hasattr(g, "_move_event_grouper")]
        if w.mode != "inotify" or not groupers:
            pytest.skip(f"no inotify move grouping here (mode {w.mode})")
        assert [g._queue.delay for g in groupers] == [MOVE_PAIRING_SECONDS] * len(groupers)
        assert MOVE_PAIRING_SECONDS <= 0.05


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after the raise runs, nothing catches it."""


def test_killed_while_failing_a_file_leaves_report_and_file_recoverable(
    make_watcher: Any, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_watcher("same")
    with Running(w):
        (w.inbox / "bad.txt").write_bytes(b"bad")
        [msg] = wait_queued(redis_client, 1)
    key = msg["kwargs"]["request"]["idempotency_key"]
    failed = Outcome(status="failed", key=key, filename="bad.txt", reason="binary", message="it is binary")
    reply = {"filename": "bad.txt", "outcomes": [failed.model_dump(mode="json")]}

    def killed(*_: object) -> None:
        raise _Killed

    monkeypatch.setattr("worker.inbox.fs.move_at", killed)
    with pytest.raises(_Killed):
        w.outcomes.finish(Reply.model_validate(reply))  # dies after the report was written, before the file moved
    monkeypatch.undo()
    failed_dir = Path(str(w.settings.failed_dir))
    assert json.loads((failed_dir / "bad.txt.error.json").read_text())["reason"] == "binary"
    [claimed] = [p.name for p in w.own_dir.rglob("*") if p.is_file()]
    assert claimed.endswith("_bad.txt")  # still claimed (<claim id>_<inbox path>)

    redis_client.delete("seedworker")
    w2 = make_watcher("same")
    with Running(w2):
        [again] = wait_queued(redis_client, 1)  # the restarted watcher re-sends the claim
        assert again["kwargs"]["request"]["idempotency_key"] == key
        _reply(redis_client, w2.reply_key, failed)  # the worker replays the stored outcome
        deadline = time.monotonic() + 10
        while w2.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sorted(p.name for p in failed_dir.iterdir()) == ["bad.txt", "bad.txt.error.json"]
    assert (failed_dir / "bad.txt").read_bytes() == b"bad"
    assert not any(p.is_file() for p in w2.own_dir.rglob("*"))


def test_a_file_that_cannot_be_moved_stays_claimed(
    make_watcher: Any, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_watcher()
    with Running(w):
        (w.inbox / "a.txt").write_bytes(b"good")
        [msg] = wait_queued(redis_client, 1)
    key = msg["kwargs"]["request"]["idempotency_key"]
    stored = Outcome(status="stored", key=key, filename="a.txt", document_id="doc_1")
    reply = {"filename": "a.txt", "outcomes": [stored.model_dump(mode="json")]}

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("worker.inbox.fs.move_at", disk_full)
    w.outcomes.finish(Reply.model_validate(reply))
    monkeypatch.undo()
    assert w.in_flight == 1  # kept, to be re-sent and moved later
    assert [p.read_bytes() for p in w.own_dir.rglob("*") if p.is_file()] == [b"good"]
    w.outcomes.finish(Reply.model_validate(reply))
    assert w.in_flight == 0
    assert (Path(str(w.settings.archive_dir)) / "a.txt").read_bytes() == b"good"


def test_the_loop_wakes_when_a_file_has_settled_not_at_the_next_tick(make_watcher: Any, tmp_path: Path) -> None:
    """Latency: the wait before the next tick ends when the earliest candidate's quiet time does."""
    w = make_watcher(settle_seconds=0.02, stable_seconds=0.3)
    assert w.next_wait() == IDLE_TICK  # nothing noted, nothing in flight: an event wakes the loop
    (tmp_path / "inbox").mkdir(parents=True, exist_ok=True)
    closed = tmp_path / "inbox" / "closed.txt"
    closed.write_bytes(b"story")
    w.detect.note(closed, closed=True)
    assert 0.001 <= w.next_wait() <= 0.02  # settles in 20 ms: wake then, not in 50
    w.detect.candidates[closed].changed_at -= 1.0
    assert w.next_wait() == 0.001  # overdue: at once (the tick takes it)
    w.detect.candidates.clear()
    growing = tmp_path / "inbox" / "growing.txt"
    growing.write_bytes(b"part")
    w.detect.note(growing, closed=False)
    assert w.next_wait() == 0.05  # 0.3 s of stability to go: the plain tick


def test_no_more_than_watch_max_in_flight_files_are_claimed_and_the_rest_wait_in_the_inbox(
    make_watcher: Any, redis_client: redis.Redis
) -> None:
    """Back-pressure: a flood of files is not a flood of messages. With WATCH_MAX_IN_FLIGHT=3,
    three files are claimed and sent; the others stay in the inbox, untouched, until replies
    free room, and then go oldest first."""
    w = make_watcher(watch_max_in_flight=3, watch_batch=2)
    with Running(w):
        for i in range(8):
            (w.inbox / f"f{i}.txt").write_bytes(b"file %d" % i)
            time.sleep(0.01)  # distinct arrival order
        first = wait_queued(redis_client, 3)
        time.sleep(0.5)  # many ticks: still no more than three
        assert len(queued(redis_client)) == 3
        assert w.in_flight == 3
        assert len(list(w.inbox.glob("f*.txt"))) == 5
        requests = {m["kwargs"]["request"]["filename"]: m["kwargs"]["request"] for m in first}
        assert sorted(requests) == ["f0.txt", "f1.txt", "f2.txt"]
        redis_client.delete("seedworker")
        for name in ("f0.txt", "f1.txt"):
            key = requests[name]["idempotency_key"]
            _reply(
                redis_client, w.reply_key, Outcome(status="stored", key=key, filename=name, document_id="doc_" + name)
            )
        more = wait_queued(redis_client, 2)
        assert sorted(m["kwargs"]["request"]["filename"] for m in more) == ["f3.txt", "f4.txt"]
        time.sleep(0.3)
        assert len(queued(redis_client)) == 2
        assert w.in_flight == 3
        assert sorted(p.name for p in w.inbox.glob("f*.txt")) == ["f5.txt", "f6.txt", "f7.txt"]


CLUTTER = {
    ".DS_Store": b"\x00\x00\x00\x01Bud1",
    "._a.txt": b"\x00\x05\x16\x07 resource fork",
    "desktop.ini": b"[.ShellClassInfo]\r\nIconResource=x\r\n",
    "Thumbs.db": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 thumbnails",
    "THUMBS.DB": b"\xd0\xcf\x11\xe0 the same, shouted",
    "~$report.docx": b"owner file",
    ".~lock.story.odt#": b"lock",
    "story.tmp": b"half written",
    "@eaDir/a.txt@SynoEAStream": b"synology metadata",
    "@eaDir/story.txt/SYNOPHOTO_THUMB_M.jpg": b"thumb",
    "sub/@eaDir/x.txt": b"nested synology folder",
    ".stversions/story~20240101.txt": b"syncthing old version",
}


def test_system_clutter_is_left_in_place_and_never_sent(make_watcher: Any, redis_client: redis.Redis) -> None:
    """Issue 17 §6: desktop.ini was stored, Thumbs.db failed with an event, @eaDir/… was
    stored with the folder tag '@eaDir'. What paperless-ngx ignores is ignored: no claim, no
    message (so no document, no failure, no event), the file left where it is."""
    w = make_watcher()
    with Running(w):
        for name, data in CLUTTER.items():
            (w.inbox / name).parent.mkdir(parents=True, exist_ok=True)
            (w.inbox / name).write_bytes(data)
        (w.inbox / "sub" / "real.txt").write_bytes(b"a real story")
        [msg] = wait_queued(redis_client, 1)
        time.sleep(1.0)  # several ticks and a rescan later: still nothing else
        assert len(queued(redis_client)) == 1
    assert msg["kwargs"]["request"]["filename"] == "real.txt"
    for name, data in CLUTTER.items():
        assert (w.inbox / name).read_bytes() == data, name


def test_ignore_patterns_are_a_setting(make_watcher: Any, redis_client: redis.Redis) -> None:
    """SEEDWORKER_IGNORE replaces the defaults: here only *.bak and the drafts/ folder."""
    w = make_watcher(ignore=["*.bak", "drafts/"])
    with Running(w):
        (w.inbox / "drafts").mkdir(parents=True)
        (w.inbox / "drafts" / "d.txt").write_bytes(b"draft")
        (w.inbox / "x.bak").write_bytes(b"backup")
        (w.inbox / "desktop.ini").write_bytes(b"[.ShellClassInfo]")
        (w.inbox / "drafts.txt").write_bytes(b"a file, not the folder")
        names = sorted(m["kwargs"]["request"]["filename"] for m in wait_queued(redis_client, 2))
        time.sleep(0.8)
        assert len(queued(redis_client)) == 2
    assert names == ["desktop.ini", "drafts.txt"]
    assert (w.inbox / "drafts" / "d.txt").exists() and (w.inbox / "x.bak").exists()


def test_a_failure_report_never_overwrites_a_users_file(make_watcher: Any, redis_client: redis.Redis) -> None:
    """Issue 19 §10: the user's own ``coll.txt.error.json`` failed first (it sits in failed/
    under its name); then ``coll.txt`` failed and its report replaced the user's file. Reports
    and files now share one rule: a taken name gets the claim's suffix, for both."""
    w = make_watcher()
    with Running(w):
        (w.inbox / "coll.txt.error.json").write_bytes(b"the user's own notes")
        [first] = wait_queued(redis_client, 1)
        _fail(redis_client, w, first, "coll.txt.error.json")
        _wait_idle(w)
        (w.inbox / "coll.txt").write_bytes(b"\x00binary")
        second = wait_queued(redis_client, 2)[1]
        _fail(redis_client, w, second, "coll.txt")
        _wait_idle(w)
        (w.inbox / "coll.txt").write_bytes(b"\x00binary again")
        third = wait_queued(redis_client, 3)[2]
        _fail(redis_client, w, third, "coll.txt")
        _wait_idle(w)
    failed = Path(str(w.settings.failed_dir))
    assert (failed / "coll.txt.error.json").read_bytes() == b"the user's own notes"
    users = "coll.txt.error.json"
    reports = {p.name: json.loads(p.read_text()) for p in failed.glob("*.error.json") if p.name != users}
    by_key = {r["key"]: name for name, r in reports.items()}
    keys = [m["kwargs"]["request"]["idempotency_key"] for m in (first, second, third)]
    assert set(by_key) == set(keys)  # one report per failed file, none lost
    for msg, data in ((second, b"\x00binary"), (third, b"\x00binary again")):
        report_name = by_key[msg["kwargs"]["request"]["idempotency_key"]]
        assert (failed / report_name.removesuffix(".error.json")).read_bytes() == data  # beside its report


def _fail(client: redis.Redis, w: InboxWatcher, msg: dict[str, Any], name: str) -> None:
    key = msg["kwargs"]["request"]["idempotency_key"]
    _reply(client, w.reply_key, Outcome(status="failed", key=key, filename=name, reason="binary", message="binary"))


def _wait_idle(w: InboxWatcher) -> None:
    deadline = time.monotonic() + 10
    while w.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.in_flight == 0


def _sent_keys(msgs: list[dict[str, Any]]) -> dict[str, str]:
    """File path (``metadata.path``) -> idempotency key, over single and batch messages."""
    requests = [r for m in msgs for r in (m["kwargs"].get("requests") or [m["kwargs"]["request"]])]
    return {r["metadata"]["path"]: r["idempotency_key"] for r in requests}


def _claimed_and_sent(w: InboxWatcher, redis_client: redis.Redis, names: list[str]) -> dict[str, str]:
    with Running(w):
        for name in names:
            (w.inbox / name).parent.mkdir(parents=True, exist_ok=True)
            (w.inbox / name).write_bytes(b"text of " + name.encode())
        deadline = time.monotonic() + 15
        while len(keys := _sent_keys(queued(redis_client))) < len(names) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sorted(keys) == sorted(names)
    return keys


def _stored_reply(keys: dict[str, str]) -> Reply:
    outcomes = [
        Outcome(status="stored", key=key, filename=Path(path).name, document_id=f"doc_{i}")
        for i, (path, key) in enumerate(sorted(keys.items()))
    ]
    return Reply(filename=f"{len(outcomes)} files", outcomes=outcomes)


def test_a_reply_archives_its_files_with_one_fsync_per_archive_folder(
    make_watcher: Any, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: the archive folder is fsynced once per reply and folder, after the reply's
    last rename into it, not once per file; then each file is finished, as before."""
    w = make_watcher()
    names = ["a.txt", "b.txt", "c.txt", "sub/d.txt", "sub/e.txt"]
    keys = _claimed_and_sent(w, redis_client, names)
    synced: list[int] = []
    real = fs.fsync_dir
    monkeypatch.setattr("worker.inbox.fs.fsync_dir", lambda fd: (synced.append(fd), real(fd)))
    w.outcomes.finish(_stored_reply(keys))
    assert len(synced) == 2  # archive/ and archive/sub/, whatever the number of files
    archive = Path(str(w.settings.archive_dir))
    assert sorted(str(p.relative_to(archive)) for p in archive.rglob("*.txt")) == sorted(names)
    assert w.in_flight == 0 and not any(p.is_file() for p in w.own_dir.rglob("*"))


def test_an_archive_folder_that_cannot_be_fsynced_keeps_its_files_claimed(
    make_watcher: Any, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed fsync of the archive folder is a failed move, as when it was done per file:
    the claims of the files moved into that folder stay in flight (re-sent later); the other
    folder's files are finished."""
    w = make_watcher()
    keys = _claimed_and_sent(w, redis_client, ["a.txt", "sub/b.txt"])
    archive = Path(str(w.settings.archive_dir))
    real = fs.fsync_dir

    def broken_sub(fd: int) -> None:
        if os.path.samefile(f"/proc/self/fd/{fd}", archive / "sub"):
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr("worker.inbox.fs.fsync_dir", broken_sub)
    w.outcomes.finish(_stored_reply(keys))
    assert w.in_flight == 1 and w.claims.get(keys["sub/b.txt"]) is not None
    assert w.claims.get(keys["a.txt"]) is None


def test_the_running_loop_waits_for_replies_without_polling_the_reply_list(
    make_watcher: Any, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: with files in flight the loop read the reply list every 50 ms.  Now the reply
    listener waits for replies (BRPOP) and wakes the loop when one comes: the loop ticks rarely
    while it waits, and a reply is still acted on at once."""
    w = make_watcher()
    reads: list[float] = []
    real_rpop = w.redis.rpop

    def counting_rpop(*args: Any, **kw: Any) -> Any:
        reads.append(time.monotonic())
        return real_rpop(*args, **kw)

    monkeypatch.setattr(w.redis, "rpop", counting_rpop)
    with Running(w):
        (w.inbox / "a.txt").write_bytes(b"hello")
        [msg] = wait_queued(redis_client, 1)
        time.sleep(0.3)  # the claim's own ticks are over
        before = len(reads)
        time.sleep(1.5)
        assert len(reads) - before <= 5  # was 30 (one read every 50 ms)
        key = msg["kwargs"]["request"]["idempotency_key"]
        replied = time.monotonic()
        _reply(redis_client, w.reply_key, Outcome(status="stored", key=key, filename="a.txt", document_id="doc_a"))
        while w.in_flight and time.monotonic() < replied + 5:
            time.sleep(0.01)
        assert w.in_flight == 0 and time.monotonic() - replied < 0.4  # woken by the reply, not a tick
    assert (Path(str(w.settings.archive_dir)) / "a.txt").read_bytes() == b"hello"


def test_replies_the_listener_holds_when_it_stops_go_back_to_the_list_in_order(redis_client: redis.Redis) -> None:
    wake = threading.Event()
    listener = ReplyListener(redis_client, "seedworker:reply:test-listener", wake)
    redis_client.delete(listener.key)
    listener.start()
    try:
        for i in range(3):
            redis_client.lpush(listener.key, f"r{i}")  # as the worker pushes them
        deadline = time.monotonic() + 5
        while redis_client.llen(listener.key) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert wake.is_set()
    finally:
        listener.stop()
    assert redis_client.rpop(listener.key, 10) == [b"r0", b"r1", b"r2"]  # oldest first, as before
