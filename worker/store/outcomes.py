"""One outcome's rows, written inside the caller's transaction: a stored document (or a new
version of a story), a duplicate's thin record, a failure -- each with its ingestion record
(what a redelivery replays) and its outbox event.  ``DocumentStore`` (repository.py) decides
which, in which transaction; this module only writes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from worker.events.cloudevents import (
    DocumentDuplicateData,
    DocumentFailedData,
    DocumentStoredData,
    TagData,
    make_event,
)
from worker.models import FileSummary, Outcome, PipelineBatch, StageItem
from worker.store import outbox
from worker.store.schema import Blob, Document, Duplicate, Failure, Ingestion, TagRow, story_for, table_of, tag_values
from worker.store.updates import Update, duplicate_item_fields, updated_data, version_columns

if TYPE_CHECKING:
    from worker.models import NormalisedDocument
    from worker.pipeline.dedup import Fingerprint
    from worker.store.decision import DuplicateMatch
    from worker.store.near_index import NearDuplicateIndex
    from worker.store.writethru_index import WriteThruIndex

__all__ = [
    "DocumentWrite",
    "FailureWrite",
    "OutcomeWriter",
    "earlier_outcome",
    "earlier_outcomes",
    "new_id",
    "put_blob",
    "record",
]

# The write path's statements, built once against the tables (Core, not the ORM's unit of work:
# a document is a handful of inserts, and building and flushing ORM objects cost more CPU than
# the database spent on them; docs/benchmarks.md, "store").  Parameters are keyed by column
# name; Core fills in the columns' Python defaults (created_at, ...) and drops unknown keys.
_DOCUMENTS = table_of(Document)
_INGESTIONS = table_of(Ingestion)
_BLOBS = table_of(Blob)
_SELECT_OUTCOME = select(_INGESTIONS.c.outcome).where(_INGESTIONS.c.key == bindparam("key"))
_SELECT_OUTCOMES = select(_INGESTIONS.c.key, _INGESTIONS.c.outcome).where(
    _INGESTIONS.c.key.in_(bindparam("keys", expanding=True))
)
_SELECT_BLOB = select(_BLOBS.c.sha256).where(_BLOBS.c.sha256 == bindparam("sha256"))
_INSERT_BLOB = insert(_BLOBS)
_INSERT_DOCUMENT = insert(_DOCUMENTS)
_INSERT_TAGS = insert(table_of(TagRow))
_INSERT_DUPLICATE = insert(table_of(Duplicate))
_INSERT_FAILURE = insert(table_of(Failure))
_INSERT_INGESTION = insert(_INGESTIONS)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class DocumentWrite:
    """A document to store (or link as a duplicate): :meth:`DocumentStore.persist_many`."""

    batch: PipelineBatch
    item: StageItem
    raw: bytes

    @property
    def key(self) -> str:
        return self.batch.item_key(self.item.record)


@dataclass(frozen=True)
class FailureWrite:
    """A failure to record: the arguments of :meth:`DocumentStore.persist_failure`."""

    key: str
    summary: FileSummary
    source: str
    reason: str
    message: str
    details: dict[str, Any] | None = None
    raw: bytes | None = None


@dataclass(frozen=True)
class OutcomeWriter:
    """Writes outcomes as the store is configured: its event source, duplicate policy, embargo
    mode and the indexes a new document joins."""

    event_source: str
    duplicate_policy: str = "link"
    embargo: str = "publish"
    near: NearDuplicateIndex | None = None
    writethru: WriteThruIndex | None = None

    def failure(self, s: Session, write: FailureWrite) -> Outcome:
        """A failure's row and its ``document.failed`` event."""
        key, summary, raw, details = write.key, write.summary, write.raw, write.details
        failure_id = new_id("fail")
        if raw is not None:
            put_blob(s, summary.sha256, raw)
        s.connection().execute(
            _INSERT_FAILURE,
            {
                "id": failure_id,
                "ingest_key": key,
                "raw_sha256": summary.sha256 if raw is not None else None,
                "filename": summary.filename,
                "source": write.source,
                "reason": write.reason,
                "message": write.message,
                "details": details or {},
            },
        )
        data = DocumentFailedData(
            id=failure_id,
            filename=summary.filename,
            source=write.source,
            reason=write.reason,
            message=write.message,
            details=details or {},
            raw_sha256=summary.sha256 if raw is not None else None,
        )
        outbox.emit(
            s,
            make_event("document.failed", key=key, subject=failure_id, source=self.event_source, data=data),
        )
        outcome = Outcome(
            status="failed",
            key=key,
            filename=summary.filename,
            document_id=failure_id,
            reason=write.reason,
            message=write.message,
        )
        return record(s, outcome)

    def document(
        self,
        s: Session,
        batch: PipelineBatch,
        key: str,
        item: StageItem,
        raw: bytes,
        fp: Fingerprint | None = None,
        update: Update | None = None,
    ) -> Outcome:
        """A new document (or, given ``update``, a new version of a story): its row, tags, index
        entries and its ``document.stored``/``document.updated`` event."""
        doc = item.document
        request, summary = batch.request, batch.summary
        doc_id = new_id("doc")
        put_blob(s, summary.sha256, raw)
        dl = doc.dateline
        place, country = (dl.place, dl.country) if dl else (None, None)
        # Fields the row and the event share, named alike in both: one list, not two.
        shared = {
            "filename": request.filename,
            "source": request.source,
            "title": doc.title,
            "date": doc.date,
            "agency": dl.agency if dl else None,
            "author": doc.author,
            "language": doc.language,
            "word_count": doc.word_count,
            "canonical_hash": doc.canonical_hash,
            "raw_sha256": summary.sha256,
            "story_id": update.story_id if update else story_for(doc_id),
            "urgency": doc.urgency,
            "genre": doc.genre,
            "pubstatus": doc.pubstatus,
            "embargoed_until": doc.embargoed_until,
        }
        conn = s.connection()
        # The unique hash constraint fires here, inside persist_document's retry loop.
        conn.execute(
            _INSERT_DOCUMENT,
            {
                "id": doc_id,
                "ingest_key": key,
                "format": doc.format,
                "encoding": doc.encoding,
                "date_raw": doc.date_raw,
                "place": place,
                "country": country,
                "dateline_raw": dl.raw if dl else None,
                "text": doc.text,
                "metadata": {**request.metadata, **doc.metadata},  # the column of Document.meta
                "warnings": list(doc.warnings),
                "minhash": fp.signature.to_bytes() if fp else None,
                **version_columns(doc, update),
                **shared,
            },
        )
        if item.tags:  # in the tagger's order, which is the order of their ids
            conn.execute(_INSERT_TAGS, [{"document_id": doc_id, **tag_values(t)} for t in item.tags])
        if self.near and fp:
            self.near.add(s, doc_id, fp)
        if self.writethru and fp:
            self.writethru.add(s, doc_id, self.writethru.keys(fp))
        fields = {"id": doc_id, "dateline_place": place, "dateline_country": country, **shared}
        tags = [TagData.of(t) for t in item.tags]
        if update is None:
            data: DocumentStoredData = DocumentStoredData(tags=tags, **fields)
            event = make_event("document.stored", key=key, subject=doc_id, source=self.event_source, data=data)
        else:
            data = updated_data(doc, update, tags, fields)
            event = make_event("document.updated", key=key, subject=doc_id, source=self.event_source, data=data)
        hold = doc.embargoed_until if self.embargo == "hold" else None  # an embargoed update waits too
        outbox.emit(s, event, not_before=hold)
        outcome = Outcome(
            status="stored",
            key=key,
            filename=request.filename,
            document_id=doc_id,
            updates=update.previous_id if update else None,
        )
        return record(s, outcome)

    def duplicate(
        self,
        s: Session,
        batch: PipelineBatch,
        key: str,
        match: DuplicateMatch,
        raw: bytes,
        doc: NormalisedDocument | None = None,
    ) -> Outcome:
        """An input that duplicates ``match``: its thin record (``DUPLICATE_POLICY=link``) and
        its ``document.duplicate`` event."""
        request, summary = batch.request, batch.summary
        dup_id: str | None = None
        if self.duplicate_policy == "link":
            dup_id = new_id("dup")
            put_blob(s, summary.sha256, raw)
            s.connection().execute(
                _INSERT_DUPLICATE,
                {
                    "id": dup_id,
                    "document_id": match.document_id,
                    "ingest_key": key,
                    "raw_sha256": summary.sha256,
                    "filename": request.filename,
                    "source": request.source,
                    "kind": match.kind,
                    "similarity": match.similarity,
                    "story_id": match.story_id,
                },
            )
        data = DocumentDuplicateData(
            id=dup_id,
            filename=request.filename,
            source=request.source,
            duplicate_of=match.document_id,
            kind="exact" if match.kind == "exact" else "near",
            similarity=match.similarity,
            raw_sha256=summary.sha256,
            story_id=match.story_id,
            **duplicate_item_fields(doc, match),
        )
        outbox.emit(
            s, make_event("document.duplicate", key=key, subject=match.document_id, source=self.event_source, data=data)
        )
        outcome = Outcome(
            status="duplicate",
            key=key,
            filename=request.filename,
            document_id=dup_id,
            duplicate_of=match.document_id,
            duplicate_kind="exact" if match.kind == "exact" else "near",
            similarity=match.similarity,
        )
        return record(s, outcome)


def earlier_outcome(s: Session, key: str) -> Outcome | None:
    """The outcome recorded for ``key``, marked replayed (None: nothing yet)."""
    outcome = s.connection().execute(_SELECT_OUTCOME, {"key": key}).scalar()
    if outcome is None:
        return None
    return Outcome.model_validate({**outcome, "replayed": True})


def earlier_outcomes(s: Session, keys: list[str]) -> dict[str, Outcome]:
    rows = s.connection().execute(_SELECT_OUTCOMES, {"keys": sorted(set(keys))}).all()
    return {key: Outcome.model_validate({**outcome, "replayed": True}) for key, outcome in rows}


def record(s: Session, outcome: Outcome) -> Outcome:
    """The ingestion record of ``key``: what a redelivery of the same input replays."""
    s.connection().execute(
        _INSERT_INGESTION,
        {
            "key": outcome.key,
            "status": outcome.status,
            "outcome": outcome.model_dump(mode="json"),
        },
    )
    return outcome


def put_blob(s: Session, sha256: str, raw: bytes) -> None:
    """The original bytes, once per sha256."""
    conn = s.connection()
    if conn.execute(_SELECT_BLOB, {"sha256": sha256}).scalar() is None:
        conn.execute(_INSERT_BLOB, {"sha256": sha256, "size": len(raw), "data": raw})
