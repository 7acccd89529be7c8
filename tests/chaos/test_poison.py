"""Poison messages: a message that would kill the worker ends as exactly one failed outcome,
while the documents around it keep flowing (issue 19 §2).

* A request nested 900 levels deep used to kill the worker's main process (RecursionError while
  pickling the arguments for the pool), be restored, and kill the restarted worker again,
  forever.  It is refused in the main process, before the pool, and recorded ``invalid_request``.
* A message whose run ends its pool process (``os._exit``, injected through the documented
  test setting ``SEEDWORKER_TEST_FAULTS``) used to be redelivered forever
  (``reject_on_worker_lost``).  The second death dead-letters it (``seedworker:dead-letter``) and
  records ``worker_lost``; in a batch, only the request that kills is failed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import celery
import pytest

from tests.support.faults import FAST, article
from tests.support.stack import FAILED, STORED, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MARKER = "POISON-EXIT"
FAULTS = f"seedworker.ingest=exit@{MARKER},seedworker.ingest_batch=exit@{MARKER}"


@pytest.fixture
def poison_stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    stack = Stack(tmp_path, broker_url, database_url, extra_env={**FAST, "SEEDWORKER_TEST_FAULTS": FAULTS})
    yield stack
    stack.stop()


def _producer(broker_url: str) -> celery.Celery:
    return celery.Celery("poison-test", broker=broker_url)


def _request(text: str, key: str, **fields: object) -> dict[str, object]:
    return {"text": text, "filename": f"{key}.txt", "idempotency_key": key, **fields}


def _by_key(stack: Stack) -> dict[str, list[dict[str, object]]]:
    grouped: dict[str, list[dict[str, object]]] = {}
    for event in stack.events():
        grouped.setdefault(str(event["data"].get("key") or event["data"].get("filename")), []).append(event)
    return grouped


def _start(stack: Stack, concurrency: int) -> None:
    """A worker and the publisher, no watcher: the tests send their messages themselves."""
    stack.inbox.mkdir(parents=True)
    stack.start("worker", "worker", f"--concurrency={concurrency}", f"--node-name=w1@{stack.root.name}")
    stack.start("publisher", "publish")
    stack.wait_for_worker(120)


def test_deeply_nested_request_is_refused_before_the_pool(poison_stack: Stack) -> None:
    stack = poison_stack
    _start(stack, concurrency=1)
    worker_pid = stack.procs["worker"].pid
    app = _producer(stack.broker_url)
    deep = json.loads("[" * 900 + "]" * 900)

    rng = random.Random(4)
    app.send_task(
        "seedworker.ingest",
        kwargs={"request": _request("a poison", "poison-deep", metadata={"x": deep})},
        queue="seedworker",
    )
    for i in range(3):
        app.send_task(
            "seedworker.ingest", kwargs={"request": _request(article(rng, i).decode(), f"good-{i}")}, queue="seedworker"
        )
    stored = stack.wait_for_events(3, 120, type=STORED)
    failed = stack.wait_for_events(1, 60, type=FAILED)
    assert {e["data"]["filename"] for e in stored} == {f"good-{i}.txt" for i in range(3)}
    [poison] = failed
    assert poison["data"]["reason"] == "invalid_request"
    assert "deeper than" in poison["data"]["message"]
    assert poison["data"]["filename"] == "poison-deep.txt"
    time.sleep(2)  # a redelivery would show as a second event or a dead worker
    stack.check_alive()
    assert stack.procs["worker"].pid == worker_pid
    assert len(stack.events()) == 4
    client = stack.redis()
    assert client.llen("seedworker") == 0
    assert client.hlen("unacked") == 0
    client.close()


def test_message_that_kills_its_pool_process_twice_is_dead_lettered(poison_stack: Stack) -> None:
    stack = poison_stack
    _start(stack, concurrency=2)
    app = _producer(stack.broker_url)

    rng = random.Random(5)
    app.send_task(
        "seedworker.ingest",
        kwargs={"request": _request(f"this text names {MARKER}", "poison-exit")},
        queue="seedworker",
    )
    for i in range(4):
        app.send_task(
            "seedworker.ingest", kwargs={"request": _request(article(rng, i).decode(), f"good-{i}")}, queue="seedworker"
        )
    stored = stack.wait_for_events(4, 180, type=STORED)
    [failed] = stack.wait_for_events(1, 180, type=FAILED)
    assert {e["data"]["filename"] for e in stored} == {f"good-{i}.txt" for i in range(4)}
    assert failed["data"]["reason"] == "worker_lost"
    assert failed["data"]["filename"] == "poison-exit.txt"
    client = stack.redis()
    dead = [json.loads(raw) for raw in client.lrange("seedworker:dead-letter", 0, -1)]
    assert [(d["task"], d["deaths"]) for d in dead] == [("seedworker.ingest", 2)]
    assert MARKER in dead[0]["body"]
    time.sleep(3)  # nothing redelivered: still exactly one outcome
    assert len([e for e in stack.events() if e["type"] == FAILED]) == 1
    assert client.llen("seedworker") == 0
    client.close()
    stack.check_alive()


def test_batch_with_a_killing_file_fails_only_that_file(poison_stack: Stack) -> None:
    stack = poison_stack
    stack.start_all(concurrency=2)

    rng = random.Random(6)
    # Written first, renamed in together: the watcher sends them as one ingest_batch message.
    stage = stack.root / "stage"
    stage.mkdir()
    names = [f"good-{i}.txt" for i in range(5)] + [f"{MARKER}.txt"]
    for i, name in enumerate(names):
        (stage / name).write_bytes(article(rng, 100 + i))
    for name in names:
        (stage / name).rename(stack.inbox / name)
    stored = stack.wait_for_events(5, 180, type=STORED)
    [failed] = stack.wait_for_events(1, 180, type=FAILED)
    assert {e["data"]["filename"] for e in stored} == set(names[:5])
    assert failed["data"]["filename"] == f"{MARKER}.txt"
    assert failed["data"]["reason"] == "worker_lost"
    stack.wait_for((stack.failed / f"{MARKER}.txt").exists, 60, what="the poison file in failed/")
    report = json.loads((stack.failed / f"{MARKER}.txt.error.json").read_text())
    assert report["reason"] == "worker_lost"
    stack.wait_for(lambda: len(list(stack.archive.rglob("good-*.txt"))) == 5, 60, what="the good files archived")
    stack.check_alive()
