"""Keywords: the phrases a story is about, from one pass over its words.

Candidates are maximal runs of content words (RAKE-style): a run ends at punctuation, a line
break, a number (a word that starts with a digit), a stopword, a possessive (``Russia's``) or
a change between capitalised and lower-case words, so ``Russian President Vladimir Putin`` and
``ceasefire proposal`` come out whole and apart. A candidate's score is how often it occurs
times how rare its words are (common words count 0.5, rare ones 1), a little more for phrases
than for single words and for what the first paragraph already says. A single word needs two
occurrences unless it is rare, and then counts half. In English a lower-case run does not end
in a past tense (``city council voted``).

Rarity is the rank list of the most frequent words of Wikipedia that jusText (BSD) ships for
its stoplists (trafilatura's dependency, so already installed), and the stopwords are spaCy's
(MIT) per language, read from the installed package's files without importing spaCy; English
adds the words that fill news copy without saying what it is about (``said``, ``adding``,
``expected``, weekdays).  No model, no download, deterministic.  Until 3 Dec 2026 this was
YAKE (yake-rust): ~7x the CPU and weaker phrases (docs/benchmarks.md, "Keywords: old and new,
side by side").

The tags keep YAKE's kind and source (``keyword``, ``yake``), so stored tags, consumers and
``tags retag`` see one kind of keyword tag.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from worker.models import NormalisedDocument, Tag
from worker.pipeline.casefold import find_phrase, fold

MAX_SPANS = 20
SOURCE = "yake"  # kept from the YAKE extractor this replaced: one source for keyword tags

_COMMON_WEIGHT = 0.5
_LONE_WORD = 0.5  # a single word that occurs once
_PHRASE_BONUS = 0.6  # per extra word
_LEAD_CHARS = 600  # the first paragraph or so: what the story is about
_LEAD_BONUS = 1.5
_MAX_PHRASE_WORDS = 4
_WORD_RE = r"\w+(?:[-'’.&]\w+)*(?:(?<=\.\w)\.)?"  # U.S. and Russia's are one word each
_WORD = re.compile(_WORD_RE)
_SEGMENT = re.compile(f"{_WORD_RE}(?: {_WORD_RE})*")
_POSSESSIVE = ("'s", "’s")

#: Words of news copy that say nothing about the story, on top of spaCy's English stopwords.
_NEWS_FILLER_EN = frozenset(
    """
    said says say saying told tell tells added adding adds noted noting stated asked announced reported
    reportedly expected expects expect according including include includes included remained remains
    continued continue continues called calls spoke speaking statement statements comment comments
    believe believes believed think thinks thought want wants wanted looks looking looked seen sees
    hopes hoped hoping going gone got get gets getting make makes made making take takes took taken
    come comes came coming give gives gave given set sets put puts hit hits left right way ways thing
    things lot lots kind part parts number numbers time times day days week weeks month months year
    years today yesterday tomorrow tonight morning evening afternoon night recent recently later earlier
    ago new old big small large good bad high low long short little great major key main latest last
    next first second third people person man men woman women percent cent per mr mrs ms dr st
    monday tuesday wednesday thursday friday saturday sunday january february march april may june
    july august september october november december likely unlikely possible many much several
    hundred thousand million billion trillion dollars euros official officials reporters spokesperson
    spokesman spokeswoman far
    """.split()  # noqa: SIM905 - a word list reads better as text
)
#: ISO 639-1 -> the name of jusText's stoplist (its rank lists of frequent words).
_JUSTEXT_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque",
    "fa": "Persian", "fi": "Finnish", "fr": "French", "ga": "Irish", "he": "Hebrew", "hi": "Hindi",
    "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian", "is": "Icelandic", "it": "Italian",
    "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "no": "Norwegian_Bokmal", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian",
    "sr": "Serbian", "sv": "Swedish", "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese",
}  # fmt: skip
_SPACY_CODES = {"no": "nb"}


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _strings_of(source: str) -> Iterable[str]:
    """Every string constant of a Python file (spaCy writes its stopwords as one big string)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


@functools.cache
def stopwords(language: str) -> frozenset[str]:
    """spaCy's stopwords for an ISO 639-1 code (folded), plus news filler for English;
    empty for a language spaCy has no list for."""
    spacy_dir = _package_dir("spacy")
    code = _SPACY_CODES.get(language, language)
    path = spacy_dir / "lang" / code / "stop_words.py" if spacy_dir and code.isalpha() else None
    words: set[str] = set()
    if path is not None and path.is_file():
        words = {fold(w) for s in _strings_of(path.read_text(encoding="utf-8")) for w in s.split()}
    if language == "en":
        words |= _NEWS_FILLER_EN
    return frozenset(words)


@functools.cache
def common_words(language: str) -> frozenset[str]:
    """jusText's list of the most frequent words of Wikipedia in ``language`` (folded)."""
    name = _JUSTEXT_NAMES.get(language)
    justext_dir = _package_dir("justext")
    if name is None or justext_dir is None:
        return frozenset()
    path = justext_dir / "stoplists" / f"{name}.txt"
    if not path.is_file():
        return frozenset()
    return frozenset(fold(w) for line in path.read_text(encoding="utf-8").split() for w in _WORD.findall(line))


@dataclass
class _Candidate:
    words: tuple[str, ...]
    surface: str
    first: int
    count: int = 0
    lead: bool = False
    spans: list[tuple[int, int]] = field(default_factory=list)


class PhraseKeywords:
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


#: The name this extractor had while it was YAKE (bench/tagging.py builds it by that name).
YakeKeywords = PhraseKeywords
