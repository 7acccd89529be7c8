"""The keyword extractor as it was before the one-pass rewrite of ``_candidates`` (issue 21,
3 Dec 2026): the oracle tests/unit/test_keywords_identity.py holds worker/pipeline/keywords.py to.
A frozen copy; do not change it."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.models import NormalisedDocument, Tag
from worker.pipeline.casefold import find_phrase, fold
from worker.pipeline.keywords import (
    _COMMON_WEIGHT,
    _LEAD_BONUS,
    _LEAD_CHARS,
    _LONE_WORD,
    _MAX_PHRASE_WORDS,
    _PHRASE_BONUS,
    _POSSESSIVE,
    _SEGMENT,
    MAX_SPANS,
    SOURCE,
    common_words,
    stopwords,
)


@dataclass
class _Candidate:
    words: tuple[str, ...]
    surface: str
    first: int
    count: int = 0
    lead: bool = False
    spans: list[tuple[int, int]] = field(default_factory=list)


class ReferenceKeywords:
    """A keyword extractor for :class:`~worker.pipeline.tag.Tagger` (``keywords=``).

    ``score`` is ``s / (1 + s)`` of the candidate's score ``s``: in (0, 1), higher is better.
    """

    def __init__(self, *, top: int = 8, default_language: str = "en") -> None:
        self.top = top
        self.default_language = default_language

    def __call__(self, doc: NormalisedDocument) -> list[Tag]:
        text = doc.text
        if not text.strip():
            return []
        language = doc.language if doc.language not in ("", "und") else self.default_language
        stop, common = stopwords(language), common_words(language)
        folded = fold(text)
        candidates = _candidates(text, folded, stop, trim_past=language == "en")
        scored = []
        for key, cand in candidates.items():
            single = len(cand.words) == 1
            if single and (
                len(cand.words[0]) < 3 or (cand.count < 2 and (cand.words[0] in common or len(cand.words[0]) < 4))
            ):
                continue
            rarity = sum(_COMMON_WEIGHT if w in common else 1.0 for w in cand.words) / len(cand.words)
            score = cand.count * rarity * (1 + _PHRASE_BONUS * (len(cand.words) - 1))
            if single and cand.count < 2:
                score *= _LONE_WORD
            if cand.lead:
                score *= _LEAD_BONUS
            scored.append((-score, cand.first, key, cand))
        scored.sort(key=lambda s: s[:3])
        chosen: list[tuple[float, _Candidate]] = []
        for negative, _, _, cand in scored:
            words = set(cand.words)
            if any(words <= set(kept.words) or set(kept.words) <= words for _, kept in chosen):
                continue
            chosen.append((-negative, cand))
            if len(chosen) == self.top:
                break
        tags = []
        for score, cand in chosen:
            spans = find_phrase(text, cand.surface, folded)
            if not spans:
                continue
            tags.append(
                Tag(
                    kind="keyword",
                    name=cand.surface.casefold(),
                    source=SOURCE,
                    score=round(score / (1.0 + score), 4),
                    count=len(spans),
                    spans=spans[:MAX_SPANS],
                    matched=text[spans[0][0] : spans[0][1]],
                )
            )
        return sorted(tags, key=lambda t: t.name)


def _candidates(text: str, folded: str, stop: frozenset[str], *, trim_past: bool = False) -> dict[str, _Candidate]:
    """Maximal runs of content words, counted by their folded form.  ``trim_past``: a
    lower-case run does not end in an English past tense (``city council voted``: the
    subject, then its verb); the verb is dropped."""
    found: dict[str, _Candidate] = {}
    run: list[tuple[int, int, str, bool]] = []  # (start, end, folded word, capitalised)

    def close() -> None:
        while trim_past and run and not run[-1][3] and _past_tense(run[-1][2]):
            run.pop()
        if run and len(run) <= _MAX_PHRASE_WORDS:
            words = tuple(w for _, _, w, _ in run)
            key = " ".join(words)
            start, end = run[0][0], run[-1][1]
            cand = found.get(key)
            if cand is None:
                cand = found[key] = _Candidate(words, text[start:end], start)
            cand.count += 1
            cand.lead = cand.lead or start < _LEAD_CHARS
        run.clear()

    for segment in _SEGMENT.finditer(text):  # words with single spaces between them
        pos = segment.start()
        for token in folded[pos : segment.end()].split(" "):
            start = pos
            end = pos = start + len(token)
            pos += 1
            possessive = token.endswith(_POSSESSIVE)
            word = token[:-2] if possessive else token
            end -= len(token) - len(word)
            if word in stop or len(word) < 2 or word[0].isdigit():
                if run:
                    close()
                continue
            capital = text[start].isupper()
            if run and run[-1][3] != capital:
                close()
            run.append((start, end, word, capital))
            if possessive:
                close()
        if run:
            close()
    return found


def _past_tense(word: str) -> bool:
    return len(word) > 4 and word.endswith("ed") and not word.endswith("eed")
