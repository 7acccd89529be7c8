"""Keywords: YAKE (unsupervised, statistical, no model files) over the document text.

Entities already cover names, so candidates in which every word is capitalised
(``President Donald Trump``) are skipped, and so is a candidate whose words all belong to a
better-ranked keyword (``plant`` after ``power plant``).  What remains are the concepts of a
story: ``power plant``, ``ceasefire``, ``peace deal``.

``yake`` is imported lazily, when a :class:`YakeKeywords` is built; :func:`yake_available`
tells whether it is installed.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from worker.models import NormalisedDocument, Tag

MAX_SPANS = 20
SOURCE = "yake"


def yake_available() -> bool:
    try:
        return importlib.util.find_spec("yake") is not None
    except (ImportError, ValueError):
        return False


class YakeKeywords:
    """A keyword extractor for :class:`~worker.pipeline.tag.Tagger` (``keywords=``).

    ``score`` on the tags is ``1 / (1 + yake_score)``: YAKE's own score is lower-is-better
    and unbounded, this one is in (0, 1] and higher-is-better like every other tag's.
    """

    def __init__(
        self,
        *,
        top: int = 8,
        max_ngram: int = 2,
        dedup_lim: float = 0.8,
        candidates: int = 40,
        default_language: str = "en",
    ) -> None:
        import yake

        self._yake: Any = yake
        self.top = top
        self.max_ngram = max_ngram
        self.dedup_lim = dedup_lim
        self.candidates = candidates
        self.default_language = default_language
        self._extractors: dict[str, Any] = {}

    def _extractor(self, language: str) -> Any:
        if language not in self._extractors:
            self._extractors[language] = self._yake.KeywordExtractor(
                lan=language, n=self.max_ngram, dedup_lim=self.dedup_lim, top=self.candidates
            )
        return self._extractors[language]

    def __call__(self, doc: NormalisedDocument) -> list[Tag]:
        text = doc.text
        if not text.strip():
            return []
        language = doc.language if doc.language not in ("", "und") else self.default_language
        found: list[tuple[str, float]] = self._extractor(language).extract_keywords(text)
        chosen: list[tuple[str, float]] = []
        for phrase, raw_score in found:
            words = phrase.split()
            if not words or all(w[:1].isupper() for w in words):
                continue
            if all(len(w) < 3 or not any(c.isalpha() for c in w) for w in words):
                continue
            folded = {w.casefold() for w in words}
            if any(folded <= {w.casefold() for w in kept.split()} for kept, _ in chosen):
                continue
            chosen.append((phrase, float(raw_score)))
            if len(chosen) == self.top:
                break
        tags = []
        for phrase, raw_score in chosen:
            spans = _occurrences(text, phrase)
            if not spans:
                continue
            tags.append(
                Tag(
                    kind="keyword",
                    name=phrase.casefold(),
                    source=SOURCE,
                    score=round(1.0 / (1.0 + raw_score), 4),
                    count=len(spans),
                    spans=spans[:MAX_SPANS],
                    matched=text[spans[0][0] : spans[0][1]],
                )
            )
        return sorted(tags, key=lambda t: t.name)


def _occurrences(text: str, phrase: str) -> list[tuple[int, int]]:
    body = r"\s+".join(re.escape(w) for w in phrase.split())
    pattern = re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(text)]
