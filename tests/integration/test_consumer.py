"""The consumer API against the real embedded Redis: ack after success, bounded retries,
dead letters, and taking over the messages of a consumer killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from worker.consumer import CloudEvent, ConsumeStats, consume

STREAM = "test:events"
DEAD = STREAM + ":dead"
REPO = Path(__file__).resolve().parents[2]


def _event(name: str = "document.stored", subject: str = "doc_1") -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:test",
        "type": f"org.seedworker.{name}",
        "subject": subject,
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": {"id": subject},
    }


def _add(client: redis.Redis, n: int) -> list[str]:
    ids = []
    for i in range(n):
        ev = _event(subject=f"doc_{i}")
        client.xadd(STREAM, {"id": str(ev["id"]), "type": str(ev["type"]), "event": json.dumps(ev)})
        ids.append(str(ev["id"]))
    return ids


def _run(
    client: redis.Redis,
    handler: Callable[[CloudEvent], object],
    until: Callable[[], bool],
    timeout: float = 30.0,
    **kw: object,
) -> ConsumeStats:
    """consume() in a thread until ``until()`` holds (or the timeout passes)."""
    stop = threading.Event()
    result: list[ConsumeStats] = []
    kw.setdefault("group", "g")
    kw.setdefault("consumer", "c1")
    thread = threading.Thread(
        target=lambda: result.append(
            consume(handler, stream=STREAM, client=client, stop=stop, block_ms=100, handle_signals=False, **kw)  # type: ignore[arg-type]
        )
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        time.sleep(0.05)
    reached = until()
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert reached, "condition not reached in time"
    return result[0]


def _pending(client: redis.Redis, group: str = "g") -> int:
    return int(client.xpending(STREAM, group)["pending"])


def test_failing_handler_is_retried_then_acked(redis_client: redis.Redis) -> None:
    ids = _add(redis_client, 3)
    calls: Counter[str] = Counter()
    done: set[str] = set()

    def handler(event: CloudEvent) -> None:
        calls[event.id] += 1
        if event.id == ids[1] and calls[event.id] <= 2:
            raise RuntimeError("downstream busy")
        done.add(event.id)

    stats = _run(redis_client, handler, lambda: len(done) == 3, retry_delay_ms=100)
    assert calls == {ids[0]: 1, ids[1]: 3, ids[2]: 1}
    assert stats.handled == 3 and stats.failed_attempts == 2 and stats.dead_lettered == 0
    assert _pending(redis_client) == 0
    assert not redis_client.exists(DEAD)


def test_permanently_failing_event_is_dead_lettered_with_its_error(redis_client: redis.Redis) -> None:
    ids = _add(redis_client, 3)
    calls: Counter[str] = Counter()

    def handler(event: CloudEvent) -> None:
        calls[event.id] += 1
        if event.id == ids[0]:
            raise ValueError("cannot index this one")

    stats = _run(redis_client, handler, lambda: bool(redis_client.exists(DEAD)), retry_delay_ms=100, max_retries=2)
    assert calls[ids[0]] == 3  # one delivery and two retries
    assert calls[ids[1]] == calls[ids[2]] == 1
    [(_, entry)] = redis_client.xrange(DEAD)
    assert entry[b"id"].decode() == ids[0]
    assert entry[b"error"] == b"ValueError: cannot index this one"
    assert entry[b"deliveries"] == b"3"
    assert json.loads(entry[b"event"])["id"] == ids[0]
    assert stats.dead_lettered == 1 and stats.handled == 2
    assert _pending(redis_client) == 0


def test_malformed_event_goes_straight_to_dead_letters(redis_client: redis.Redis) -> None:
    redis_client.xadd(STREAM, {"id": "x", "event": b"{not json"})
    seen: list[str] = []
    _run(redis_client, lambda e: seen.append(e.id), lambda: bool(redis_client.exists(DEAD)))
    assert seen == []
    [(_, entry)] = redis_client.xrange(DEAD)
    assert entry[b"error"].startswith(b"malformed event")
    assert _pending(redis_client) == 0


def test_unknown_attributes_of_newer_events_are_kept(redis_client: redis.Redis) -> None:
    ev = _event()
    ev["seedworkerfuture"] = "yes"
    redis_client.xadd(STREAM, {"id": str(ev["id"]), "event": json.dumps(ev)})
    got: list[CloudEvent] = []
    _run(redis_client, got.append, lambda: bool(got))
    assert got[0].model_dump()["seedworkerfuture"] == "yes"


_KILLABLE = textwrap.dedent(
    """
    import sys, time
    from worker.consumer import consume

    log, stuck = sys.argv[2], sys.argv[3]

    def handler(event):
        with open(log, "a") as fh:
            fh.write(f"start {event.id}\\n")
        if event.id == stuck:
            time.sleep(3600)  # killed here, mid-handler
        with open(log, "a") as fh:
            fh.write(f"done {event.id}\\n")

    consume(handler, group="g", consumer="doomed", stream="test:events", redis_url=sys.argv[1], block_ms=200)
    """
)


def _consumer_process(broker_url: str, log: Path, stuck: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    return subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, broker_url, str(log), stuck],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
    )


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def test_messages_of_a_killed_consumer_are_claimed_by_another(
    broker_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    ids = _add(redis_client, 5)
    log = tmp_path / "doomed.log"
    proc = _consumer_process(broker_url, log, stuck=ids[2])
    try:
        _wait_for(lambda: log.exists() and f"start {ids[2]}" in log.read_text(), 60, "the doomed consumer to hang")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    lines = log.read_text().splitlines()
    assert f"done {ids[2]}" not in lines
    assert _pending(redis_client) >= 1  # the stuck message (and whatever it had read) is still pending

    handled: list[str] = []
    stats = _run(
        redis_client,
        lambda e: handled.append(e.id),
        lambda: set(handled) >= set(ids) - {i for i in ids if f"done {i}" in lines},
        consumer="rescuer",
        claim_idle_ms=300,
    )
    assert ids[2] in handled and stats.claimed >= 1
    # The whole story is visible by id: every event done once or more, the stuck one twice started.
    done_by_doomed = {line.split()[1] for line in lines if line.startswith("done ")}
    assert done_by_doomed | set(handled) == set(ids)
    assert f"start {ids[2]}" in lines and ids[2] in handled  # a repeat, detectable by its id
    assert _pending(redis_client) == 0


def test_a_killed_consumer_that_keeps_dying_is_not_retried_forever(redis_client: redis.Redis) -> None:
    """A message delivered more than max_retries + 1 times (it kills its consumers) is parked."""
    [poison] = _add(redis_client, 1)
    redis_client.xgroup_create(STREAM, "g", id="0")
    for name in ("a", "b", "c"):  # three consumers took it and died without acking
        redis_client.xreadgroup("g", name, {STREAM: ">" if name == "a" else "0"}, count=1)
        if name != "a":
            redis_client.xclaim(STREAM, "g", name, 0, [redis_client.xrange(STREAM)[0][0]])
    calls: list[str] = []
    _run(
        redis_client,
        lambda e: calls.append(e.id),
        lambda: bool(redis_client.exists(DEAD)),
        max_retries=2,
        claim_idle_ms=0,
    )
    assert calls == []
    [(_, entry)] = redis_client.xrange(DEAD)
    assert entry[b"id"].decode() == poison and int(entry[b"deliveries"]) == 4


def test_sigterm_stops_the_consumer_cleanly(broker_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    ids = _add(redis_client, 2)
    log = tmp_path / "c.log"
    proc = _consumer_process(broker_url, log, stuck="none")
    try:
        _wait_for(lambda: log.exists() and log.read_text().count("done ") == 2, 60, "both events handled")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert _pending(redis_client) == 0
    assert sorted(line.split()[1] for line in log.read_text().splitlines() if line.startswith("done")) == sorted(ids)


def _run_example(args: list[str], timeout: float = 60) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def test_examples_consume_and_acknowledge(broker_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    ids = _add(redis_client, 2)
    out = _run_example(
        [
            "examples/consume_events.py",
            "--redis-url",
            broker_url,
            "--stream",
            STREAM,
            "--group",
            "ex",
            "--db",
            str(tmp_path / "ex.db"),
            "--count",
            "2",
        ]
    )
    assert [line.split()[-1] for line in out.splitlines() if line.startswith("stored")] == ids
    raw_url = broker_url.replace("redis+socket://", "unix://")
    out = _run_example(["examples/consume_raw.py", raw_url, "--stream", STREAM, "--group", "raw", "--count", "2"])
    assert [line.split()[-1] for line in out.splitlines()] == ids
    assert _pending(redis_client, "ex") == _pending(redis_client, "raw") == 0


def test_pending_entries_trimmed_from_the_stream_are_acknowledged(redis_client: redis.Redis) -> None:
    _add(redis_client, 3)
    redis_client.xgroup_create(STREAM, "g", id="0")
    redis_client.xreadgroup("g", "gone", {STREAM: ">"}, count=3)  # a consumer takes all three, then dies
    redis_client.xtrim(STREAM, maxlen=1, approximate=False)  # two of them are trimmed away meanwhile
    handled: list[str] = []
    _run(redis_client, lambda e: handled.append(e.id), lambda: _pending(redis_client) == 0, claim_idle_ms=0)
    assert len(handled) == 1
    assert not redis_client.exists(DEAD)
