"""The write-thru index: ``containment_bands`` rows, candidates and their exact confirmation.

A longer text that contains a stored shorter one is its write-thru (worker/pipeline/
containment.py says how it is measured and why the bands have 3 rows).  Candidates: one query
over the containment band keys of the whole new text and of each of its halves (``probes``),
most shared bands first; each is estimated from the stored signature and word count, and the
best estimates are confirmed exactly from the stored text (``confirm``).  Kept apart from
``near_index`` (the near-duplicate bands): its own table, its own salted keys, its own query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from worker.pipeline.containment import (
    MIN_GROWTH,
    MIN_SHINGLES,
    Containment,
    containment,
    containment_band_keys,
    estimate_margin,
    estimated_containment,
    ordered_shingles,
    shingle_count,
)
from worker.pipeline.dedup import DedupParams, Fingerprint, Signature, signature_of_shingles
from worker.store.near_index import candidates_query
from worker.store.schema import ContainmentBand, Document, story_for, table_of
from worker.store.updates import Update

if TYPE_CHECKING:
    from worker.settings import Settings

MAX_CANDIDATES = 32  # containment candidates read per lookup, most shared bands first
MAX_EXACT = 8  # of which at most this many are confirmed exactly (best estimates first)

_BANDS = table_of(ContainmentBand)
_DOCUMENTS = table_of(Document)
_INSERT_BANDS = insert(_BANDS)
_SELECT_CANDIDATES = select(
    _DOCUMENTS.c.id,
    _DOCUMENTS.c.minhash,
    _DOCUMENTS.c.word_count,
    _DOCUMENTS.c.story_id,
    _DOCUMENTS.c.version,
).where(_DOCUMENTS.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class ContainmentCandidate:
    document_id: str
    shared_bands: int
    jaccard: float  # estimated from the signatures
    estimate: float  # estimated containment of the stored text in the new one
    margin: float
    story_id: str
    version: int
    confirmed: Containment | None = None  # set once checked exactly

    def as_dict(self) -> dict[str, Any]:
        c = self.confirmed
        return {
            "document_id": self.document_id,
            "shared_bands": self.shared_bands,
            "estimated_jaccard": round(self.jaccard, 4),
            "estimated_containment": round(self.estimate, 4),
            "containment": round(c.share, 4) if c else None,
            "weakest_third": round(c.weakest_part, 4) if c else None,
            "story_id": self.story_id,
        }


class WriteThruIndex:
    """The containment index (``containment_bands``), inside the caller's transaction."""

    def __init__(self, params: DedupParams | None = None, *, threshold: float = 0.8) -> None:
        self.params = params or DedupParams()
        self.threshold = threshold

    @classmethod
    def from_settings(cls, settings: Settings) -> WriteThruIndex | None:
        """The index the settings ask for: None when near detection or update linking is off."""
        if not (settings.dedup_near and settings.dedup_updates):
            return None
        params = DedupParams(
            threshold=settings.dedup_threshold,
            shingle_size=settings.dedup_shingle_size,
            num_perm=settings.dedup_num_perm,
        )
        return cls(params, threshold=settings.dedup_containment)

    def keys(self, fp: Fingerprint) -> list[tuple[int, int]]:
        return containment_band_keys(fp.signature, self.params) if fp.shingles else []

    @staticmethod
    def add(s: Session, document_id: str, keys: list[tuple[int, int]]) -> None:
        if keys:
            s.connection().execute(_INSERT_BANDS, [{"band": b, "key": k, "document_id": document_id} for b, k in keys])

    def probes(self, fp: Fingerprint, text: str | None) -> list[tuple[Signature, int]]:
        """(signature, shingle count) of the whole text and, given the text, of its first and
        second halves: a first version that is the opening (or, under a new top, the end) of
        the re-filing is most of one half, so a first take of a quarter of the final story
        has a Jaccard of about 0.5 with a half and is found as surely as one of half the story."""
        out = [(fp.signature, fp.shingle_count)]
        if text is None or fp.shingle_count < 4 * MIN_SHINGLES:
            return out
        ordered = ordered_shingles(text, self.params.shingle_size)
        middle = len(ordered) // 2
        for half in (set(ordered[:middle]), set(ordered[middle:])):
            out.append((signature_of_shingles(half, self.params.num_perm), len(half)))
        return out

    def candidates(self, s: Session, fp: Fingerprint, text: str | None = None) -> list[ContainmentCandidate]:
        """Stored documents shorter than ``fp``'s text that may be inside it, best estimate first.
        One query over the band keys of every probe (``probes``)."""
        longer = fp.shingle_count
        if not fp.shingles or longer < MIN_SHINGLES * MIN_GROWTH:
            return []
        probes = self.probes(fp, text)
        # Not deduplicated: the statement is built once per probe count, never per key count.
        keys = [k for sig, _ in probes for k in containment_band_keys(sig, self.params)]
        conn = s.connection()
        params: dict[str, int] = {}
        for i, (band, key) in enumerate(keys):
            params[f"b{i}"], params[f"k{i}"] = band, key
        rows = conn.execute(candidates_query(_BANDS, len(keys), MAX_CANDIDATES), params).all()
        if not rows:
            return []
        counts = {doc_id: int(n) for doc_id, n in rows}
        size = self.params.shingle_size
        out = []
        for row in conn.execute(_SELECT_CANDIDATES, {"ids": list(counts)}).all():
            shorter = shingle_count(int(row.word_count), size)
            if row.minhash is None or shorter < MIN_SHINGLES or shorter * MIN_GROWTH > longer:
                continue
            other = Signature.from_bytes(row.minhash)
            if len(other.values) != len(fp.signature.values):
                continue
            # The probe that says most: containment in a half is containment in the whole.
            j, estimate, margin = max(
                (
                    (
                        j,
                        estimated_containment(j, shorter, size_),
                        estimate_margin(j, shorter, size_, self.params.num_perm),
                    )
                    for sig, size_ in probes
                    for j in [sig.similarity(other)]
                ),
                key=lambda t: t[1],
            )
            out.append(
                ContainmentCandidate(
                    row.id,
                    counts[row.id],
                    j,
                    estimate,
                    margin,
                    row.story_id or story_for(row.id),
                    int(row.version or 1),
                )
            )
        out.sort(key=lambda c: (-c.estimate, -c.shared_bands, c.document_id))
        return out

    def confirm(
        self, s: Session, fp: Fingerprint, candidates: Sequence[ContainmentCandidate]
    ) -> list[ContainmentCandidate]:
        """Candidates whose estimate is within reach of the threshold, checked exactly; the
        contained ones first, the fullest (most shared shingles) first among them."""
        checked = []
        for cand in [c for c in candidates if c.estimate + c.margin >= self.threshold][:MAX_EXACT]:
            text = s.scalar(select(Document.text).where(Document.id == cand.document_id)) or ""
            found = containment(ordered_shingles(text, self.params.shingle_size), fp.shingles)
            checked.append(
                ContainmentCandidate(
                    cand.document_id,
                    cand.shared_bands,
                    cand.jaccard,
                    cand.estimate,
                    cand.margin,
                    cand.story_id,
                    cand.version,
                    found,
                )
            )
        checked.sort(key=lambda c: (not self.holds(c), -(c.confirmed.shared if c.confirmed else 0), c.document_id))
        return checked

    def holds(self, cand: ContainmentCandidate) -> bool:
        return cand.confirmed is not None and cand.confirmed.holds(self.threshold)

    def find(self, s: Session, fp: Fingerprint, text: str | None = None) -> Update | None:
        """The stored version ``fp``'s text (``text``) is a write-thru of, if any."""
        best = next(iter(self.confirm(s, fp, self.candidates(s, fp, text))), None)
        if best is None or best.confirmed is None or not self.holds(best):
            return None
        return Update(best.document_id, best.version, best.story_id, "containment", best.confirmed.share)

    # -- maintenance -----------------------------------------------------------------------------
    def reindex(self, s: Session, docs: Sequence[tuple[str, bytes | None]]) -> None:
        """Recompute the containment bands of these (id, stored signature) documents."""
        ids = [doc_id for doc_id, _ in docs]
        s.execute(delete(ContainmentBand).where(ContainmentBand.document_id.in_(ids)))
        rows: list[dict[str, object]] = []
        for doc_id, blob in docs:
            if blob:
                keys = containment_band_keys(Signature.from_bytes(blob), self.params)
                rows.extend({"band": b, "key": k, "document_id": doc_id} for b, k in keys)
        if rows:
            s.execute(insert(ContainmentBand), rows)

    def rebuild(self, transaction: Callable[[], AbstractContextManager[Session]], *, batch_size: int = 500) -> int:
        """Recompute every document's containment bands from its stored signature (after
        ``NearDuplicateIndex.rebuild``), one transaction per batch in id order."""
        done, after = 0, ""
        while True:
            with transaction() as s:
                batch = [
                    (doc_id, blob)
                    for doc_id, blob in s.execute(
                        select(Document.id, Document.minhash)
                        .where(Document.id > after)
                        .order_by(Document.id)
                        .limit(batch_size)
                    ).all()
                ]
                if batch:
                    self.reindex(s, batch)
            if not batch:
                return done
            done += len(batch)
            after = batch[-1][0]
