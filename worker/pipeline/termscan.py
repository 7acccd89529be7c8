"""The taxonomy's term rules (``any``, ``all``, ``literal``) in one pass over a text.

Every term of every such finder goes into one Aho-Corasick automaton (pyahocorasick), keyed
by its first word: case-insensitive terms folded as ``re.IGNORECASE`` folds
(worker/pipeline/casefold.py) and searched in the folded text, case-sensitive ones as written
in the text as it is.  Each hit is then checked the way the finder's regex would: whole words
(``(?<!\\w)`` before a term that starts with a word character, ``(?!\\w)`` after one that ends
with one), the further words of a phrase after any run of whitespace, a trailing ``*`` as the
rest of the word.  Per finder, the longest match at each position wins and matches do not
overlap, scanning from the left: what ``re.finditer`` gives on the trie regex of
worker/pipeline/taxonomy.py, which tests/unit/test_taxonomy.py keeps as the oracle.

One pass instead of one regex scan per rule: ~a fifth of the CPU of the 22 scans of the shipped
taxonomy on a news article (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick

from worker.pipeline.casefold import fold, is_word

_WORD_CHAR = re.compile(r"\w")
_WORD_RUN = re.compile(r"\w*")  # re's \w is casefold.is_word (tests/unit/test_casefold.py)


@dataclass(frozen=True, slots=True)
class TermFinder:
    """One finder of a rule: its terms, whether they are literal phrases (``literal``) or
    ``any``/``all`` terms (flexible whitespace, trailing ``*``), and its case sensitivity."""

    terms: tuple[str, ...]
    literal: bool
    case_sensitive: bool


# (finder index, further words, wildcard, word boundary before, word boundary after)
_Entry = tuple[int, tuple[str, ...], bool, bool, bool]


def _entry(index: int, term: str, *, literal: bool, case_sensitive: bool) -> tuple[str, _Entry]:
    """The automaton key and the checks of one term, decided as termmatch.whole_words does:
    boundaries from the term as written, characters from its lower-cased form."""
    lowered = term if case_sensitive else term.lower()
    wildcard = not literal and term.endswith("*")
    core = term.rstrip("*").strip() if wildcard else term
    words = [lowered] if literal else lowered.rstrip("*").strip().split()
    if not case_sensitive:
        words = [fold(w) for w in words]
    before = _WORD_CHAR.match(core[0]) is not None
    after = wildcard or _WORD_CHAR.match(core[-1]) is not None
    return words[0], (index, tuple(words[1:]), wildcard, before, after)


class TermScanner:
    """Finds the matches of many term finders in one pass; ``scan`` is pure."""

    def __init__(self, finders: Sequence[TermFinder]) -> None:
        self.size = len(finders)
        keyed: dict[bool, dict[str, list[_Entry]]] = {False: {}, True: {}}
        for index, finder in enumerate(finders):
            for term in finder.terms:
                key, entry = _entry(index, term, literal=finder.literal, case_sensitive=finder.case_sensitive)
                keyed[finder.case_sensitive].setdefault(key, []).append(entry)
        self._automata: dict[bool, Any] = {}
        for cased, entries in keyed.items():
            if entries:
                automaton = ahocorasick.Automaton()
                for key, found in entries.items():
                    automaton.add_word(key, (len(key), tuple(found)))
                automaton.make_automaton()
                self._automata[cased] = automaton

    def scan(self, text: str) -> dict[int, list[tuple[int, int]]]:
        """Each finder's matches in ``text`` as (start, end), in order; finders without any
        are left out."""
        if not text:
            return {}
        longest: dict[int, dict[int, int]] = {}  # finder -> start -> longest end
        size = len(text)
        for cased, automaton in self._automata.items():
            haystack = text if cased else fold(text)
            for last, (length, entries) in automaton.iter(haystack):
                start = last - length + 1
                free_before = start == 0 or not ((ch := text[start - 1]).isalnum() or ch == "_")  # is_word
                for index, rest, wildcard, before, after in entries:
                    if before and not free_before:
                        continue
                    end = last + 1
                    for word in rest:
                        gap = end
                        while gap < size and text[gap].isspace():
                            gap += 1
                        if gap == end or not haystack.startswith(word, gap):
                            end = -1
                            break
                        end = gap + len(word)
                    if end < 0:
                        continue
                    if wildcard:
                        end = _WORD_RUN.match(text, end).end()  # type: ignore[union-attr]  # \w* always matches
                    elif after and end < size and is_word(text[end]):
                        continue
                    starts = longest.setdefault(index, {})
                    if starts.get(start, -1) < end:
                        starts[start] = end
        found: dict[int, list[tuple[int, int]]] = {}
        for index, starts in longest.items():
            spans: list[tuple[int, int]] = []
            reached = 0
            for start in sorted(starts):
                if start >= reached:
                    spans.append((start, starts[start]))
                    reached = starts[start]
            found[index] = spans
        return found
