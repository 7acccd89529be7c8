"""The document store: every outcome is one transaction with its outbox event.

``persist_document`` and ``persist_failure`` are idempotent per ingestion key: a message
delivered twice (worker killed, visibility timeout, retry) finds the earlier outcome and
returns it, writing nothing.  Exact duplicates are decided under the database's unique
constraint on the canonical hash, so two workers storing the same text end with one row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from worker.errors import StoreUnavailable
from worker.events.cloudevents import (
    DocumentDeletedData,
    DocumentDuplicateData,
    DocumentFailedData,
    DocumentStoredData,
    TagData,
    make_event,
)
from worker.logs import get_logger
from worker.metrics import stage_timer
from worker.models import FileSummary, Outcome, PipelineBatch, StageItem
from worker.store import outbox
from worker.store.decision import Decider, DuplicateMatch, find_exact
from worker.store.schema import (
    Base,
    Blob,
    ContainmentBand,
    Document,
    Duplicate,
    Failure,
    Ingestion,
    MinhashBand,
    TagRow,
    story_for,
    table_of,
    tag_values,
)
from worker.store.updates import (
    Update,
    duplicate_item_fields,
    lock_item,
    newest_only,
    unlink_deleted,
    updated_data,
    version_columns,
)

if TYPE_CHECKING:  # the near-duplicate index (MinHash) is built by the worker, not imported by every user of the store
    from worker.models import NormalisedDocument
    from worker.pipeline.dedup import Fingerprint
    from worker.settings import Settings
    from worker.store.near_index import NearDuplicateIndex
    from worker.store.writethru_index import WriteThruIndex

_CONFLICT_RETRIES = 5
log = get_logger("seedworker.store")

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


def _outage(exc: StoreUnavailable) -> bool:
    """The database is down or locked, not just this transaction refused: a deadlock between
    two batches storing each other's duplicates (SQLSTATE class 40, PostgreSQL) is not one."""
    cause = exc.__cause__
    if not isinstance(cause, OperationalError):
        return False
    return not str(getattr(cause.orig, "sqlstate", "") or "").startswith("40")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


__all__ = ["DeleteResult", "DeletedDocument", "DocumentStore", "DuplicateMatch", "new_id"]


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


class DocumentStore:
    def __init__(
        self,
        engine: Engine,
        *,
        event_source: str,
        duplicate_policy: str = "link",
        near: NearDuplicateIndex | None = None,
        embargo: str = "publish",
        writethru: WriteThruIndex | None = None,
    ) -> None:
        self.engine = engine
        self.event_source = event_source
        self.duplicate_policy = duplicate_policy
        self.embargo = embargo  # hold: an embargoed document's event waits in the outbox (not_before)
        self.near = near  # None: exact duplicates only
        self.writethru = writethru  # None: no write-thru (containment) updates; item versions always
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        near: NearDuplicateIndex | None = None,
        writethru: WriteThruIndex | None = None,
    ) -> DocumentStore:
        """The store the settings describe (database, event source, duplicate policy).  Only a
        caller that deduplicates passes ``near`` (and ``writethru``): readers need not build MinHash."""
        from worker.store.engine import make_engine

        return cls(
            make_engine(settings.effective_database_url),
            event_source=settings.event_source,
            duplicate_policy=settings.duplicate_policy,
            near=near,
            embargo=settings.embargo,
            writethru=writethru,
        )

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; database outages surface as StoreUnavailable (retryable)."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc

    # -- the deduplicate stage's read side ---------------------------------------------------
    def find_duplicate(self, canonical_hash: str, text: str | None = None) -> DuplicateMatch | None:
        """Exact match by hash, else (given the text and near detection on) the nearest match."""
        with self.session() as s:
            return self._find_exact(s, canonical_hash) or (
                self._find_near(s, self.near.fingerprint(text)) if self.near and text is not None else None
            )

    @staticmethod
    def _find_exact(s: Session, canonical_hash: str) -> DuplicateMatch | None:
        return find_exact(s, canonical_hash)

    def _find_near(self, s: Session, fp: Fingerprint | None) -> DuplicateMatch | None:
        if self.near is None or fp is None:
            return None
        cand = self.near.find(s, fp)
        return DuplicateMatch(cand.document_id, "near", cand.similarity, cand.story_id) if cand else None

    @property
    def _decider(self) -> Decider:
        return Decider(self.near, self.writethru)

    def explain_duplicate(
        self, document: NormalisedDocument, *, show: int = 5, near_detection: bool = True
    ) -> dict[str, Any]:
        """The verdict ``persist_document`` would reach for this document, in words, with the
        candidates it weighed (``seedworker dedup check``).  Needs the near index, which
        ``near_detection=False`` (DEDUP_NEAR off) keeps out of the verdict; writes nothing."""
        if self.near is None:
            raise ValueError("explain_duplicate needs a store with the near-duplicate index")
        fp = self.near.fingerprint(document.text)
        with self.session() as s:
            return Decider(self.near, self.writethru, near_on=near_detection).explain(s, document, fp, show=show)

    # -- writes ------------------------------------------------------------------------------
    def persist_document(self, batch: PipelineBatch, item: StageItem, raw: bytes) -> Outcome:
        """Store the item, or link it to the document it duplicates; emit the event."""
        write = DocumentWrite(batch, item, raw)
        fp = self.near.fingerprint(item.document.text) if self.near else None
        return self._in_own_transaction(write, fp)

    def persist_failure(
        self,
        *,
        key: str,
        summary: FileSummary,
        source: str,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> Outcome:
        return self._in_own_transaction(FailureWrite(key, summary, source, reason, message, details, raw), None)

    def persist_many(self, writes: Sequence[DocumentWrite | FailureWrite]) -> list[Outcome]:
        """Every outcome of ``writes`` in one transaction, in order (the watcher's batch task):
        the same outcomes, rows and events as one :meth:`persist_document` or
        :meth:`persist_failure` each, for a fraction of the commits and round trips.

        Should anything go wrong in the shared transaction (a concurrent writer's row, a
        document the database refuses) it is rolled back and every write is done again in its
        own transaction, so one bad document cannot lose or corrupt the others: they are
        written, then the bad one's error is raised (the task retries; a redelivery replays
        them).  A database outage is raised as it is (retryable: nothing was written)."""
        fps = [
            self.near.fingerprint(w.item.document.text) if self.near and isinstance(w, DocumentWrite) else None
            for w in writes
        ]
        if len(writes) > 1:
            try:
                return self._in_one_transaction(writes, fps)
            except Exception as exc:
                if isinstance(exc, StoreUnavailable) and _outage(exc):
                    raise
                log.warning("batch write failed; each in its own transaction", writes=len(writes), error=repr(exc))
        outcomes: list[Outcome] = []
        first_error: Exception | None = None
        for write, fp in zip(writes, fps, strict=True):
            try:
                outcomes.append(self._in_own_transaction(write, fp))
            except StoreUnavailable as exc:
                if _outage(exc):
                    raise  # the database is down: the others would wait it out one by one
                first_error = first_error or exc
            except Exception as exc:  # the others are still written; then the first error is raised
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return outcomes

    def _in_one_transaction(
        self, writes: Sequence[DocumentWrite | FailureWrite], fps: list[Fingerprint | None]
    ) -> list[Outcome]:
        with self.session() as s:
            if self.near:  # every band key of the batch, up front (in a per-document transaction: before its reads)
                self.near.lock_all(s, [fp for fp in fps if fp])
            docs = [w.item.document for w in writes if isinstance(w, DocumentWrite)]
            items = {d.item_id for d in docs if d.item_id}
            for item_id in sorted(items):  # and every versioned item's, in one order
                lock_item(s, item_id)
            earlier = self._earlier_outcomes(s, [w.key for w in writes])
            written: set[str] = set()
            outcomes = []
            for write, fp in zip(writes, fps, strict=True):
                # a key written earlier in this transaction: its row, as a second transaction would see it
                known = self._earlier_outcome(s, write.key) if write.key in written else earlier.get(write.key)
                outcomes.append(known or self._write(s, write, fp, locked=True))
                written.add(write.key)
            return outcomes

    def _in_own_transaction(self, write: DocumentWrite | FailureWrite, fp: Fingerprint | None) -> Outcome:
        for _ in range(_CONFLICT_RETRIES):
            try:
                with self.session() as s:
                    return self._earlier_outcome(s, write.key) or self._write(s, write, fp, locked=False)
            except IntegrityError:
                # Another worker stored the same hash or key between our read and write;
                # the next round sees its row.
                continue
        raise StoreUnavailable(f"could not resolve concurrent writes for {write.key}")

    def _write(
        self, s: Session, write: DocumentWrite | FailureWrite, fp: Fingerprint | None, *, locked: bool
    ) -> Outcome:
        """The outcome of one write with nothing recorded for its key yet, inside ``s``."""
        if isinstance(write, FailureWrite):
            return self._write_failure(s, write)
        batch, item, raw = write.batch, write.item, write.raw
        with stage_timer("dedup"):
            # Locks first (worker/store/decision.py): a concurrent near copy or version of the
            # same item commits before we read what decides (a batch took them all up front).
            verdict = self._decider.decide(s, item.document, fp, lock=not locked)
        if verdict.duplicate:
            return self._write_duplicate(s, batch, write.key, verdict.duplicate, raw, item.document)
        return self._write_document(s, batch, write.key, item, raw, fp, verdict.update)

    def _write_failure(self, s: Session, write: FailureWrite) -> Outcome:
        key, summary, raw, details = write.key, write.summary, write.raw, write.details
        failure_id = new_id("fail")
        if raw is not None:
            self._put_blob(s, summary.sha256, raw)
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
        return self._record(s, outcome)

    def _write_document(
        self,
        s: Session,
        batch: PipelineBatch,
        key: str,
        item: StageItem,
        raw: bytes,
        fp: Fingerprint | None = None,
        update: Update | None = None,
    ) -> Outcome:
        doc = item.document
        request, summary = batch.request, batch.summary
        doc_id = new_id("doc")
        self._put_blob(s, summary.sha256, raw)
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
        return self._record(s, outcome)

    def _write_duplicate(
        self,
        s: Session,
        batch: PipelineBatch,
        key: str,
        match: DuplicateMatch,
        raw: bytes,
        doc: NormalisedDocument | None = None,
    ) -> Outcome:
        request, summary = batch.request, batch.summary
        dup_id: str | None = None
        if self.duplicate_policy == "link":
            dup_id = new_id("dup")
            self._put_blob(s, summary.sha256, raw)
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
        return self._record(s, outcome)

    # -- delete ------------------------------------------------------------------------------
    def delete(self, ids: list[str] | tuple[str, ...], *, reason: str = "deleted") -> DeleteResult:
        """Delete documents: each in one transaction with its ``document.deleted`` event.

        Goes with the document: its tags, its full-text row (the FTS5 trigger on SQLite; the
        expression index on PostgreSQL), its near-duplicate bands and signature, the thin
        records of inputs that duplicated it (their ids are in the event's ``duplicates``:
        without the document they point at nothing), and each original file (blob) that no
        other document, duplicate or failure still references.  The ingestion records stay:
        a redelivered message for a deleted document replays its outcome instead of storing
        it again.  Ids with no document are returned as ``missing`` and write nothing, so
        deleting twice is harmless.
        """
        deleted: list[DeletedDocument] = []
        missing: list[str] = []
        for doc_id in dict.fromkeys(ids):  # each id once, in the caller's order
            for _ in range(_CONFLICT_RETRIES):
                try:
                    with self.session() as s:
                        done = self._delete_one(s, doc_id, reason)
                    break
                except IntegrityError:  # a duplicate of it was being linked meanwhile: again
                    continue
            else:
                raise StoreUnavailable(f"could not resolve concurrent writes while deleting {doc_id}")
            (deleted.append(done) if done is not None else missing.append(doc_id))
        return DeleteResult(deleted=deleted, missing=missing)

    def _delete_one(self, s: Session, doc_id: str, reason: str) -> DeletedDocument | None:
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
        blobs = [sha for sha in candidates if not self._blob_referenced(s, sha)]
        if blobs:
            s.execute(delete(Blob).where(Blob.sha256.in_(blobs)))
        duplicates = [d.id for d in dups]
        data = DocumentDeletedData(
            id=doc_id, canonical_hash=canonical_hash, reason=reason, duplicates=duplicates, raw_sha256=raw
        )
        outbox.emit(
            s,
            make_event("document.deleted", key=f"delete:{doc_id}", subject=doc_id, source=self.event_source, data=data),
        )
        return DeletedDocument(id=doc_id, canonical_hash=canonical_hash, duplicates=duplicates, blobs=blobs)

    @staticmethod
    def _blob_referenced(s: Session, sha256: str) -> bool:
        for model in (Document, Duplicate, Failure):
            if s.scalar(select(model.id).where(model.raw_sha256 == sha256).limit(1)) is not None:
                return True
        return False

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _earlier_outcome(s: Session, key: str) -> Outcome | None:
        outcome = s.connection().execute(_SELECT_OUTCOME, {"key": key}).scalar()
        if outcome is None:
            return None
        return Outcome.model_validate({**outcome, "replayed": True})

    @staticmethod
    def _earlier_outcomes(s: Session, keys: list[str]) -> dict[str, Outcome]:
        rows = s.connection().execute(_SELECT_OUTCOMES, {"keys": sorted(set(keys))}).all()
        return {key: Outcome.model_validate({**outcome, "replayed": True}) for key, outcome in rows}

    @staticmethod
    def _record(s: Session, outcome: Outcome) -> Outcome:
        s.connection().execute(
            _INSERT_INGESTION,
            {
                "key": outcome.key,
                "status": outcome.status,
                "outcome": outcome.model_dump(mode="json"),
            },
        )
        return outcome

    @staticmethod
    def _put_blob(s: Session, sha256: str, raw: bytes) -> None:
        conn = s.connection()
        if conn.execute(_SELECT_BLOB, {"sha256": sha256}).scalar() is None:
            conn.execute(_INSERT_BLOB, {"sha256": sha256, "size": len(raw), "data": raw})

    # -- reads for the CLI and status --------------------------------------------------------
    def get_document(self, doc_id: str) -> Document | None:
        with self.session() as s:
            doc = s.get(Document, doc_id)
            if doc is not None:
                _ = list(doc.tags)
            return doc

    def list_documents(self, limit: int = 50, *, newest_versions: bool = False) -> list[Document]:
        """The newest documents; ``newest_versions``: only the newest version of each story."""
        query = select(Document).order_by(Document.created_at.desc()).limit(limit)
        with self.session() as s:
            return list(s.scalars(newest_only(query) if newest_versions else query))

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(Ingestion.status, func.count()).group_by(Ingestion.status)).all()
            out = {"stored": 0, "duplicate": 0, "failed": 0}
            out.update({status: int(n) for status, n in rows})
            lag = outbox.lag(s)
            out["outbox_unpublished"] = lag.unpublished + lag.held  # every row not yet on the stream
            return out
