"""The near-duplicate stage: word shingles, MinHash signatures, LSH band keys, Jaccard.

Pure and deterministic: the same text gives the same signature and the same band keys in
every process and on every machine (rensa hashes tokens with a fixed function and a fixed
seed; band keys are BLAKE2b of the signature bytes, never Python's salted ``hash()``), so
workers anywhere can share one index in the database.

Parameters (see docs/dedup.md for the figures behind them):

* shingles of ``shingle_size`` (5) consecutive words of the canonical text (case, quotes,
  dashes and whitespace folded as for the exact hash);
* ``num_perm`` (128) MinHash permutations of 32 bits: the estimate's standard error at
  Jaccard 0.8 is sqrt(0.8 * 0.2 / 128) ≈ 0.035;
* LSH bands chosen by ``lsh_bands``: the fewest bands whose chance of making a pair at the
  threshold a candidate is at least 99.5 % (128 permutations, threshold 0.8: 21 bands of
  6 rows, P = 0.998).  The candidate is then confirmed by the estimated Jaccard, so the
  bands only need to be generous, not exact; datasketch's optimal parameters (9 bands of
  13 rows) minimise false positives plus false negatives of the band test itself and would
  miss 60 % of pairs right at 0.8;
* a candidate whose estimate is within three standard errors of the threshold (0.8 ± 0.106
  at 128 permutations) is decided by the exact Jaccard of the two shingle sets, computed
  from the stored text: the estimate alone got precision 0.946 and recall 0.960 on the
  labelled set, where many rewrites sit close to 0.8 (docs/dedup.md).
"""

from __future__ import annotations

import hashlib
import math
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from rensa import RMinHash

from worker.pipeline.bounds import prefix
from worker.pipeline.textclean import canonical_text

MINHASH_SEED = 0x5EED  # fixed forever: changing it invalidates every stored signature
_WORD = re.compile(r"\w+(?:['.-]\w+)*")
_SIGNATURE_TYPE = "I"  # uint32, what rensa's RMinHash produces


@dataclass(frozen=True)
class DedupParams:
    """The parameters a signature and its band keys depend on."""

    threshold: float = 0.8
    shingle_size: int = 5
    num_perm: int = 128

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.shingle_size < 1:
            raise ValueError(f"shingle_size must be at least 1, got {self.shingle_size}")
        if self.num_perm < 16:
            raise ValueError(f"num_perm must be at least 16, got {self.num_perm}")

    @cached_property
    def bands(self) -> tuple[int, int]:
        """(bands, rows) for this threshold and number of permutations."""
        return lsh_bands(self.threshold, self.num_perm)

    @property
    def margin(self) -> float:
        """Three standard errors of the estimate at the threshold: inside this band around
        the threshold the estimate is a coin toss, so the exact Jaccard decides."""
        t = self.threshold
        return 3.0 * math.sqrt(t * (1.0 - t) / self.num_perm)

    def decide(self, estimate: float, exact: Callable[[], float]) -> float | None:
        """The similarity a candidate is confirmed with, or None when it is not a near duplicate.

        Clear cases are decided by the MinHash estimate alone; close to the threshold the
        exact Jaccard of the two shingle sets (``exact()``, computed only then) decides."""
        if estimate >= self.threshold + self.margin:
            return estimate
        if estimate < self.threshold - self.margin:
            return None
        value = exact()
        return value if value >= self.threshold else None

    @property
    def tag(self) -> bytes:
        """What band keys are salted with: keys made with other parameters never collide."""
        b, r = self.bands
        return f"seedworker-minhash/v{RMinHash.ALGORITHM_VERSION}/{self.shingle_size}/{self.num_perm}/{b}x{r}".encode()


def candidate_probability(jaccard: float, bands: int, rows: int) -> float:
    """Chance that two documents with this Jaccard share at least one band key."""
    return 1.0 - (1.0 - jaccard**rows) ** bands


def lsh_bands(threshold: float, num_perm: int, min_recall: float = 0.995) -> tuple[int, int]:
    """The most rows per band (fewest bands, fewest index rows, fewest false candidates)
    whose candidate probability at ``threshold`` is still at least ``min_recall``."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= min_recall:
            best = (bands, rows)
        else:
            break
    return best


#: Characters of a text that are shingled: a 20 MB text made millions of shingles (seconds of
#: hashing, hundreds of MB).  A near-duplicate is judged on the first million characters
#: (about 160,000 words); news articles are far below, so their fingerprints are unchanged.
MAX_SHINGLED_CHARS = 1_000_000


def words(text: str) -> list[str]:
    """Words of the canonical text: the same folding the exact hash uses."""
    return _WORD.findall(canonical_text(text))


def shingles(text: str, size: int = 5) -> set[str]:
    """Every run of ``size`` consecutive words; a shorter text is one shingle of all its words.
    Only the first ``MAX_SHINGLED_CHARS`` of the text count."""
    toks = words(prefix(text, MAX_SHINGLED_CHARS))
    if not toks:
        return set()
    if len(toks) <= size:
        return {" ".join(toks)}
    return {" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Exact Jaccard similarity of two shingle sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass(frozen=True)
class Signature:
    """A MinHash signature: ``num_perm`` uint32 values."""

    values: tuple[int, ...]

    def to_bytes(self) -> bytes:
        """Compact storage: 4 bytes per permutation, little endian."""
        arr = array(_SIGNATURE_TYPE, self.values)
        if arr.itemsize != 4:  # pragma: no cover - every platform Python supports has 4-byte I
            raise RuntimeError("unsigned int is not 32 bits on this platform")
        return arr.tobytes() if _LITTLE else _swapped(arr)

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        arr = array(_SIGNATURE_TYPE)
        arr.frombytes(data)
        if not _LITTLE:  # pragma: no cover
            arr.byteswap()
        return cls(tuple(arr))

    def similarity(self, other: Signature) -> float:
        """Estimated Jaccard: the share of permutations whose minimum agrees."""
        if len(self.values) != len(other.values):
            raise ValueError("signatures of different lengths are not comparable")
        same = sum(1 for x, y in zip(self.values, other.values, strict=True) if x == y)
        return same / len(self.values)


_LITTLE = array("H", [1]).tobytes() == b"\x01\x00"


def _swapped(arr: array[int]) -> bytes:  # pragma: no cover - big-endian machines only
    copy = array(arr.typecode, arr)
    copy.byteswap()
    return copy.tobytes()


def signature_of_shingles(items: set[str], num_perm: int = 128) -> Signature:
    mh = RMinHash(num_perm=num_perm, seed=MINHASH_SEED)
    if items:
        mh.update(list(items))
    return Signature(tuple(mh.digest()))


def signature(text: str, params: DedupParams) -> Signature:
    return signature_of_shingles(shingles(text, params.shingle_size), params.num_perm)


def band_keys(sig: Signature, params: DedupParams) -> list[tuple[int, int]]:
    """(band number, 64-bit signed key) per band: what the index stores and looks up."""
    bands, rows = params.bands
    raw = sig.to_bytes()
    tag = params.tag
    out = []
    for band in range(bands):
        chunk = raw[band * rows * 4 : (band + 1) * rows * 4]
        digest = hashlib.blake2b(chunk, digest_size=8, person=b"seedworker-lsh", key=tag[:64]).digest()
        out.append((band, int.from_bytes(digest, "big", signed=True)))
    return out


@dataclass(frozen=True)
class Fingerprint:
    """Everything the index needs about one text."""

    signature: Signature
    bands: list[tuple[int, int]]
    shingles: frozenset[str]

    @property
    def shingle_count(self) -> int:
        return len(self.shingles)


def fingerprint(text: str, params: DedupParams) -> Fingerprint:
    items = shingles(text, params.shingle_size)
    sig = signature_of_shingles(items, params.num_perm)
    return Fingerprint(signature=sig, bands=band_keys(sig, params), shingles=frozenset(items))
