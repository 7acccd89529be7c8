"""The one owner of the dedup decision: exact copy, later version, near copy, write-thru, or new.

``persist_document`` asks ``Decider.decide`` inside the transaction that then writes the
outcome; ``seedworker dedup check`` asks ``Decider.explain`` the same question without writing
(``DocumentStore.explain_duplicate``), so the explanation can never drift from what a worker
does.  In order (docs/dedup.md):

1. **exact**: the canonical hash is already stored (for a versioned item: the same item and
   version);
2. **item version** (ninjs ``uri``, NewsML-G2 ``guid``): a newer version of a stored item is
   an *update*; the same or an older version a duplicate (``reason`` says which);
3. **near**: MinHash + LSH, confirmed (worker/store/near_index.py);
4. **write-thru**: the text contains a stored shorter one (worker/store/updates.py): an *update*;
5. otherwise **new**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from worker.store.schema import Document, table_of
from worker.store.updates import Update, duplicate_reason, is_update, lock_item, newest_of_item

if TYPE_CHECKING:
    from worker.models import NormalisedDocument
    from worker.pipeline.dedup import Fingerprint
    from worker.store.near_index import NearDuplicateIndex
    from worker.store.writethru_index import WriteThruIndex

_DOCUMENTS = table_of(Document)
_SELECT_EXACT = select(_DOCUMENTS.c.id, _DOCUMENTS.c.story_id).where(
    _DOCUMENTS.c.canonical_hash == bindparam("canonical_hash")
)
Kind = Literal["exact", "near", "update", "new"]


@dataclass(frozen=True)
class DuplicateMatch:
    document_id: str
    kind: str  # exact | near
    similarity: float
    story_id: str | None = None
    reason: str | None = None  # versioned items: same_version | older_version


@dataclass(frozen=True)
class Verdict:
    """What the store does with a document: link it as a duplicate, store it as an update of
    an earlier version, or store it as a new story."""

    kind: Kind
    duplicate: DuplicateMatch | None = None
    update: Update | None = None


def find_exact(s: Session, canonical_hash: str, *, reason: str | None = None) -> DuplicateMatch | None:
    row = s.connection().execute(_SELECT_EXACT, {"canonical_hash": canonical_hash}).first()
    return DuplicateMatch(row.id, "exact", 1.0, row.story_id, reason) if row else None


class Decider:
    def __init__(
        self, near: NearDuplicateIndex | None, writethru: WriteThruIndex | None, *, near_on: bool = True
    ) -> None:
        self.near = near
        self.writethru = writethru
        # False: near and write-thru detection are off for the verdict (DEDUP_NEAR=false) but the
        # index is there to show what it would have found (`seedworker dedup check`).
        self.near_on = near_on

    def decide(self, s: Session, doc: NormalisedDocument, fp: Fingerprint | None, *, lock: bool = True) -> Verdict:
        """The verdict, inside the caller's transaction (which then writes it).  ``lock``: take
        the PostgreSQL advisory locks that serialise concurrent near copies and item versions
        before anything that decides is read."""
        if lock:
            if self.near and fp:
                self.near.lock(s, fp)
            if doc.item_id:
                lock_item(s, doc.item_id)
        exact = find_exact(s, doc.canonical_hash, reason="same_version" if doc.item_id else None)
        if exact:
            return Verdict("exact", duplicate=exact)
        item = newest_of_item(s, doc)
        if item is not None:
            if is_update(item):
                return Verdict("update", update=item.as_update())
            match = DuplicateMatch(item.document_id, "exact", 1.0, item.story_id, duplicate_reason(item))
            return Verdict("exact", duplicate=match)
        near = self.near_match(s, fp) if self.near_on else None
        if near:
            return Verdict("near", duplicate=near)
        if self.writethru and fp and self.near_on:
            found = self.writethru.find(s, fp, doc.text)
            if found:
                return Verdict("update", update=found)
        return Verdict("new")

    def near_match(self, s: Session, fp: Fingerprint | None) -> DuplicateMatch | None:
        """The confirmed near duplicate of ``fp`` in the index (None: none, or no index)."""
        if self.near is None or fp is None:
            return None
        cand = self.near.find(s, fp)
        return DuplicateMatch(cand.document_id, "near", cand.similarity, cand.story_id) if cand else None

    # -- for people: `seedworker dedup check` ------------------------------------------------------
    def explain(self, s: Session, doc: NormalisedDocument, fp: Fingerprint, *, show: int = 5) -> dict[str, Any]:
        """``decide`` without locks, with the reason in words and the candidates it weighed."""
        verdict = self.decide(s, doc, fp, lock=False)
        out: dict[str, Any] = {
            "verdict": verdict.kind,
            "shingles": fp.shingle_count,
            "bands": len(fp.bands),
            "near_detection": self.near is not None and self.near_on,
            "update_detection": self.writethru is not None and self.near_on,
            "duplicate_of": None,
            "updates": None,
            "similarity": None,
            "story_id": None,
            "candidates": [],
            "containment_candidates": [],
        }
        near_candidates = self.near.candidates(s, fp) if self.near else []
        if self.near:
            out["threshold"] = self.near.params.threshold
            confirmed = {c.document_id: c for c in self.near.confirmed(s, fp, near_candidates)}
            out["candidates"] = [
                {
                    **c.as_dict(),
                    "confirmed_similarity": round(confirmed[c.document_id].similarity, 4)
                    if c.document_id in confirmed
                    else None,
                }
                for c in near_candidates[:show]
            ]
        weighed = []
        if self.writethru:
            weighed = self.writethru.confirm(s, fp, self.writethru.candidates(s, fp, doc.text))
            out["containment_threshold"] = self.writethru.threshold
            out["containment_candidates"] = [c.as_dict() for c in weighed[:show]]
        if verdict.duplicate:
            dup = verdict.duplicate
            out.update(duplicate_of=dup.document_id, similarity=round(dup.similarity, 4), story_id=dup.story_id)
            if dup.reason:
                out["reason"] = dup.reason
            out["why"] = self._why_duplicate(doc, dup, near_candidates)
            if dup.kind == "near":
                out["shared_bands"] = next(
                    (c.shared_bands for c in near_candidates if c.document_id == dup.document_id), None
                )
        elif verdict.update:
            up = verdict.update
            out.update(updates=up.previous_id, story_id=up.story_id, version=up.version, how=up.how)
            if up.how == "item_version":
                out["why"] = (
                    f"item {doc.item_id}: this {_version(doc)} is newer than the stored {up.previous_id} "
                    f"(story version {up.previous_version}), so it is stored as version {up.version} of its story"
                )
            else:
                share = up.containment or 0.0
                out["containment"] = round(share, 4)
                out["why"] = (
                    f"{share:.0%} of the shingles of {up.previous_id} are in this longer text (at least "
                    f"{self.writethru.threshold if self.writethru else 0:.0%}, and at least half of each third): "
                    f"a write-thru, stored as version {up.version} of its story"
                )
        else:
            out["why"] = self._why_new(near_candidates, weighed, fp, s)
        return out

    def _why_duplicate(self, doc: NormalisedDocument, dup: DuplicateMatch, near_candidates: list[Any]) -> str:
        if dup.reason == "older_version":
            return (
                f"item {doc.item_id}: this {_version(doc)} is older than the stored {dup.document_id}, "
                "which it must not replace"
            )
        if dup.reason == "same_version":
            return f"item {doc.item_id}: this {_version(doc)} is already stored as {dup.document_id}"
        if dup.kind == "exact":
            return f"its canonical text hashes like {dup.document_id} (case, quotes, dashes, spacing folded)"
        assert self.near is not None
        params = self.near.params
        estimate = next((c.similarity for c in near_candidates if c.document_id == dup.document_id), dup.similarity)
        shared = next((c.shared_bands for c in near_candidates if c.document_id == dup.document_id), 0)
        threshold = params.threshold
        how = (
            f"estimated Jaccard {estimate:.3f} >= {threshold} + {params.margin:.3f}"
            if estimate >= threshold + params.margin
            else f"estimate {estimate:.3f} is within {params.margin:.3f} of {threshold}, "
            f"so the exact Jaccard decided: {dup.similarity:.3f} >= {threshold}"
        )
        return (
            f"shares {shared} of {params.bands[0]} LSH bands with {dup.document_id}; "
            f"{params.shingle_size}-word shingles: {how}"
        )

    def _why_new(self, near_candidates: list[Any], weighed: list[Any], fp: Fingerprint, s: Session) -> str:
        if not self.near:
            return "no stored document has the same canonical text (near detection is off: DEDUP_NEAR)"
        closest = near_candidates[0] if near_candidates else None
        best = next(iter(self.near.confirmed(s, fp, near_candidates)), None) if near_candidates else None
        if best is not None and not self.near_on:
            return f"{best.document_id} is at {best.similarity:.3f}, but near detection is off (DEDUP_NEAR)"
        if closest is None:
            why = f"no stored document shares any of its {len(fp.bands)} LSH bands"
        else:
            why = (
                f"closest stored document {closest.document_id} (estimated Jaccard {closest.similarity:.3f}) "
                f"is not a near duplicate at threshold {self.near.params.threshold}"
            )
        if weighed and weighed[0].confirmed is not None:
            best = weighed[0]
            why += (
                f"; {best.document_id} is {best.confirmed.share:.0%} inside it (weakest third "
                f"{best.confirmed.weakest_part:.0%}): not a write-thru"
            )
        return why


def _version(doc: NormalisedDocument) -> str:
    parts = [f"version {doc.item_version}" if doc.item_version is not None else ""]
    if doc.version_created is not None:
        parts.append(f"created {doc.version_created.isoformat()}")
    return ", ".join(p for p in parts if p) or "unversioned copy"
