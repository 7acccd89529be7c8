"""The document store: every outcome is one transaction with its outbox event.

Which transaction, and what it decides: this module (``persist_document``, ``persist_failure``,
``persist_many`` for a batch task's requests in one, ``delete``); the verdict comes from
``decision.py``, the rows from ``outcomes.py``, a deletion's from ``deletion.py``.

``persist_document`` and ``persist_failure`` are idempotent per ingestion key: a message
delivered twice (worker killed, visibility timeout, retry) finds the earlier outcome and
returns it, writing nothing.  Exact duplicates are decided under the database's unique
constraint on the canonical hash, so two workers storing the same text end with one row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from worker.errors import StoreUnavailable
from worker.logs import get_logger
from worker.metrics import stage_timer
from worker.models import FileSummary, Outcome, PipelineBatch, StageItem
from worker.store import outbox
from worker.store.decision import Decider, DuplicateMatch, find_exact
from worker.store.deletion import DeletedDocument, DeleteResult, delete_one
from worker.store.outcomes import (
    DocumentWrite,
    FailureWrite,
    OutcomeWriter,
    earlier_outcome,
    earlier_outcomes,
    new_id,
)
from worker.store.schema import Base, Document, Ingestion
from worker.store.updates import lock_item, newest_only

if TYPE_CHECKING:  # the near-duplicate index (MinHash) is built by the worker, not imported by every user of the store
    from worker.models import NormalisedDocument
    from worker.pipeline.dedup import Fingerprint
    from worker.settings import Settings
    from worker.store.near_index import NearDuplicateIndex
    from worker.store.writethru_index import WriteThruIndex

_CONFLICT_RETRIES = 5
log = get_logger("seedworker.store")


def _outage(exc: StoreUnavailable) -> bool:
    """The database is down or locked, not just this transaction refused: a deadlock between
    two batches storing each other's duplicates (SQLSTATE class 40, PostgreSQL) is not one."""
    cause = exc.__cause__
    if not isinstance(cause, OperationalError):
        return False
    return not str(getattr(cause.orig, "sqlstate", "") or "").startswith("40")


__all__ = [
    "DeleteResult",
    "DeletedDocument",
    "DocumentStore",
    "DocumentWrite",
    "DuplicateMatch",
    "FailureWrite",
    "new_id",
]


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
        """Exact match by hash, else (given the text and near detection on) the nearest match:
        the decision's own exact and near steps, read without locks."""
        fp = self.near.fingerprint(text) if self.near and text is not None else None
        with self.session() as s:
            return find_exact(s, canonical_hash) or self._decider.near_match(s, fp)

    @property
    def _writer(self) -> OutcomeWriter:
        return OutcomeWriter(self.event_source, self.duplicate_policy, self.embargo, self.near, self.writethru)

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
            earlier = earlier_outcomes(s, [w.key for w in writes])
            written: set[str] = set()
            outcomes = []
            for write, fp in zip(writes, fps, strict=True):
                # a key written earlier in this transaction: its row, as a second transaction would see it
                known = earlier_outcome(s, write.key) if write.key in written else earlier.get(write.key)
                outcomes.append(known or self._write(s, write, fp, locked=True))
                written.add(write.key)
            return outcomes

    def _in_own_transaction(self, write: DocumentWrite | FailureWrite, fp: Fingerprint | None) -> Outcome:
        for _ in range(_CONFLICT_RETRIES):
            try:
                with self.session() as s:
                    return earlier_outcome(s, write.key) or self._write(s, write, fp, locked=False)
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
            return self._writer.failure(s, write)
        batch, item, raw = write.batch, write.item, write.raw
        with stage_timer("dedup"):
            # Locks first (worker/store/decision.py): a concurrent near copy or version of the
            # same item commits before we read what decides (a batch took them all up front).
            verdict = self._decider.decide(s, item.document, fp, lock=not locked)
        if verdict.duplicate:
            return self._writer.duplicate(s, batch, write.key, verdict.duplicate, raw, item.document)
        return self._writer.document(s, batch, write.key, item, raw, fp, verdict.update)

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
                        done = delete_one(s, doc_id, reason, event_source=self.event_source)
                    break
                except IntegrityError:  # a duplicate of it was being linked meanwhile: again
                    continue
            else:
                raise StoreUnavailable(f"could not resolve concurrent writes while deleting {doc_id}")
            (deleted.append(done) if done is not None else missing.append(doc_id))
        return DeleteResult(deleted=deleted, missing=missing)

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
