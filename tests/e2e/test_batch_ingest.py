"""Batches (``SEEDWORKER_WATCH_BATCH``): a burst of small files travels in few
``seedworker.ingest_batch`` messages, and every file still gets exactly its own outcome,
event and fate on disk; a redelivered batch repeats nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.corpus import article
from tests.support.stack import DUPLICATE, FAILED, STORED, Stack, count_rows
from worker.app import create_app
from worker.models import IngestRequest
from worker.settings import Settings
from worker.store.schema import Document, Ingestion, OutboxRow

REPLIES = "seedworker:replies:test"  # replies go only to lists under the project's prefix
pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path, broker_url, database_url, extra_env={"SEEDWORKER_WATCH_BATCH": "8"}).start_all()
    yield s
    s.stop()


def _article(i: int) -> bytes:
    """Distinct news-like articles (the benchmark's corpus), far from near-duplicates."""
    return article(i, seed=21)


def test_a_burst_travels_in_batches_and_every_file_gets_its_own_outcome(stack: Stack, database_url: str) -> None:
    staging = stack.root / "staging"
    staging.mkdir()
    names = []
    for i in range(20):
        (staging / f"story{i:02}.txt").write_bytes(_article(i))
        names.append(f"story{i:02}.txt")
    (staging / "again.txt").write_bytes(_article(3))  # an exact duplicate of story03
    (staging / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)  # fails alone, the rest is unaffected
    for path in sorted(staging.iterdir()):
        os.rename(path, stack.inbox / path.name)

    stack.wait_for_events(22, timeout=120)
    events = stack.events()
    by_type: dict[str, list[str]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e["data"]["filename"])
    # again.txt and story03.txt hold the same text: whichever is stored first, the other is its duplicate.
    [duplicate] = by_type[DUPLICATE]
    assert duplicate in ("again.txt", "story03.txt")
    assert sorted(by_type[STORED] + by_type[DUPLICATE]) == sorted([*names, "again.txt"])
    assert by_type[FAILED] == ["binary.txt"]
    assert len({e["id"] for e in events}) == 22

    stack.wait_for(lambda: len(list(stack.archive.rglob("*.txt"))) == 21, timeout=60, what="21 files archived")
    stack.wait_for(lambda: list(stack.failed.rglob("binary.txt")), timeout=60, what="binary.txt in failed/")
    assert not [p for p in stack.inbox.rglob("*") if p.is_file()]
    assert count_rows(database_url, Document) == 20
    worker_log = stack.logs["worker"].read_text(errors="replace")
    assert "seedworker.ingest_batch" in worker_log  # the burst really went through the batch task


def test_a_redelivered_batch_repeats_no_document_and_no_event(stack: Stack, database_url: str) -> None:
    app = create_app(Settings(_env_file=None), stack.broker_url)  # type: ignore[call-arg]
    requests = [
        IngestRequest.from_bytes(
            _article(100 + i), filename=f"api{i}.txt", idempotency_key=f"client:batch-{i}", reply_to=REPLIES
        ).model_dump(mode="json", exclude_none=True)
        for i in range(3)
    ]
    app.send_task("seedworker.ingest_batch", kwargs={"requests": requests})
    stack.wait_for_events(3, timeout=120, type=STORED)
    client = stack.redis()
    try:
        first = json.loads(stack.wait_for(lambda: client.rpop(REPLIES), timeout=30, what="first reply"))
        assert sorted(o["status"] for o in first["outcomes"]) == ["stored"] * 3
        app.send_task("seedworker.ingest_batch", kwargs={"requests": requests})  # as if redelivered
        again = json.loads(stack.wait_for(lambda: client.rpop(REPLIES), timeout=60, what="second reply"))
    finally:
        client.close()
    assert all(o["replayed"] for o in again["outcomes"])
    assert {o["document_id"] for o in again["outcomes"]} == {o["document_id"] for o in first["outcomes"]}
    # The reply comes after the commit: no new outbox row means no new event, ever.
    assert count_rows(database_url, OutboxRow) == 3
    assert len(stack.events()) == 3
    assert count_rows(database_url, Document) == 3
    assert count_rows(database_url, Ingestion) == 3
