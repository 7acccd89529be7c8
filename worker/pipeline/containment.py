"""Containment: how much of a shorter text is inside a longer one (write-thrus, docs/dedup.md).

A developing story is filed short, then re-filed longer ("write-thru").  The first version is
(almost) wholly inside the second, but their Jaccard similarity is about the ratio of their
lengths (~0.5 for a first take of half the final story), far below the near-duplicate
threshold.  The measure here is the share of the shorter text's shingles found in the longer
(``|A ∩ B| / |A|``):

* **Candidates** come from a second set of LSH bands over the *same* stored MinHash signature,
  with 3 rows per band instead of 6 (``CONTAINMENT_ROWS``): 42 bands at 128 permutations,
  whose chance of making a pair a candidate is 0.996 at Jaccard 0.5, 0.94 at 0.4 and 0.011 at
  0.064 (the most that unrelated same-topic stories reached on the labelled set), so a first
  take of 40 % or more of the final story is found, and unrelated stories rarely cost a look.
* **Estimate.** From the signatures' estimated Jaccard ``J`` and the two shingle counts:
  ``|A ∩ B| = J (|A| + |B|) / (1 + J)``, so ``C = J (|A| + |B|) / ((1 + J) |A|)``.
* **Confirmation**, always exact (few candidates get here): the stored text's shingles in
  order, each looked up in the new text's set.  The overall share must reach the threshold
  (0.8 by default) *and* every third of the shorter text must be at least half inside the
  longer (``MIN_PART_SHARE``): an unrelated short text that shares a long agency footer or a
  newsletter banner with the new one is contained only in one of its ends.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from worker.pipeline.bounds import prefix
from worker.pipeline.dedup import MAX_SHINGLED_CHARS, DedupParams, Signature, candidate_probability, words

CONTAINMENT_ROWS = 3
PARTS = 3
MIN_PART_SHARE = 0.5
#: A text with fewer shingles (about 24 words) is never linked by containment: a headline-length
#: alert is contained in too many stories to say which one it became.
MIN_SHINGLES = 20
#: Only a text at least this much longer can be a write-thru of a stored one (shingle counts):
#: an equally long text that contains another is a near duplicate, not an update.
MIN_GROWTH = 1.1


def containment_bands(params: DedupParams) -> tuple[int, int]:
    """(bands, rows) of the containment index: ``CONTAINMENT_ROWS`` rows per band."""
    rows = CONTAINMENT_ROWS
    return params.num_perm // rows, rows


def containment_tag(params: DedupParams) -> bytes:
    b, r = containment_bands(params)
    return f"seedworker-containment/{params.tag.decode()}/{b}x{r}".encode()


def containment_band_keys(sig: Signature, params: DedupParams) -> list[tuple[int, int]]:
    """(band number, 64-bit signed key) per containment band; salted apart from the near-duplicate
    bands, so the two indexes never share a key."""
    bands, rows = containment_bands(params)
    raw = sig.to_bytes()
    key = hashlib.blake2b(containment_tag(params), digest_size=32).digest()
    out = []
    for band in range(bands):
        chunk = raw[band * rows * 4 : (band + 1) * rows * 4]
        digest = hashlib.blake2b(chunk, digest_size=8, person=b"seedworker-cont", key=key).digest()
        out.append((band, int.from_bytes(digest, "big", signed=True)))
    return out


def recall_at(jaccard: float, params: DedupParams) -> float:
    """Chance that a pair with this Jaccard becomes a containment candidate."""
    b, r = containment_bands(params)
    return candidate_probability(jaccard, b, r)


def shingle_count(word_count: int, shingle_size: int) -> int:
    """Shingles of a text of ``word_count`` words (at most; repeats count once in the set)."""
    return max(1, word_count - shingle_size + 1)


def estimated_containment(jaccard: float, shorter: int, longer: int) -> float:
    """``|A ∩ B| / |A|`` from the estimated Jaccard and the two shingle counts (capped at 1)."""
    if shorter <= 0:
        return 0.0
    inter = jaccard * (shorter + longer) / (1.0 + jaccard)
    return min(1.0, inter / shorter)


def estimate_margin(jaccard: float, shorter: int, longer: int, num_perm: int) -> float:
    """Three standard errors of ``estimated_containment``: the Jaccard estimate's error
    (``sqrt(J (1 - J) / n)``, at least that of J = 0.1) through dC/dJ."""
    j = min(max(jaccard, 0.1), 0.9)
    slope = (shorter + longer) / (max(1, shorter) * (1.0 + j) ** 2)
    return 3.0 * math.sqrt(j * (1.0 - j) / num_perm) * slope


def ordered_shingles(text: str, size: int) -> list[str]:
    """The text's shingles in order (repeats kept), over the same words ``shingles()`` uses."""
    toks = words(prefix(text, MAX_SHINGLED_CHARS))
    if not toks:
        return []
    if len(toks) <= size:
        return [" ".join(toks)]
    return [" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1)]


@dataclass(frozen=True)
class Containment:
    """How much of the shorter text is inside the longer."""

    share: float  # of the shorter text's distinct shingles, found in the longer
    weakest_part: float  # the least-contained third of the shorter text
    shared: int  # distinct shingles in both
    shingles: int  # distinct shingles of the shorter text

    def holds(self, threshold: float) -> bool:
        return self.shingles >= MIN_SHINGLES and self.share >= threshold and self.weakest_part >= MIN_PART_SHARE


def containment(shorter: list[str], longer: set[str] | frozenset[str]) -> Containment:
    """Exact containment of ``shorter`` (ordered shingles) in the ``longer`` shingle set."""
    distinct = set(shorter)
    if not distinct:
        return Containment(0.0, 0.0, 0, 0)
    shared = len(distinct & longer)
    size = max(1, math.ceil(len(shorter) / PARTS))
    parts = [shorter[i : i + size] for i in range(0, len(shorter), size)]
    weakest = min(sum(1 for s in part if s in longer) / len(part) for part in parts)
    return Containment(shared / len(distinct), weakest, shared, len(distinct))
