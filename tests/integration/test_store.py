"""The store on SQLite and PostgreSQL: idempotency per key, exact duplicates under a real
constraint with concurrent processes, and the outbox written with the change."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.store import batch as _batch
from tests.support.store import new_store as _store
from worker.models import FileSummary, IngestRequest, NormalisedDocument, PipelineBatch, StageItem, Tag
from worker.store.engine import make_engine
from worker.store.repository import DocumentStore
from worker.store.schema import Blob, Document, Duplicate, Ingestion, OutboxRow


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


def test_every_field_of_a_document_and_its_tags_reads_back_as_written(database_url: str) -> None:
    """The write path is Core inserts keyed by column name; a key that names no column would be
    dropped without an error (``meta`` for the ``metadata`` column once was), so every column
    is written with a value that is not its default and read back through the ORM."""
    import datetime as dt

    from worker.models import Dateline

    store = _store(database_url)
    text = "WASHINGTON (AP) — The harbour reopened on Tuesday after repairs."
    request = IngestRequest(
        text=text,
        filename="harbour.txt",
        source="inbox",
        idempotency_key="k-fields",
        metadata={"path": "x/harbour.txt"},
    )
    doc = NormalisedDocument(
        text=text,
        title="Harbour reopens",
        date=dt.date(2024, 2, 6),
        date_raw="6 Feb 2024",
        dateline=Dateline(place="Washington", country="US", agency="AP", raw="WASHINGTON (AP) —"),
        author="Jane Doe",
        language="en",
        word_count=10,
        canonical_hash=hashlib.sha256(text.encode()).hexdigest(),
        format="header",
        encoding="windows-1252",
        metadata={"desk": "Metro"},
        warnings=["date_out_of_range"],
    )
    tags = [
        Tag(kind="entity", name="Washington", label="GPE", source="spacy:m", score=0.9, count=2,
            spans=[(0, 10), (20, 30)], matched="WASHINGTON", country="US"),
        Tag(kind="topic", name="transport", source="rule:transport", matched="harbour"),
    ]  # fmt: skip
    raw = text.encode()
    batch = PipelineBatch(
        request=request,
        key="k-fields",
        summary=FileSummary.of("harbour.txt", raw),
        items=[StageItem(document=doc, tags=tags)],
    )
    outcome = store.persist_document(batch, batch.items[0], raw)
    row = store.get_document(outcome.document_id or "")
    assert row is not None
    assert (row.filename, row.source, row.ingest_key, row.format, row.encoding) == (
        "harbour.txt", "inbox", "k-fields", "header", "windows-1252"
    )  # fmt: skip
    assert (row.title, row.date, row.date_raw, row.author, row.language, row.word_count) == (
        "Harbour reopens", dt.date(2024, 2, 6), "6 Feb 2024", "Jane Doe", "en", 10
    )  # fmt: skip
    assert (row.place, row.country, row.agency, row.dateline_raw) == ("Washington", "US", "AP", "WASHINGTON (AP) —")
    assert row.meta == {"path": "x/harbour.txt", "desk": "Metro"}
    assert row.warnings == ["date_out_of_range"]
    assert row.text == text and row.canonical_hash == doc.canonical_hash
    assert row.raw_sha256 == hashlib.sha256(raw).hexdigest() and row.story_id and row.created_at is not None
    assert [(t.kind, t.name, t.label, t.source, t.score, t.count, t.spans, t.matched, t.country) for t in row.tags] == [
        ("entity", "Washington", "GPE", "spacy:m", 0.9, 2, [[0, 10], [20, 30]], "WASHINGTON", "US"),
        ("topic", "transport", None, "rule:transport", None, 1, [], "harbour", None),
    ]


def test_a_process_opening_the_database_while_another_writes_waits_for_wal(tmp_path: Path) -> None:
    """A new database is switched to WAL by whoever connects first.  A connection that finds it
    still in rollback mode while another holds a write lock used to get "database is locked" at
    once (SQLite does not wait on that upgrade): the publisher died of it at start.  Now it waits."""
    import sqlite3
    import threading
    import time

    path = tmp_path / "fresh.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.5, writer.execute, ["COMMIT"]).start()
    started = time.monotonic()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    finally:
        engine.dispose()
        writer.close()
    assert time.monotonic() - started >= 0.4  # it waited for the writer, it did not fail
