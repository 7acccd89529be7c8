"""The shared near-duplicate index: LSH band keys and MinHash signatures in the database.

Why the database and not Redis: the band rows are written in the same transaction as the
document and its outbox event, so the index can never name a document that was rolled
back nor miss one that committed; it survives restarts and backups with the documents; and
the database's own locks decide which of two concurrent near copies becomes canonical.

* ``minhash_bands(band, key, document_id)``: one row per band of each stored document,
  primary key (band, key, document_id), so a lookup is ``bands`` index probes whatever the
  size of the store.
* ``documents.minhash``: the signature (4 bytes per permutation), used to confirm a
  candidate by its estimated Jaccard before it is called a duplicate.
* ``documents.story_id``: the cluster; a near or exact duplicate takes its canonical's.

Concurrency: on PostgreSQL, ``lock`` takes transaction-scoped advisory locks on the
document's band keys in sorted order (no deadlock), so two transactions storing texts that
share a band are serialised and the second sees the first's rows.  On SQLite every write
transaction begins ``IMMEDIATE`` and is already serialised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy import Select, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from worker.pipeline.dedup import DedupParams, Fingerprint, Signature, fingerprint, jaccard, shingles
from worker.store.schema import Document, MinhashBand, story_for, table_of

if TYPE_CHECKING:
    from worker.settings import Settings

# First half of the two-int advisory lock key: keeps ours apart from other users' locks.
_LOCK_NAMESPACE = 0x5EED
MAX_CANDIDATES = 64  # most-banded candidates confirmed per lookup (bounds boilerplate-heavy texts)

_BANDS = table_of(MinhashBand)
_DOCUMENTS = table_of(Document)
_INSERT_BANDS = insert(_BANDS)
_SELECT_SIGNATURES = select(_DOCUMENTS.c.id, _DOCUMENTS.c.minhash, _DOCUMENTS.c.story_id).where(
    _DOCUMENTS.c.id.in_(bindparam("ids", expanding=True))
)
_ADVISORY_LOCKS = sql_text(
    "SELECT count(pg_advisory_xact_lock(CAST(:namespace AS integer), k)) FROM unnest(CAST(:keys AS integer[])) AS k"
)


@lru_cache(maxsize=32)
def candidates_query(bands_table: Table, pairs: int, limit: int) -> Select[tuple[str, int]]:
    """Documents sharing any of ``pairs`` (band, key) pairs of ``bands_table``, most shared
    first.  Built once per table and pair count with bound parameters, so each lookup only
    binds values: building the OR of band clauses per call (or an expanding row-value IN list,
    re-rendered on every call) cost more CPU than the index probes.  The near-duplicate bands
    and the write-thru index's containment bands share it."""
    shared = func.count().label("shared")
    match = [
        (bands_table.c.band == bindparam(f"b{i}")) & (bands_table.c.key == bindparam(f"k{i}")) for i in range(pairs)
    ]
    return (
        select(bands_table.c.document_id, shared)
        .where(or_(*match))
        .group_by(bands_table.c.document_id)
        .order_by(shared.desc(), bands_table.c.document_id)
        .limit(limit)
    )


@dataclass(frozen=True)
class Candidate:
    document_id: str
    shared_bands: int
    similarity: float
    story_id: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "document_id": self.document_id,
            "shared_bands": self.shared_bands,
            "similarity": round(self.similarity, 4),
            "story_id": self.story_id,
        }


class NearDuplicateIndex:
    """Look up, lock and record fingerprints inside the caller's transaction."""

    def __init__(self, params: DedupParams | None = None, *, max_candidates: int = MAX_CANDIDATES) -> None:
        self.params = params or DedupParams()
        self.max_candidates = max_candidates

    @classmethod
    def from_settings(cls, settings: Settings) -> NearDuplicateIndex | None:
        """The index the settings ask for, or None when near detection is off."""
        if not settings.dedup_near:
            return None
        return cls(
            DedupParams(
                threshold=settings.dedup_threshold,
                shingle_size=settings.dedup_shingle_size,
                num_perm=settings.dedup_num_perm,
            )
        )

    def fingerprint(self, text: str) -> Fingerprint:
        return fingerprint(text, self.params)

    # -- inside a write transaction --------------------------------------------------------------
    @staticmethod
    def lock(s: Session, fp: Fingerprint) -> None:
        """PostgreSQL: serialise with every transaction that shares one of our band keys."""
        NearDuplicateIndex.lock_all(s, [fp])

    @staticmethod
    def lock_all(s: Session, fps: Sequence[Fingerprint]) -> None:
        """:meth:`lock` for several fingerprints at once (one transaction storing a batch).

        One statement takes every lock, in sorted order (``unnest`` yields the array in its
        order): a round trip per band key cost more than the rest of the write."""
        if s.get_bind().dialect.name != "postgresql":
            return
        keys = sorted({_lock_key(k) for fp in fps for _, k in fp.bands})
        if keys:
            s.connection().execute(_ADVISORY_LOCKS, {"namespace": _LOCK_NAMESPACE, "keys": keys})

    def candidates(self, s: Session, fp: Fingerprint) -> list[Candidate]:
        """Documents sharing a band key, with their estimated Jaccard, most similar first."""
        if not fp.bands:
            return []
        conn = s.connection()
        params: dict[str, int] = {}
        for i, (band, key) in enumerate(fp.bands):
            params[f"b{i}"], params[f"k{i}"] = band, key
        rows = conn.execute(candidates_query(_BANDS, len(fp.bands), self.max_candidates), params).all()
        if not rows:
            return []
        counts = {doc_id: int(n) for doc_id, n in rows}
        docs = conn.execute(_SELECT_SIGNATURES, {"ids": list(counts)}).all()
        out = []
        for doc_id, blob, story_id in docs:
            if blob is None:
                continue
            other = Signature.from_bytes(blob)
            if len(other.values) != len(fp.signature.values):
                continue  # made with another num_perm: `seedworker dedup rebuild`
            out.append(Candidate(doc_id, counts[doc_id], fp.signature.similarity(other), story_id))
        out.sort(key=lambda c: (-c.similarity, -c.shared_bands, c.document_id))
        return out

    def confirmed(self, s: Session, fp: Fingerprint, candidates: list[Candidate] | None = None) -> list[Candidate]:
        """Candidates that are near duplicates, most similar first; ``similarity`` is the exact
        Jaccard where the estimate was too close to the threshold to decide (see DedupParams.decide)."""
        params = self.params
        out = []
        for cand in self.candidates(s, fp) if candidates is None else candidates:

            def exact(doc_id: str = cand.document_id) -> float:
                stored = s.scalar(select(Document.text).where(Document.id == doc_id)) or ""
                return jaccard(set(fp.shingles), shingles(stored, params.shingle_size))

            similarity = params.decide(cand.similarity, exact)
            if similarity is not None:
                out.append(Candidate(cand.document_id, cand.shared_bands, similarity, cand.story_id))
        out.sort(key=lambda c: (-c.similarity, -c.shared_bands, c.document_id))
        return out

    def find(self, s: Session, fp: Fingerprint) -> Candidate | None:
        """The most similar stored document that is a near duplicate, if any."""
        found = self.confirmed(s, fp)
        return found[0] if found else None

    @staticmethod
    def add(s: Session, document_id: str, fp: Fingerprint) -> None:
        """Index a document (its row, with ``minhash`` set, is already in the session)."""
        if fp.bands:
            s.connection().execute(
                _INSERT_BANDS, [{"band": b, "key": k, "document_id": document_id} for b, k in fp.bands]
            )

    # -- maintenance -----------------------------------------------------------------------------
    def reindex(self, s: Session, docs: Sequence[tuple[str, str, str | None]]) -> None:
        """Recompute signature and bands of these (id, text, story_id) documents; idempotent."""
        ids = [doc_id for doc_id, _, _ in docs]
        s.execute(delete(MinhashBand).where(MinhashBand.document_id.in_(ids)))
        rows: list[dict[str, object]] = []
        for doc_id, text, story_id in docs:
            fp = self.fingerprint(text)
            s.execute(
                update(Document)
                .where(Document.id == doc_id)
                .values(minhash=fp.signature.to_bytes(), story_id=story_id or story_for(doc_id))
            )
            rows.extend({"band": b, "key": k, "document_id": doc_id} for b, k in fp.bands)
        if rows:
            s.execute(insert(MinhashBand), rows)

    def rebuild(
        self,
        transaction: Callable[[], AbstractContextManager[Session]],
        *,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Rebuild the whole index from stored texts, one transaction per batch (keyset order)."""
        done, after = 0, ""
        while True:
            with transaction() as s:
                docs = s.execute(
                    select(Document.id, Document.text, Document.story_id)
                    .where(Document.id > after)
                    .order_by(Document.id)
                    .limit(batch_size)
                ).all()
                batch = [(d, t, st) for d, t, st in docs]
                if batch:
                    self.reindex(s, batch)
            if not batch:
                return done
            done += len(batch)
            after = batch[-1][0]
            if progress:
                progress(len(batch))


def _lock_key(key: int) -> int:
    """Fold a 64-bit band key into PostgreSQL's signed 32-bit advisory key."""
    folded = (key ^ (key >> 32)) & 0xFFFFFFFF
    return folded - (1 << 32) if folded >= 1 << 31 else folded
