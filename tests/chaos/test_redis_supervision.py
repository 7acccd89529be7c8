"""The embedded Redis is supervised (issue 19 §4): ``seedworker run`` restarts the Redis it
started when it dies, the AOF brings the queue back, and every process resumes at once,
without waiting for the watcher's 10-minute re-send; the watcher does not flood its log
meanwhile, and ``health`` says who restarts the broker instead of telling the operator to
start ``seedworker run``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.faults import (
    FAST,
    account_for,
    count_ingestions,
    drop_all,
    expected_counts,
    make_inputs,
    private_redis,
)
from tests.support.stack import Stack
from worker.broker import EmbeddedRedis, resolve_broker_url
from worker.errors import BrokerUnavailable

pytestmark = pytest.mark.e2e


def _json_lines(text: str) -> list[dict[str, object]]:
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def test_redis_killed_under_run_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    """kill -9 of the embedded redis-server while 400 files flow through ``seedworker run``:
    every file ends exactly once, its event on the stream, long before the 10-minute re-send."""
    database_url = f"sqlite:///{tmp_path / 'data' / 'seedworker.db'}"
    # No broker URL: `run` starts (and owns) the embedded Redis in DATA_DIR/redis.
    stack = Stack(tmp_path, "", database_url, extra_env={**FAST, "SEEDWORKER_BROKER_URL": ""})
    stack.inbox.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(tmp_path / "data" / "redis")
    stack.start("run", "run", "--grace", "20")
    try:
        stack.wait_for(server.is_running, 60, what="the embedded Redis")
        stack.broker_url = server.url
        stack.wait_for_worker(timeout=120)
        inputs = make_inputs(400, prefix="redis9")  # enough that the kill lands mid-flow on a fast machine
        drop_all(stack, inputs)
        stack.wait_for(lambda: count_ingestions(database_url) >= 10, 90, what="10 ingestions")
        old_pid = server.pid()
        assert old_pid is not None
        killed_at = time.monotonic()
        server.kill()  # SIGKILL, AOF everysec as configured by default: the last second may be lost
        done_at_kill = count_ingestions(database_url)
        stack.wait_for(lambda: server.pid() not in (None, old_pid) and server.is_running(), 60, what="Redis restarted")
        result = account_for(stack, inputs, timeout=240)
        took = time.monotonic() - killed_at
        print(f"redis killed after {done_at_kill} ingestions; all {len(inputs)} accounted for {took:.1f}s later")
        assert done_at_kill < len(inputs), "the kill must land mid-flow"
        assert result.counts == expected_counts(inputs)
        assert took < 240, "recovery must not wait for the 10-minute re-send"

        log = stack.tail("run", 1_000_000)
        records = _json_lines(log)
        assert sum(r.get("event") == "embedded Redis died, restarting" for r in records) == 1
        # The watcher says the broker is unreachable once, then at most every 30 s: not per tick.
        events = [str(r.get("event", "")) for r in records]
        unreachable = [e for e in events if e.startswith("broker ") and "unreachable" in e]
        assert len(unreachable) <= 1 + int(took // 30) + 1, unreachable[:5]
        assert "cannot read replies" not in events and "broker unavailable, will resend" not in events
    finally:
        stack.kill("run", signal.SIGTERM, timeout=60)
    assert not server.is_running(), "run stops the Redis it started (and restarted)"
    assert not (tmp_path / "data" / "redis" / "supervisor.pid").exists()


def test_a_message_lost_with_redis_is_resent_soon_after_it_is_back(tmp_path: Path) -> None:
    """A message the killed Redis had not yet written to its AOF is gone (``everysec``): the
    watcher, which saw the outage, re-sends its unanswered claims once Redis answers again,
    instead of after WATCH_RESEND_SECONDS (10 min)."""
    with private_redis() as server:
        stack = Stack(tmp_path, server.url, f"sqlite:///{tmp_path / 'db.sqlite'}", extra_env=FAST)
        stack.inbox.mkdir(parents=True, exist_ok=True)
        stack.start("publisher", "publish")
        stack.start("watcher", "watch", "--watcher-id=test-watcher")
        try:
            stack.drop("lost.txt", b"Harbour report\n\nThe ferries left the northern harbour on time today.\n")
            client = stack.redis()
            stack.wait_for(lambda: client.llen("seedworker") == 1, 60, what="the message in the queue")
            client.delete("seedworker")  # the last second before the crash, never written
            client.close()
            server.kill()
            time.sleep(1.0)
            server.start()
            back = time.monotonic()
            stack.start("worker", "worker", "--concurrency=1", f"--node-name=w1@{tmp_path.name}")
            stack.wait_for_worker(timeout=120)
            stack.wait_for_events(1, timeout=90)
            took = time.monotonic() - back
            print(f"stored {took:.1f}s after Redis came back")
            assert took < 90
            events = [str(r.get("event")) for r in _json_lines(stack.tail("watcher", 10_000))]
            assert "broker reachable again" in events and "resending after the outage" in events
            # The event comes from the publisher; the file is archived when the watcher reads the reply.
            stack.wait_for((stack.archive / "lost.txt").exists, 60, what="lost.txt archived")
        finally:
            stack.stop()


def test_health_names_the_supervisor_while_its_redis_is_down(tmp_path: Path) -> None:
    """While `seedworker run` restarts its Redis, the broker error says so (and not "start it
    with `seedworker run`"); without a live supervisor the old advice stands."""
    redis_dir = tmp_path / "data" / "redis"
    redis_dir.mkdir(parents=True)
    server = EmbeddedRedis(redis_dir)
    server.mark_supervised()  # this test process plays the supervisor
    with pytest.raises(BrokerUnavailable, match=rf"`seedworker run` \(pid {os.getpid()}\) is restarting it"):
        resolve_broker_url("", redis_dir, "everysec", start=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env["SEEDWORKER_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "health", "--no-workers"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "is restarting it" in said and "start it with" not in said, said
    server.unmark_supervised()
    with pytest.raises(BrokerUnavailable, match="start it with `seedworker run`"):
        resolve_broker_url("", redis_dir, "everysec", start=False)
