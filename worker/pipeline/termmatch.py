"""How a topic rule's terms are found in a text (``taxonomy.Rule`` builds its finders here).

* ``whole_words``: one regex for many ``any``/``all``/``literal`` terms, built as a character
  trie, each term matched as whole words (the reference for ``termscan``'s automaton);
* ``Gate`` and ``Words``: a set look-up that skips a text which cannot match a rule, before
  any scan (the words of a document's fields are split once and shared by all rules);
* ``regex_finder`` and ``FuzzyFinder``: the ``regex`` and ``fuzzy`` algorithms' finders.
"""

from __future__ import annotations

import bisect
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.pipeline.casefold import fold

_sre_parser: Any = importlib.import_module("re._parser")  # re's own parser (sre_parse)
_sre_constants: Any = importlib.import_module("re._constants")
_LITERAL, _SUBPATTERN, _BRANCH = _sre_constants.LITERAL, _sre_constants.SUBPATTERN, _sre_constants.BRANCH
_REPEATS = (_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT, _sre_constants.POSSESSIVE_REPEAT)

__all__ = [
    "FOLD_TRAPS",
    "TOKEN",
    "FieldWords",
    "FuzzyFinder",
    "Gate",
    "Words",
    "literal_atoms",
    "regex_finder",
    "required_literals",
    "term_atoms",
    "trie",
    "whole_words",
]

WORD_CHAR = re.compile(r"\w")
TOKEN = re.compile(r"\w+")
OPEN_ENDED = frozenset({r"\w*", r"(?!\w)"})


def term_atoms(term: str) -> list[str]:
    """An any/all term as regex atoms: flexible whitespace, optional trailing ``*``."""
    wildcard = term.endswith("*")
    core = term.rstrip("*").strip()
    atoms: list[str] = []
    for i, part in enumerate(core.split()):
        if i:
            atoms.append(r"\s+")
        atoms.extend(re.escape(ch) for ch in part)
    if wildcard:
        atoms.append(r"\w*")
    return atoms


def literal_atoms(phrase: str) -> list[str]:
    return [re.escape(ch) for ch in phrase]


def whole_words(terms: list[str], to_atoms: Callable[[str], list[str]], flags: int) -> str:
    r"""One regex matching any of ``terms`` as whole words, built as a character trie.

    A trie (``pres(?:iden(?:cy|t))``) instead of a flat alternation lets the regex engine
    reject most positions after one character; with the shared ``(?<!\w)`` in front it is
    about 15x faster than one alternative per term on a news article.  Longer terms win:
    at a node where a term ends, the longer continuations are tried first.
    """
    fold = (lambda t: t) if not flags & re.IGNORECASE else str.lower
    word_start: list[list[str]] = []
    other: list[list[str]] = []
    for term in terms:
        atoms = to_atoms(fold(term))
        wildcard = to_atoms is term_atoms and term.endswith("*")
        core = term.rstrip("*").strip() if wildcard else term
        if wildcard or WORD_CHAR.match(core[-1]):
            atoms.append(r"(?!\w)")
        (word_start if WORD_CHAR.match(core[0]) else other).append(atoms)
    parts = []
    if word_start:
        parts.append(r"(?<!\w)" + trie(word_start))
    if other:
        parts.append(trie(other))
    return "|".join(parts)


def trie(sequences: list[list[str]]) -> str:
    end = ""
    root: dict[str, Any] = {}
    for seq in sequences:
        node = root
        for atom in seq:
            node = node.setdefault(atom, {})
        node[end] = {}

    def build(node: dict[str, Any]) -> str:
        terminal = end in node
        # literal continuations before a wildcard or the end, so the longest term wins
        ordered = sorted((a for a in node if a), key=lambda a: (a in OPEN_ENDED, a))
        alternatives = [atom + build(node[atom]) for atom in ordered]
        if not alternatives:
            return ""
        if len(alternatives) == 1 and not terminal:
            return alternatives[0]
        group = "(?:" + "|".join(alternatives) + ")"
        return group + "?" if terminal else group

    return "(?:" + build(root) + ")"


# Characters that Python's case-insensitive matching equates with an ASCII letter although
# str.lower() does not turn them into it: dotted capital I (simple lowercase "i", full
# lowercase "i" + U+0307), dotless i and long s (the regex engine's equivalence classes).  A
# text holding one is scanned by every case-insensitive rule, ungated.
FOLD_TRAPS = re.compile("[\u0130\u0131\u017f]")


@dataclass(frozen=True, slots=True)
class Gate:
    """What a whole-word finder needs in a text: its first word, at a word start.

    Every term of an ``any``/``all``/``literal`` finder that starts with a word character
    starts, in the text, a maximal run of word characters (the ``(?<!\\w)`` in front) equal
    to the term's own first run -- or starting with it, for a one-word term with ``*``.  So a
    text whose words include none of ``exact`` and start with none of ``prefixes`` cannot
    match; checking that costs a set lookup per term instead of a scan of the text.  Built
    only for ASCII terms that start with a word character; otherwise ``of`` answers None and
    the finder always runs.
    """

    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, terms: list[str], *, wildcards: bool, case_sensitive: bool) -> Gate | None:
        exact: set[str] = set()
        prefixes: set[str] = set()
        for term in terms:
            wildcard = wildcards and term.endswith("*")
            core = term.rstrip("*").strip() if wildcard else term
            first = TOKEN.match(core)  # None unless the term starts with a word character
            if first is None or not core.isascii():
                return None
            run = first.group() if case_sensitive else first.group().lower()
            (prefixes if wildcard and first.end() == len(core) else exact).add(run)
        return cls(frozenset(exact), tuple(sorted(prefixes)))

    def may_match(self, words: FieldWords | None) -> bool:
        if words is None:  # the text holds a case-folding trap: scan it
            return True
        if not self.exact.isdisjoint(words.words):
            return True
        for prefix in self.prefixes:
            i = bisect.bisect_left(words.ordered, prefix)
            if i < len(words.ordered) and words.ordered[i].startswith(prefix):
                return True
        return False


@dataclass(frozen=True, slots=True)
class FieldWords:
    words: frozenset[str]
    ordered: list[str]  # sorted, for prefix look-ups


class Words:
    """The words of one document's fields, split once and shared by all rules' gates."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bool], FieldWords | None] = {}

    def of(self, fld: str, text: str, case_sensitive: bool) -> FieldWords | None:
        key = (fld, case_sensitive)
        if key not in self._cache:
            if not case_sensitive and FOLD_TRAPS.search(text):
                self._cache[key] = None
            else:
                found = set(TOKEN.findall(text if case_sensitive else text.lower()))
                self._cache[key] = FieldWords(frozenset(found), sorted(found))
        return self._cache[key]


def regex_finder(pattern: re.Pattern[str]) -> Callable[[str], list[tuple[int, int, float]]]:
    """The non-empty matches of ``pattern``.  A text that holds none of the strings every
    match contains (:func:`required_literals`) is not scanned: one ``str`` search per string
    instead of the regex's scan (a case-insensitive alternation tries every position)."""
    needles = required_literals(pattern)

    def find(text: str) -> list[tuple[int, int, float]]:
        if needles is not None and not _holds_any(text, needles):
            return []
        return [(m.start(), m.end(), 1.0) for m in pattern.finditer(text) if m.end() > m.start()]

    return find


#: (string, case-insensitive): one of them is in every match of a pattern.
Needles = frozenset[tuple[str, bool]]


def _holds_any(text: str, needles: Needles) -> bool:
    folded: str | None = None
    for needle, insensitive in needles:
        if insensitive:
            if folded is None:
                folded = fold(text)
            if needle in folded:
                return True
        elif needle in text:
            return True
    return False


def required_literals(pattern: re.Pattern[str]) -> Needles | None:
    """Strings one of which every match of ``pattern`` contains, from its parse tree, or
    None when there are none to find (the pattern is scanned always).  A case-insensitive
    string is folded (worker/pipeline/casefold.py): it is then in ``fold(text)`` wherever
    ``re.IGNORECASE`` matched it.  Only literal characters, groups, alternations and
    repeats of at least one are looked into; everything else (classes, ``.``, lookarounds,
    back-references, optional parts) only ends a run of literal characters."""
    try:
        tree = _sre_parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # a pattern re compiled but this parser does not know: scan always
        return None
    return _required(tree, pattern.flags)


def _required(items: Any, flags: int) -> Needles | None:
    best: Needles | None = None

    def consider(found: Needles | None) -> None:
        nonlocal best
        if found and all(needle for needle, _ in found) and (best is None or _rank(found) > _rank(best)):
            best = found

    run: list[str] = []
    run_insensitive = False
    for op, av in items:
        if op is _LITERAL:
            insensitive = bool(flags & re.IGNORECASE)
            if run and insensitive != run_insensitive:
                consider(_run(run, run_insensitive))
                run = []
            run.append(chr(av))
            run_insensitive = insensitive
            continue
        if run:
            consider(_run(run, run_insensitive))
            run = []
        if op is _SUBPATTERN:
            _, add, remove, sub = av
            consider(_required(sub, (flags | add) & ~remove))
        elif op is _BRANCH:
            branches = [_required(sub, flags) for sub in av[1]]
            if all(b is not None for b in branches):
                consider(frozenset().union(*branches))  # type: ignore[arg-type]
        elif op in _REPEATS and av[0] >= 1:
            consider(_required(av[2], flags))
    if run:
        consider(_run(run, run_insensitive))
    return best


def _run(chars: list[str], insensitive: bool) -> Needles:
    text = "".join(chars)
    return frozenset({(fold(text) if insensitive else text, insensitive)})


def _rank(needles: Needles) -> tuple[int, int]:
    """The more selective: the longest shortest string, then the fewer strings."""
    return (min(len(n) for n, _ in needles), -len(needles))


class FuzzyFinder:
    """rapidfuzz ``ratio`` of one term against the text's word n-grams of about its length.

    Only windows of ``k-1``, ``k`` and ``k+1`` words are scored (``k`` = the term's word
    count), each distinct window string once, so the cost is linear in the text's words.
    Overlapping windows are resolved greedily by best score.
    """

    def __init__(self, term: str, cutoff: float, case_sensitive: bool) -> None:
        self.case_sensitive = case_sensitive
        words = TOKEN.findall(term)
        self.term = " ".join(words) if case_sensitive else " ".join(words).casefold()
        self.sizes = sorted({max(1, len(words) - 1), len(words), len(words) + 1})
        self.cutoff = cutoff

    def __call__(self, text: str) -> list[tuple[int, int, float]]:
        from rapidfuzz import fuzz, process

        tokens = [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]
        if not tokens:
            return []
        windows: dict[str, list[tuple[int, int]]] = {}
        for size in self.sizes:
            for i in range(len(tokens) - size + 1):
                chunk = tokens[i : i + size]
                key = " ".join(t[2] for t in chunk)
                if not self.case_sensitive:
                    key = key.casefold()
                windows.setdefault(key, []).append((chunk[0][0], chunk[-1][1]))
        choices = list(windows)
        hits = process.extract(self.term, choices, scorer=fuzz.ratio, score_cutoff=self.cutoff, limit=None)
        candidates = sorted(
            ((float(score), start, end) for key, score, _ in hits for start, end in windows[key]),
            key=lambda c: (-c[0], c[1], c[2]),
        )
        taken: list[tuple[int, int, float]] = []
        for score, start, end in candidates:
            if all(end <= s or start >= e for s, e, _ in taken):
                taken.append((start, end, score / 100.0))
        return sorted(taken)
