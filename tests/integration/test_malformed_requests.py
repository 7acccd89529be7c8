"""Every request, however malformed, ends with exactly one typed outcome and its event, and a bad
request in a batch does not sink its neighbours (issue 19 §6).  Sent by a plain Celery app, as
any producer can, to a real worker on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celery
import pytest
from sqlalchemy import select

from tests.support.faults import FAST, article
from tests.support.stack import FAILED, Stack
from worker.store.engine import make_engine
from worker.store.schema import Ingestion, OutboxRow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def worker_stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    stack = Stack(tmp_path, broker_url, database_url, extra_env=dict(FAST))
    stack.inbox.mkdir(parents=True)
    stack.start("worker", "worker", "--concurrency=2", f"--node-name=w1@{tmp_path.name}")
    stack.start("publisher", "publish")
    try:
        stack.wait_for_worker(120)
    except BaseException:
        stack.stop()
        raise
    yield stack
    stack.stop()


def _ingestions(url: str) -> dict[str, tuple[str, str | None]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Ingestion.key, Ingestion.status, Ingestion.outcome)).all()
    finally:
        engine.dispose()
    return {key: (status, (outcome or {}).get("reason")) for key, status, outcome in rows}


def _failed_events(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return len(conn.execute(select(OutboxRow.seq).where(OutboxRow.type == FAILED)).all())
    finally:
        engine.dispose()


def test_every_malformed_request_ends_with_one_typed_outcome(worker_stack: Stack) -> None:
    stack = worker_stack
    app = celery.Celery("malformed-test", broker=stack.broker_url)
    rng = random.Random(19)

    def good(key: str) -> dict[str, Any]:
        return {"text": article(rng, len(key)).decode(), "filename": f"{key}.txt", "idempotency_key": key}

    def send(task: str, **kwargs: Any) -> str:
        return str(app.send_task(task, kwargs=kwargs, queue="seedworker").id)

    ingest, batch = "seedworker.ingest", "seedworker.ingest_batch"
    invalid: dict[str, str] = {}  # key of the outcome -> what was wrong
    invalid["m-text-surrogate"] = send(ingest, request={**good("m-text-surrogate"), "text": "bad \ud800 text"})
    invalid["m-source-surrogate"] = send(ingest, request={**good("m-source-surrogate"), "source": "s\ud800"})
    invalid["m-filename-surrogate"] = send(ingest, request={**good("m-filename-surrogate"), "filename": "a\ud800.txt"})
    invalid["m-filename-nul"] = send(ingest, request={**good("m-filename-nul"), "filename": "a\x00.txt"})
    invalid["m-source-nul"] = send(ingest, request={**good("m-source-nul"), "source": "a\x00b"})
    invalid["m-metadata-10mb"] = send(ingest, request={**good("m-metadata-10mb"), "metadata": {"x": "y" * 10_000_000}})
    invalid["m-reply-to-queue"] = send(ingest, request={**good("m-reply-to-queue"), "reply_to": "seedworker"})
    hash_key = send(ingest, request={**good("m-key-hash"), "idempotency_key": "m-key#L1"})
    wrong_kw = send(ingest, req=good("m-wrong-keyword"))
    no_args = send(ingest)
    none_batch = send(batch, requests=None)
    string_batch = send(batch, requests="x" * 2000)
    huge_batch = send(batch, requests=[good(f"m-huge-{i}") for i in range(501)])
    send(batch, requests=[good("m-neighbour-1"), {**good("m-long-key"), "idempotency_key": "k" * 300}])
    send(batch, requests=[good("m-neighbour-2"), {**good("m-batch-surrogate"), "text": "x\ud800"}])
    by_task = {
        f"task:{wrong_kw}": "wrong keyword",
        f"task:{no_args}": "no arguments",
        f"task:{none_batch}": "requests=None",
        f"task:{string_batch}": "requests='x'*2000",
        f"task:{huge_batch}": "501 requests",
        f"task:{hash_key}": "'#' in the key (keys are not ours to be told apart from a record's)",
    }
    # The 300-character key cannot be the outcome's key: the request's place in its batch is.
    invalid["m-batch-surrogate"] = "a lone surrogate beside a good request"
    expected_failed = [*invalid, *by_task, "long-key"]
    expected_stored = {"m-neighbour-1", "m-neighbour-2"}

    def done() -> dict[str, tuple[str, str | None]] | None:
        rows = _ingestions(stack.database_url)
        named = {*invalid, *by_task, *expected_stored} <= rows.keys()
        return rows if named and len(rows) >= len(expected_failed) + len(expected_stored) else None

    rows = stack.wait_for(done, 180, what="an outcome for every request")
    time.sleep(2)  # anything more (a second outcome, a request's own row out of 2,000) shows now
    rows = _ingestions(stack.database_url)
    assert {k for k, (status, _) in rows.items() if status == "stored"} == expected_stored
    failed = {k: reason for k, (status, reason) in rows.items() if status == "failed"}
    for key in [*invalid, *by_task]:
        assert failed.get(key) == "invalid_request", (key, invalid.get(key) or by_task.get(key), failed)
    [long_key] = [k for k in failed if k.startswith("task:") and k.endswith("#1") and k not in by_task]
    assert failed[long_key] == "invalid_request"
    assert len(failed) == len(expected_failed), sorted(failed)  # 2,000 or 501 requests: one outcome each message
    stack.wait_for(lambda: _failed_events(stack.database_url) == len(failed), 30, what="one failed event each")
    counts = Counter(e["type"] for e in stack.wait_for_events(len(rows), 60))
    assert counts[FAILED] == len(failed)
    client = stack.redis()
    assert client.ttl("seedworker") == -2 or client.ttl("seedworker") == -1  # no EXPIRE set on the queue
    assert client.llen("seedworker") == 0  # and no reply pushed into it
    client.close()
