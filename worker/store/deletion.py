"""Deleting a document: its row and everything that goes with it, and its event.

What goes: its tags, its full-text row (the FTS5 trigger on SQLite; the expression index on
PostgreSQL), its near-duplicate and containment bands, the thin records of inputs that
duplicated it, and each original file (blob) that nothing else references.  A later version
of its story is re-pointed at the version it updated.  The ingestion records stay: a
redelivered message for a deleted document replays its outcome instead of storing it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from worker.events.cloudevents import DocumentDeletedData, make_event
from worker.store import outbox
from worker.store.schema import Blob, ContainmentBand, Document, Duplicate, Failure, MinhashBand, TagRow
from worker.store.updates import unlink_deleted

__all__ = ["DeleteResult", "DeletedDocument", "blob_referenced", "delete_one"]


@dataclass(frozen=True)
class DeletedDocument:
    """One document :meth:`DocumentStore.delete` removed, and what went with it."""

    id: str
    canonical_hash: str
    duplicates: list[str]  # the thin duplicate records that pointed at it, removed with it
    blobs: list[str]  # sha256 of original bytes nothing else referenced any more, removed


@dataclass(frozen=True)
class DeleteResult:
    deleted: list[DeletedDocument]
    missing: list[str]  # ids with no document (never stored, or already deleted): nothing written


def delete_one(s: Session, doc_id: str, reason: str, *, event_source: str) -> DeletedDocument | None:
    """Delete one document and what goes with it, with its ``document.deleted`` event, inside
    ``s`` (``DocumentStore.delete`` runs one transaction per document)."""
    # FOR UPDATE on PostgreSQL: a concurrent retag or a second delete waits for us
    doc = s.get(Document, doc_id, with_for_update=True)
    if doc is None:
        return None
    canonical_hash, raw = doc.canonical_hash, doc.raw_sha256
    dups = s.execute(
        select(Duplicate.id, Duplicate.raw_sha256).where(Duplicate.document_id == doc_id).order_by(Duplicate.id)
    ).all()
    s.execute(delete(TagRow).where(TagRow.document_id == doc_id))
    s.execute(delete(MinhashBand).where(MinhashBand.document_id == doc_id))
    s.execute(delete(ContainmentBand).where(ContainmentBand.document_id == doc_id))
    unlink_deleted(s, doc_id, doc.updates)
    s.execute(delete(Duplicate).where(Duplicate.document_id == doc_id))
    s.execute(delete(Document).where(Document.id == doc_id))
    candidates = sorted({sha for sha in [raw, *(d.raw_sha256 for d in dups)] if sha})
    blobs = [sha for sha in candidates if not blob_referenced(s, sha)]
    if blobs:
        s.execute(delete(Blob).where(Blob.sha256.in_(blobs)))
    duplicates = [d.id for d in dups]
    data = DocumentDeletedData(
        id=doc_id, canonical_hash=canonical_hash, reason=reason, duplicates=duplicates, raw_sha256=raw
    )
    outbox.emit(
        s,
        make_event("document.deleted", key=f"delete:{doc_id}", subject=doc_id, source=event_source, data=data),
    )
    return DeletedDocument(id=doc_id, canonical_hash=canonical_hash, duplicates=duplicates, blobs=blobs)


def blob_referenced(s: Session, sha256: str) -> bool:
    for model in (Document, Duplicate, Failure):
        if s.scalar(select(model.id).where(model.raw_sha256 == sha256).limit(1)) is not None:
            return True
    return False
