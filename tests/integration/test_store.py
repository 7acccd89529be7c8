"""The store on SQLite and PostgreSQL: idempotency per key, exact duplicates under a real
constraint with concurrent processes, and the outbox written with the change."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import func, select

from worker.models import FileSummary, IngestRequest, NormalisedDocument, PipelineBatch, StageItem, Tag
from worker.store.engine import make_engine
from worker.store.repository import DocumentStore
from worker.store.schema import Blob, Document, Duplicate, Ingestion, OutboxRow


def _store(url: str, policy: str = "link") -> DocumentStore:
    store = DocumentStore(make_engine(url), event_source="urn:test", duplicate_policy=policy)
    store.create_schema()
    return store


def _batch(text: str, key: str, filename: str = "a.txt") -> tuple[PipelineBatch, StageItem, bytes]:
    raw = text.encode()
    request = IngestRequest(text=text, filename=filename, idempotency_key=key)
    doc = NormalisedDocument(
        text=text,
        canonical_hash=hashlib.sha256(text.lower().encode()).hexdigest(),
        language="en",
        word_count=len(text.split()),
    )
    item = StageItem(document=doc, tags=[Tag(kind="topic", name="t", source="rule:t")])
    batch = PipelineBatch(request=request, key=key, summary=FileSummary.of(filename, raw), items=[item])
    return batch, item, raw


def _count(store: DocumentStore, model: type) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_document_and_its_event_commit_together(database_url: str) -> None:
    store = _store(database_url)
    batch, item, raw = _batch("Some story text", "k1")
    outcome = store.persist_document(batch, item, raw)
    assert outcome.status == "stored" and not outcome.replayed
    with store.session() as s:
        [row] = s.scalars(select(OutboxRow)).all()
        event = json.loads(row.payload)
    assert event["type"] == "org.seedworker.document.stored"
    assert event["subject"] == outcome.document_id
    assert _count(store, Blob) == 1


def test_same_key_twice_is_a_replay_not_a_second_write(database_url: str) -> None:
    store = _store(database_url)
    batch, item, raw = _batch("Some story text", "k1")
    first = store.persist_document(batch, item, raw)
    again = store.persist_document(batch, item, raw)
    assert again.replayed and again.document_id == first.document_id
    assert _count(store, Document) == 1
    assert _count(store, OutboxRow) == 1
    assert _count(store, Ingestion) == 1


def test_same_text_new_key_is_linked_duplicate(database_url: str) -> None:
    store = _store(database_url)
    first = store.persist_document(*_batch("Some story text", "k1"))
    dup = store.persist_document(*_batch("Some story text", "k2", "b.txt"))
    assert dup.status == "duplicate" and dup.duplicate_of == first.document_id
    assert _count(store, Document) == 1 and _count(store, Duplicate) == 1


def test_drop_policy_keeps_only_the_event(database_url: str) -> None:
    store = _store(database_url, policy="drop")
    store.persist_document(*_batch("Some story text", "k1"))
    dup = store.persist_document(*_batch("Some story text", "k2"))
    assert dup.status == "duplicate" and dup.document_id is None
    assert _count(store, Duplicate) == 0 and _count(store, OutboxRow) == 2


def _race(url: str, key: str, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = DocumentStore(make_engine(url), event_source="urn:test")
    barrier.wait()
    out.put(store.persist_document(*_batch("The very same text", key)).status)


def test_concurrent_workers_storing_same_text_end_with_one_document(database_url: str) -> None:
    _store(database_url)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(database_url, f"k{i}", barrier, out)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    statuses = sorted(out.get(timeout=5) for _ in procs)
    assert statuses == ["duplicate", "duplicate", "duplicate", "stored"]
    store = _store(database_url)
    assert _count(store, Document) == 1 and _count(store, OutboxRow) == 4


def test_failure_keeps_original_bytes_and_emits_failed(database_url: str) -> None:
    store = _store(database_url)
    summary = FileSummary.of("bad.bin", b"\x00\x01")
    outcome = store.persist_failure(
        key="f1", summary=summary, source="inbox", reason="binary", message="binary file", raw=b"\x00\x01"
    )
    again = store.persist_failure(
        key="f1", summary=summary, source="inbox", reason="binary", message="binary file", raw=b"\x00\x01"
    )
    assert outcome.status == "failed" and again.replayed
    with store.session() as s:
        assert s.get(Blob, summary.sha256).data == b"\x00\x01"  # type: ignore[union-attr]
        [row] = s.scalars(select(OutboxRow)).all()
    assert json.loads(row.payload)["data"]["reason"] == "binary"


def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.postgres
def test_postgres_url_without_driver_uses_psycopg(postgres_url: str) -> None:
    store = _store(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    assert store.engine.dialect.driver == "psycopg"
