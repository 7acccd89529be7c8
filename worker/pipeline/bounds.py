"""How much of one document the analysis stages read.

A valid 19 MB text took 452 s and 2.9 GB in one pool process (issue 19 §9): NER, keywords,
rules and MinHash all grow with the text.  They read a bounded prefix instead; the document
is still stored whole.  News articles (a few KB) are far below every bound, so their tags
and fingerprints are exactly what they were.
"""

from __future__ import annotations


def prefix(text: str, limit: int | None) -> str:
    """``text`` cut to at most ``limit`` characters, at the last whitespace before the
    limit so no word is split (at the limit itself when there is none in its second half)."""
    if limit is None or len(text) <= limit:
        return text
    cut = max(text.rfind(" ", 0, limit + 1), text.rfind("\n", 0, limit + 1))
    return text[: cut if cut > limit // 2 else limit]
