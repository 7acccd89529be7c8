"""Claims on disk (issue 21): one entry per claim in the watcher's folder, no folder made or
removed per file, and the claims an earlier version left in its nested layout still recovered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from tests.support.inbox import Running, make_inbox_watcher, queued, reply, wait_idle, wait_queued
from worker.models import Outcome
from worker.watcher.claims import claim_secret, claim_token, flat_name, parse_flat


@pytest.mark.parametrize(
    "rel",
    ["x.txt", "politics/x.txt", "a%2Fb/c%25.txt", "100%/done%2F.txt", os.fsdecode(b"caf\xe9/\xff.txt"), "a_b/c_d.txt"],
)
def test_a_flat_claim_name_gives_back_its_claim_id_and_inbox_path(rel: str) -> None:
    claim_id = "3f0c" * 8
    name = flat_name(claim_id, Path(rel))
    assert name is not None and "/" not in name
    assert parse_flat(name) == (claim_id, Path(rel))
    assert parse_flat(f"{claim_id}.2" + name[len(claim_id) :]) == (f"{claim_id}.2", Path(rel))


def test_names_that_are_not_flat_claims_are_refused() -> None:
    for name in ("x.txt", "notahexid_x.txt", "3f0c3f0c_x.txt", "3f0c" * 8 + "_a%2F%2Fb", "3f0c" * 8 + "_..%2Fx"):
        assert parse_flat(name) is None, name
    assert flat_name("3f0c" * 8, Path("d" * 100) / ("n" * 150)) is None  # too long for one name


def test_a_claim_is_one_entry_of_the_watchers_folder_and_leaves_nothing_behind(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis
) -> None:
    w = make_inbox_watcher(tmp_path, broker_url, redis_client)
    with Running(w):
        (w.inbox / "politics" / "eu").mkdir(parents=True)
        (w.inbox / "politics" / "eu" / "x.txt").write_bytes(b"a story")
        [msg] = wait_queued(redis_client, 1)
        [entry] = list(w.own_dir.iterdir())
        assert entry.is_file() and not entry.is_symlink()  # no folder per claim
        claim_id, rel = parse_flat(entry.name) or ("", Path())
        request = msg["kwargs"]["request"]
        assert rel == Path("politics/eu/x.txt") and request["folder_tags"] == ["politics", "eu"]
        token = claim_token(claim_secret(w.settings.data_dir), claim_id)
        assert request["idempotency_key"] == f"claim:{claim_id}.{token}"
        reply(redis_client, w.reply_key, Outcome(status="stored", key=request["idempotency_key"], filename="x.txt"))
        wait_idle(w)
    assert (Path(str(w.settings.archive_dir)) / "politics" / "eu" / "x.txt").read_bytes() == b"a story"
    assert list(w.own_dir.iterdir()) == []


def test_a_path_too_long_for_one_name_is_claimed_in_a_folder_of_its_own(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis
) -> None:
    w = make_inbox_watcher(tmp_path, broker_url, redis_client)
    folder, name = "f" * 120, "n" * 120 + ".txt"
    with Running(w):
        (w.inbox / folder).mkdir(parents=True)
        (w.inbox / folder / name).write_bytes(b"long")
        [msg] = wait_queued(redis_client, 1)
        [claim_dir] = list(w.own_dir.iterdir())
        assert claim_dir.is_dir() and (claim_dir / folder / name).read_bytes() == b"long"
        key = msg["kwargs"]["request"]["idempotency_key"]
        reply(redis_client, w.reply_key, Outcome(status="stored", key=key, filename=name))
        wait_idle(w)
    assert (Path(str(w.settings.archive_dir)) / folder / name).read_bytes() == b"long"
    assert list(w.own_dir.iterdir()) == []


def test_claims_left_by_the_previous_version_and_by_this_one_are_recovered_with_their_keys(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis
) -> None:
    """An upgrade must not lose a file the previous version had claimed: its layout was
    ``<watcher>/<claim id>/<inbox folders>/<name>``; this version's is one entry per claim."""
    w = make_inbox_watcher(tmp_path, broker_url, redis_client, watcher_id="same")
    old_id, new_id = "a1" * 16, "b2" * 16
    (w.own_dir / old_id / "desk" / "eu").mkdir(parents=True)
    (w.own_dir / old_id / "desk" / "eu" / "old.txt").write_bytes(b"claimed by the old version")
    (w.own_dir / f"{new_id}_desk%2Fnew.txt").write_bytes(b"claimed by this version")
    (w.own_dir / ("c3" * 16)).mkdir()  # an empty claim folder (killed between mkdir and rename)
    secret = claim_secret(w.settings.data_dir)
    with Running(w):
        msgs = wait_queued(redis_client, 2)
        requests = {m["kwargs"]["request"]["filename"]: m["kwargs"]["request"] for m in msgs}
        assert requests["old.txt"]["idempotency_key"] == f"claim:{old_id}.{claim_token(secret, old_id)}"
        assert requests["new.txt"]["idempotency_key"] == f"claim:{new_id}.{claim_token(secret, new_id)}"
        assert requests["old.txt"]["folder_tags"] == ["desk", "eu"] and requests["new.txt"]["folder_tags"] == ["desk"]
        for name, request in requests.items():
            reply(redis_client, w.reply_key, Outcome(status="stored", key=request["idempotency_key"], filename=name))
        wait_idle(w)
    archive = Path(str(w.settings.archive_dir))
    assert (archive / "desk" / "eu" / "old.txt").read_bytes() == b"claimed by the old version"
    assert (archive / "desk" / "new.txt").read_bytes() == b"claimed by this version"
    assert list(w.own_dir.iterdir()) == []
    assert len(queued(redis_client)) == 2  # each sent once


def test_the_watcher_changes_nothing_of_watchdog_for_the_rest_of_the_process(
    tmp_path: Path, broker_url: str, redis_client: redis.Redis
) -> None:
    """Issue 20, hidden paths: the short move pairing and the overflow hook belong to the
    watcher's own observer; watchdog's classes keep their defaults for anyone else."""
    inotify = pytest.importorskip("watchdog.observers.inotify")
    grouper = pytest.importorskip("watchdog.observers.inotify_move_event_grouper")
    original_overflow = inotify.InotifyWatchGroup.on_queue_overflow
    w = make_inbox_watcher(tmp_path, broker_url, redis_client, watch_mode="inotify")
    with Running(w):
        (w.inbox / "a.txt").write_bytes(b"a story")
        wait_queued(redis_client, 1)
        assert grouper.InotifyMoveEventGrouper.delay == 0.5
        assert inotify.InotifyWatchGroup.on_queue_overflow is original_overflow
        [emitter] = w.observer.emitters if w.observer is not None else []
        emitter._inotify.on_queue_overflow()  # as watchdog's reader does on IN_Q_OVERFLOW
        assert len(w.detect.storm._times) == 1  # counted by this watcher's storm guard
