"""Keywords: YAKE (unsupervised, statistical, no model files) over the document text.

The extractor is ``yake-rust``, a Rust port of the reference implementation (LIAAD/yake)
with the same ranking and scores at about a fifth of its CPU; docs/tagging.md has the
comparison with the Python package this replaced.

Entities already cover names, so candidates in which every word is capitalised
(``President Donald Trump``) are skipped, and so is a candidate whose words all belong to a
better-ranked keyword (``plant`` after ``power plant``).  What remains are the concepts of a
story: ``power plant``, ``ceasefire``, ``peace deal``.

``yake_rust`` is imported lazily, when a :class:`YakeKeywords` is built; :func:`yake_available`
tells whether it is installed.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from worker.logs import get_logger
from worker.models import NormalisedDocument, Tag

log = get_logger("seedworker.keywords")

MAX_SPANS = 20
SOURCE = "yake"

#: Languages with a stopword list in yake-rust (the reference implementation's 34 lists; it
#: names Czech ``cz``).  ``yake_rust.Yake(language=...)`` panics on any other code, so other
#: languages run without stopwords, as the reference implementation's ``noLang`` list does.
_STOPWORD_CODES = (
    "ar bg br cz da de el en es et fa fi fr hi hr hu hy id it ja lt lv nl no pl pt ro ru sk sl sv tr uk zh"
)
STOPWORD_LANGUAGES = frozenset(_STOPWORD_CODES.split(" "))
_LANGUAGE_ALIASES = {"cs": "cz"}  # ISO 639-1 Czech (what detect_language answers) -> YAKE's name


def yake_available() -> bool:
    try:
        return importlib.util.find_spec("yake_rust") is not None
    except (ImportError, ValueError):
        return False


def stopword_language(language: str) -> str | None:
    """The yake-rust stopword list for an ISO 639-1 code, or None when it has none."""
    code = _LANGUAGE_ALIASES.get(language, language)
    return code if code in STOPWORD_LANGUAGES else None


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
        import yake_rust

        self._yake: Any = yake_rust
        self.top = top
        self.max_ngram = max_ngram
        self.dedup_lim = dedup_lim
        self.candidates = candidates
        self.default_language = default_language
        self._extractors: dict[str | None, Any] = {}  # by stopword list (None: none)

    def _extractor(self, language: str) -> Any:
        code = stopword_language(language)
        if code not in self._extractors:
            options: dict[str, Any] = {
                "ngrams": self.max_ngram,
                "remove_duplicates": True,
                "deduplication_threshold": self.dedup_lim,
            }
            if code is None:
                self._extractors[code] = self._yake.Yake(stopwords=set(), **options)
            else:
                self._extractors[code] = self._yake.Yake(language=code, **options)
        return self._extractors[code]

    def __call__(self, doc: NormalisedDocument) -> list[Tag]:
        text = doc.text
        if not text.strip():
            return []
        language = doc.language if doc.language not in ("", "und") else self.default_language
        try:
            found: list[tuple[str, float]] = self._extractor(language).get_n_best(text, n=self.candidates)
        except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException (a BaseException)
            if type(exc).__name__ != "PanicException":
                raise
            log.warning("keyword extractor failed, no keywords for this document", error=str(exc))
            return []
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
