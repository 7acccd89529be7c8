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
        counts, firsts = _candidates(text, folded, stop, trim_past=language == "en")
        scored = []
        for key, count in counts.items():
            if " " not in key:  # one word (the same floats as the phrase formula gives it)
                if count < 2:
                    if len(key) < 4 or key in common:
                        continue
                    score = _LONE_WORD  # count 1, rarity 1.0
                elif len(key) < 3:
                    continue
                else:
                    score = _COMMON_WEIGHT * count if key in common else float(count)
            else:
                words = key.split(" ")
                rarity = sum(_COMMON_WEIGHT if w in common else 1.0 for w in words) / len(words)
                score = count * rarity * (1 + _PHRASE_BONUS * (len(words) - 1))
            first = firsts[key]
            if first < _LEAD_CHARS:
                score *= _LEAD_BONUS
            scored.append((-score, first, key))
        scored.sort()
        chosen: list[tuple[float, str, frozenset[str]]] = []
        for negative, first, key in scored:
            kept_words = frozenset(key.split(" "))
            if any(kept_words <= kept or kept <= kept_words for _, _, kept in chosen):
                continue
            chosen.append((-negative, text[first : first + len(key)], kept_words))
            if len(chosen) == self.top:
                break
        tags = []
        for score, surface, _ in chosen:
            spans = find_phrase(text, surface, folded)
            if not spans:
                continue
            tags.append(
                Tag(
                    kind="keyword",
                    name=surface.casefold(),
                    source=SOURCE,
                    score=round(score / (1.0 + score), 4),
                    count=len(spans),
                    spans=spans[:MAX_SPANS],
                    matched=text[spans[0][0] : spans[0][1]],
                )
            )
        return sorted(tags, key=lambda t: t.name)


# What _candidates needs to know of a token (a word as it stands in the text), by token, per
# (stopwords, trim_past): _BREAK for a word that ends a run (a stopword, a word of one
# character, a number, once folded); else the length of a possessive ending to cut (0 or 2),
# plus _PAST for an English past tense that a lower-case run does not end in, plus _UPPER for
# a word that starts with a capital.  ``fold`` works character by character, so a token's
# fold is the folded text's token.
_BREAK = -1
_PAST = 4
_UPPER = 8
_TOKEN_CACHE_MAX = 100_000
_token_kinds: dict[tuple[frozenset[str], bool], dict[str, int]] = {}


def _token_kind(token: str, stop: frozenset[str], trim_past: bool) -> int:
    folded = fold(token)
    cut = 2 if folded.endswith(_POSSESSIVE) else 0
    word = folded[:-cut] if cut else folded
    if word in stop or len(word) < 2 or word[0].isdigit():
        return _BREAK
    return cut | (_PAST if trim_past and _past_tense(word) else 0) | (_UPPER if token[0].isupper() else 0)


def _candidates(
    text: str, folded: str, stop: frozenset[str], *, trim_past: bool = False
) -> tuple[dict[str, int], dict[str, int]]:
    """Maximal runs of content words, counted by their folded form (the words joined by one
    space: the run's span of the folded text), with where each first occurs.  ``trim_past``:
    a lower-case run does not end in an English past tense (``city council voted``: the
    subject, then its verb); the verb is dropped.

    One pass over the words; a run is its start, its word count and end, and the word count
    and end it has without its trailing past tenses (all words of a run are capitalised or
    none is: a change ends the run)."""
    kinds = _token_kinds.setdefault((stop, trim_past), {})
    if len(kinds) > _TOKEN_CACHE_MAX:
        kinds.clear()
    counts: dict[str, int] = {}
    firsts: dict[str, int] = {}

    def add(start: int, n: int, end: int) -> None:
        if 0 < n <= _MAX_PHRASE_WORDS:
            key = folded[start:end]
            if key in counts:
                counts[key] += 1
            else:
                counts[key] = 1
                firsts[key] = start

    for segment in _SEGMENT.finditer(text):  # words with single spaces between them
        pos = segment.start()
        n = kept = run_start = end = kept_end = capital = 0
        for token in segment.group().split(" "):
            start = pos
            pos += len(token) + 1
            kind = kinds.get(token)
            if kind is None:
                kind = kinds[token] = _token_kind(token, stop, trim_past)
            if kind == _BREAK:
                if n:
                    add(run_start, n, end) if capital else add(run_start, kept, kept_end)
                    n = 0
                continue
            upper = kind & _UPPER
            if n and upper != capital:
                add(run_start, n, end) if capital else add(run_start, kept, kept_end)
                n = 0
            if not n:
                run_start, capital, kept = start, upper, 0
            n += 1
            end = start + len(token) - (kind & 3)
            if not kind & _PAST:
                kept, kept_end = n, end
            if kind & 3:  # a possessive ends the run
                add(run_start, n, end) if capital else add(run_start, kept, kept_end)
                n = 0
        if n:
            add(run_start, n, end) if capital else add(run_start, kept, kept_end)
    return counts, firsts


def _past_tense(word: str) -> bool:
    return len(word) > 4 and word.endswith("ed") and not word.endswith("eed")


#: The name this extractor had while it was YAKE (bench/tagging.py builds it by that name).
YakeKeywords = PhraseKeywords
