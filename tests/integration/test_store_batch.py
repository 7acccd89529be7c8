"""The store's batch path (``DocumentStore.persist_many``, one transaction for many outcomes)
against the per-document path (one transaction each), on SQLite and PostgreSQL: the same
outcomes, rows and events on the same inputs; one refused document does not cost the others;
a repeated batch is a replay."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select, text
from sqlalchemy.exc import ProgrammingError

from bench import corpus
from tests.support.corpus import near_copy, typo_copy
from tests.support.paths import EXAMPLE
from worker import process
from worker.errors import StoreUnavailable
from worker.models import FileSummary, IngestRequest, Outcome, PipelineBatch, RecordFailure, StageItem, Tag
from worker.pipeline.dedup import DedupParams
from worker.pipeline.normalise import normalise
from worker.store.engine import make_engine
from worker.store.near_index import NearDuplicateIndex, _lock_key
from worker.store.repository import DocumentStore, DocumentWrite, FailureWrite
from worker.store.schema import (
    Base,
    Blob,
    Document,
    Duplicate,
    Failure,
    Ingestion,
    MinhashBand,
    OutboxRow,
    TagRow,
    table_of,
)

ARTICLE = EXAMPLE.read_text(encoding="utf-8")
MAX_BYTES = 1_000_000


def _store(url: str, policy: str = "link") -> DocumentStore:
    store = DocumentStore(
        make_engine(url), event_source="urn:test", duplicate_policy=policy, near=NearDuplicateIndex(DedupParams())
    )
    store.create_schema()
    return store


def _request(text_: str, key: str, filename: str) -> PipelineBatch:
    raw = text_.encode()
    request = IngestRequest(text=text_, filename=filename, idempotency_key=key, metadata={"path": filename})
    batch = PipelineBatch(request=request, key=key, summary=FileSummary.of(filename, raw))
    if text_.strip():
        tags = [
            Tag(kind="topic", name="politics", source="rule:politics", spans=[(0, 4)]),
            Tag(kind="entity", name=key, label="PERSON", source="ner"),
        ]
        batch.items.append(StageItem(document=normalise(raw, filename=filename), tags=tags))
    return batch


def _inputs() -> list[PipelineBatch]:
    """Stored, exact copy, near copies (of a stored document and of one in the same batch),
    unrelated texts, a repeated key and a request with a failure of its own."""
    other = corpus.article(7).decode()
    batches = [
        _request(ARTICLE, "k-original", "original.txt"),
        _request("A short unrelated note about the weather in Lisbon and nothing else at all.", "k-note", "n.txt"),
        _request(ARTICLE, "k-exact", "exact.txt"),
        _request(near_copy(ARTICLE), "k-near", "near.txt"),
        _request(other, "k-other", "other.txt"),
        _request(typo_copy(other, seed=3), "k-other-typo", "other-typo.txt"),
        _request(ARTICLE, "k-original", "original.txt"),  # the same key again: a replay
    ]
    failed = _request("", "k-failed", "empty.txt")
    failed.failures.append(RecordFailure(record=None, reason="empty", message="no text", details={}))
    batches.append(failed)
    return batches


def _writes(batches: list[PipelineBatch]) -> list[DocumentWrite | FailureWrite]:
    return [w for b in batches for w in process._writes(b, max_bytes=MAX_BYTES)]


def _per_document(store: DocumentStore, writes: list[DocumentWrite | FailureWrite]) -> list[Outcome]:
    """The per-document path: one transaction per outcome, as before batches."""
    out = []
    for w in writes:
        if isinstance(w, DocumentWrite):
            out.append(store.persist_document(w.batch, w.item, w.raw))
        else:
            out.append(
                store.persist_failure(
                    key=w.key,
                    summary=w.summary,
                    source=w.source,
                    reason=w.reason,
                    message=w.message,
                    details=w.details,
                    raw=w.raw,
                )
            )
    return out


def _rows(engine: Engine, model: type[Base], order: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(table_of(model)).order_by(*order)).mappings().all()
    return [
        {k: (v.hex() if isinstance(v, bytes) else v) for k, v in row.items() if k not in ("created_at", "seq")}
        for row in rows
    ]


def _snapshot(store: DocumentStore, outcomes: list[Outcome]) -> str:
    """Everything the store wrote, with generated ids named by order of appearance."""
    e = store.engine
    outbox = []
    for row in _rows(e, OutboxRow, [OutboxRow.seq]):
        event = json.loads(row.pop("payload"))
        del event["id"], event["time"]
        row.pop("event_id")
        outbox.append({**row, "event": event})
    documents = _rows(e, Document, [Document.ingest_key])
    key_of = {d["id"]: d["ingest_key"] for d in documents}
    state = {
        "outcomes": [o.model_dump(mode="json") for o in outcomes],
        "documents": documents,
        "tags": sorted(_rows(e, TagRow, [TagRow.id]), key=lambda r: (key_of[r["document_id"]], r["kind"], r["name"])),
        "bands": sorted(_rows(e, MinhashBand, []), key=lambda r: (key_of[r["document_id"]], r["band"])),
        "duplicates": _rows(e, Duplicate, [Duplicate.ingest_key]),
        "failures": _rows(e, Failure, [Failure.ingest_key]),
        "ingestions": _rows(e, Ingestion, [Ingestion.key]),
        "blobs": _rows(e, Blob, [Blob.sha256]),
        "outbox": outbox,
    }
    for row in state["tags"]:
        del row["id"]
    dumped = json.dumps(state, sort_keys=True, default=str)
    names: dict[str, str] = {}
    for ident in re.findall(r"\b(?:doc|dup|fail|story)_[0-9a-f]{32}\b", dumped):
        names.setdefault(ident.split("_", 1)[1], f"#{len(names)}")
    return re.sub(r"\b(doc|dup|fail|story)_([0-9a-f]{32})\b", lambda m: f"{m[1]}{names[m[2]]}", dumped)


def _wipe(store: DocumentStore) -> None:
    with store.session() as s:
        for table in reversed(Base.metadata.sorted_tables):
            s.execute(delete(table))


@pytest.mark.parametrize("policy", ["link", "drop"])
def test_batch_path_writes_what_the_per_document_path_writes(database_url: str, policy: str) -> None:
    store = _store(database_url, policy)
    writes = _writes(_inputs())
    old = _per_document(store, writes)
    before = _snapshot(store, old)
    _wipe(store)
    new = store.persist_many(writes)
    after = _snapshot(store, new)
    assert [o.status for o in new] == [
        "stored", "stored", "duplicate", "duplicate", "stored", "duplicate", "stored", "failed"
    ]  # fmt: skip
    assert new[6].replayed and [o.duplicate_kind for o in new[2:4]] == ["exact", "near"]
    assert after == before


def test_store_many_gives_each_request_its_outcomes(database_url: str) -> None:
    store = _store(database_url)
    batches = _inputs()
    results = process.store_many(batches, store, max_bytes=MAX_BYTES)
    assert [r.filename for r in results] == [b.request.filename for b in batches]
    assert [[o.key for o in r.outcomes] for r in results] == [
        sorted(w.key for w in process._writes(b, max_bytes=MAX_BYTES)) for b in batches
    ]


def test_repeated_batch_is_a_replay(database_url: str) -> None:
    store = _store(database_url)
    writes = _writes(_inputs())
    first = store.persist_many(writes[:4])
    everything = store.persist_many(writes)  # the first four again, with the rest
    assert [o.replayed for o in everything[:4]] == [True, True, True, True]
    assert [o.model_copy(update={"replayed": False}) for o in everything[:4]] == [
        o.model_copy(update={"replayed": False}) for o in first
    ]
    counts = {m.__name__: len(_rows(store.engine, m, [])) for m in (Document, Duplicate, OutboxRow, Ingestion)}
    again = store.persist_many(writes)
    assert all(o.replayed for o in again)
    assert {m.__name__: len(_rows(store.engine, m, [])) for m in (Document, Duplicate, OutboxRow, Ingestion)} == counts


def _refuse(store: DocumentStore, filename: str) -> None:
    """A database trigger that refuses one document: the database, not Python, says no."""
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON documents "
                    f"WHEN NEW.filename = '{filename}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.filename = '{filename}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
                )
            )
            conn.execute(
                text("CREATE TRIGGER refuse BEFORE INSERT ON documents FOR EACH ROW EXECUTE FUNCTION refuse()")
            )


def test_one_refused_document_does_not_cost_the_others(database_url: str) -> None:
    store = _store(database_url)
    batches = [_request(f"Story number {i} about the harbour, the ferries and the tides. " * 20, f"k{i}", f"{i}.txt")
               for i in range(5)]  # fmt: skip
    writes = _writes(batches)
    _refuse(store, "2.txt")
    with pytest.raises((StoreUnavailable, ProgrammingError)):
        store.persist_many(writes)
    with store.session() as s:
        stored = sorted(s.scalars(select(Document.filename)))
        events = s.scalars(select(OutboxRow.type)).all()
        keys = sorted(s.scalars(select(Ingestion.key)))
    assert stored == ["0.txt", "1.txt", "3.txt", "4.txt"]  # the refused one alone is missing
    assert len(events) == 4 and keys == ["k0", "k1", "k3", "k4"]
    with store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse" + (" ON documents" if conn.dialect.name == "postgresql" else "")))
    retried = store.persist_many(writes)  # the task's retry: the others are replays
    assert [o.replayed for o in retried] == [True, True, False, True, True]
    assert retried[2].status == "stored"


@pytest.mark.postgres
def test_one_statement_takes_every_band_lock(postgres_url: str) -> None:
    store = _store(postgres_url)
    near = store.near
    assert near is not None
    fps = [near.fingerprint(ARTICLE), near.fingerprint(near_copy(ARTICLE))]
    with store.session() as s:
        near.lock_all(s, fps)
        held = s.execute(
            text(
                "SELECT classid::bigint, objid::bigint FROM pg_locks"
                " WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
        ).all()
    expected = {_lock_key(k) for fp in fps for _, k in fp.bands}
    assert {classid for classid, _ in held} == {0x5EED}
    assert {objid if objid < 1 << 31 else objid - (1 << 32) for _, objid in held} == expected
