"""Deleting stored documents (issue 18 §5), on SQLite and PostgreSQL: the document, its tags,
its full-text row, its near-duplicate bands, the duplicates that pointed at it and the
original bytes nothing else needs go in one transaction with a ``document.deleted`` event."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import func, select

from worker.models import FileSummary, IngestRequest, NormalisedDocument, PipelineBatch, StageItem, Tag
from worker.pipeline.dedup import DedupParams
from worker.store.engine import make_engine
from worker.store.migrations import upgrade
from worker.store.near_index import NearDuplicateIndex
from worker.store.repository import DocumentStore
from worker.store.schema import Blob, Document, Duplicate, Ingestion, MinhashBand, OutboxRow, TagRow
from worker.store.search import search_documents

STORY = (
    "The harbour authority said on Tuesday that the new container terminal would open in the "
    "spring, after two years of delays caused by flooding and a dispute with the builders. "
    "Shipping companies welcomed the announcement and said they expected traffic to rise. "
    "The terminal will have six cranes, a rail link to the inland depot and space for two of "
    "the largest vessels now at sea. Local residents had complained about noise during the "
    "night shifts, and the authority promised quieter equipment and a new sound barrier along "
    "the eastern road. The regional government paid a third of the cost, with the rest coming "
    "from a loan that the authority expects to repay from port fees within fifteen years."
)
OTHER = (
    "Volunteers planted four thousand trees along the river bank over the weekend, the city "
    "council said, in a scheme meant to slow erosion and give shade to the walking path."
)


def _store(url: str) -> DocumentStore:
    upgrade(url)  # the migrations, so SQLite has its full-text table and triggers
    return DocumentStore(
        make_engine(url), event_source="urn:test", duplicate_policy="link", near=NearDuplicateIndex(DedupParams())
    )


def _store_text(store: DocumentStore, text: str, key: str, raw: bytes | None = None) -> str | None:
    raw = text.encode() if raw is None else raw
    request = IngestRequest(text=text, filename=f"{key}.txt", idempotency_key=key)
    doc = NormalisedDocument(
        text=text,
        title="Harbour",
        canonical_hash=hashlib.sha256(text.lower().encode()).hexdigest(),
        language="en",
        word_count=len(text.split()),
    )
    tags = [Tag(kind="topic", name="ports", source="auto:v1", score=0.9)]
    item = StageItem(document=doc, tags=tags)
    batch = PipelineBatch(request=request, key=key, summary=FileSummary.of(request.filename, raw), items=[item])
    outcome = store.persist_document(batch, item, raw)
    return outcome.document_id if outcome.status == "stored" else outcome.duplicate_of


def _count(store: DocumentStore, model: type, **where: str) -> int:
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    with store.session() as s:
        return int(s.scalar(query) or 0)


def _deleted_events(store: DocumentStore) -> list[dict[str, object]]:
    with store.session() as s:
        rows = s.scalars(select(OutboxRow.payload).where(OutboxRow.type == "org.seedworker.document.deleted"))
        return [json.loads(p) for p in rows]


def test_delete_removes_everything_of_a_document_with_its_event(database_url: str) -> None:
    store = _store(database_url)
    doc_id = _store_text(store, STORY, "k1")
    assert doc_id is not None
    assert _store_text(store, STORY, "k2", raw=b"same text, other bytes") == doc_id  # exact duplicate
    near = STORY.replace("Tuesday", "Wednesday")
    assert _store_text(store, near, "k3") == doc_id  # near duplicate
    keeper = _store_text(store, OTHER, "k4")
    assert _store_text(store, OTHER + " ", "k5", raw=STORY.encode()) == keeper  # shares the first blob
    assert [h.id for h in search_documents(store.engine, "container terminal")] == [doc_id]
    assert _count(store, Duplicate, document_id=doc_id) == 2
    assert _count(store, MinhashBand, document_id=doc_id) > 0

    result = store.delete([doc_id, "doc_missing"], reason="user asked")

    assert result.missing == ["doc_missing"]
    [gone] = result.deleted
    assert gone.id == doc_id and len(gone.duplicates) == 2
    # the original bytes of k1 are still the raw of a duplicate of the other document: kept
    only_its_own = {hashlib.sha256(b"same text, other bytes").hexdigest(), hashlib.sha256(near.encode()).hexdigest()}
    assert sorted(gone.blobs) == sorted(only_its_own)
    assert _count(store, Document, id=doc_id) == 0
    assert _count(store, TagRow, document_id=doc_id) == 0
    assert _count(store, MinhashBand, document_id=doc_id) == 0
    assert _count(store, Duplicate, document_id=doc_id) == 0
    assert _count(store, Blob, sha256=hashlib.sha256(STORY.encode()).hexdigest()) == 1  # still referenced
    assert _count(store, Blob, sha256=hashlib.sha256(b"same text, other bytes").hexdigest()) == 0
    assert search_documents(store.engine, "container terminal") == []  # the full-text row went too
    assert [h.id for h in search_documents(store.engine, "volunteers trees")] == [keeper]
    assert _count(store, Ingestion) == 5  # outcomes stay: a redelivery replays, never re-stores

    [event] = _deleted_events(store)
    assert event["subject"] == doc_id
    data = event["data"]
    assert isinstance(data, dict)
    assert data["id"] == doc_id and data["reason"] == "user asked"
    assert data["canonical_hash"] == hashlib.sha256(STORY.lower().encode()).hexdigest()
    assert sorted(data["duplicates"]) == sorted(gone.duplicates)
    assert data["raw_sha256"] == hashlib.sha256(STORY.encode()).hexdigest()

    again = store.delete([doc_id])
    assert again.deleted == [] and again.missing == [doc_id]
    assert len(_deleted_events(store)) == 1  # deleting twice writes nothing


def test_the_same_text_can_be_stored_again_after_delete(database_url: str) -> None:
    store = _store(database_url)
    first = _store_text(store, STORY, "a1")
    assert first is not None
    store.delete([first])
    second = _store_text(store, STORY, "a2")
    assert second is not None and second != first  # a new document, not a duplicate of a deleted one
    assert [h.id for h in search_documents(store.engine, "container terminal")] == [second]
