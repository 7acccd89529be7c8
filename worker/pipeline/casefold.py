"""Case folding exactly as Python's case-insensitive regular expressions see it, for plain
string searches (``str.find``, Aho-Corasick) that must find what ``re.IGNORECASE`` finds.

``re.IGNORECASE`` compares characters by their *simple* lowercase mapping, one character to
one, and treats a few more as equal (``i``/``ı``, ``s``/``ſ``, ``σ``/``ς``, ``µ``/``μ``, the
Greek symbol forms, some old Cyrillic letters: ``re._casefix``).  :func:`fold` maps every
character of a text to one representative of its class, so the folded text has the same
length as the text (offsets carry over unchanged) and two characters are equal under
``re.IGNORECASE`` exactly when their folds are equal.  ``str.lower`` alone differs in two
places: it turns ``İ`` into two characters, and it does not join the extra classes.

``is_word`` and ``str.isspace`` are ``\\w`` and ``\\s`` of ``re`` on ``str`` patterns.
tests/unit/test_casefold.py holds all of it to ``re`` itself.
"""

from __future__ import annotations

import re

#: re._casefix._EXTRA_CASES (CPython 3.11-3.13): characters equal under re.IGNORECASE beyond
#: their simple lowercase mapping, as classes of lowercase characters.
_EXTRA_CLASSES: tuple[str, ...] = (
    "\u0069\u0131",  # i ı
    "\u0073\u017f",  # s ſ
    "\u00b5\u03bc",  # µ μ
    "\u0345\u03b9\u1fbe",  # ι ι
    "\u0390\u1fd3",  # ΐ ΐ
    "\u03b0\u1fe3",  # ΰ ΰ
    "\u03b2\u03d0",  # β ϐ
    "\u03b5\u03f5",  # ε ϵ
    "\u03b8\u03d1",  # θ ϑ
    "\u03ba\u03f0",  # κ ϰ
    "\u03c0\u03d6",  # π ϖ
    "\u03c1\u03f1",  # ρ ϱ
    "\u03c2\u03c3",  # ς σ
    "\u03c6\u03d5",  # φ ϕ
    "\u0432\u1c80",  # в ᲀ
    "\u0434\u1c81",  # д ᲁ
    "\u043e\u1c82",  # о ᲂ
    "\u0441\u1c83",  # с ᲃ
    "\u0442\u1c84\u1c85",  # т ᲄ ᲅ
    "\u044a\u1c86",  # ъ ᲆ
    "\u0463\u1c87",  # ѣ ᲇ
    "\u1c88\ua64b",  # ᲈ ꙋ
    "\u1e61\u1e9b",  # ṡ ẛ
    "\ufb05\ufb06",  # ﬅ ﬆ
)
#: Each member of a class but the first, mapped to the first.
_TO_CLASS: dict[int, str] = {ord(ch): group[0] for group in _EXTRA_CLASSES for ch in group[1:]}
_CLASS_MEMBER = re.compile("[" + "".join(sorted({chr(c) for c in _TO_CLASS})) + "]")
_DOTTED_CAPITAL_I = "\u0130"  # str.lower: "i̇" (two characters); re's simple mapping: "i"


# The last text folded and its fold: the tag stage folds one document's text several times
# (the taxonomy's scanner, regex rules' pre-filter, keywords).  Kept by identity (the text
# object itself is held, so its id cannot be reused), for texts of _MEMO_MIN to _MEMO_MAX
# characters: a title, folded between two folds of the text, is cheap and does not evict it.
_MEMO_MIN = 256
_MEMO_MAX = 1 << 20
_memo: list[tuple[str, str]] = [("", "")]  # one entry, replaced whole (thread-safe)


def fold(text: str) -> str:
    """``text`` with every character replaced by its class under ``re.IGNORECASE``; same length."""
    last, last_folded = _memo[0]
    if text is last:
        return last_folded
    folded = _fold(text)
    if _MEMO_MIN < len(text) <= _MEMO_MAX:
        _memo[0] = (text, folded)
    return folded


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    if _DOTTED_CAPITAL_I in text:
        text = text.replace(_DOTTED_CAPITAL_I, "i")
    lowered = text.lower()
    if _CLASS_MEMBER.search(lowered):
        lowered = lowered.translate(_TO_CLASS)
    return lowered


def is_word(ch: str) -> bool:
    """``re``'s ``\\w`` for one character of a ``str``."""
    return ch.isalnum() or ch == "_"


def find_phrase(text: str, phrase: str, folded: str | None = None) -> list[tuple[int, int]]:
    """Every occurrence of ``phrase``'s words in ``text``, case-insensitively, as whole words,
    any run of whitespace between them: what
    ``re.finditer(r"(?<!\\w)w1\\s+w2...(?!\\w)", text, re.IGNORECASE)`` finds, by ``str.find`` on
    the folded text (``folded``, when the caller already has it, is ``fold(text)``)."""
    words = [fold(w) for w in phrase.split()]
    if not words:
        return []
    if folded is None:
        folded = fold(text)
    first, rest = words[0], words[1:]
    size = len(text)
    found: list[tuple[int, int]] = []
    pos = 0
    while (start := folded.find(first, pos)) >= 0:
        end = start + len(first)
        if start and ((ch := text[start - 1]).isalnum() or ch == "_"):  # is_word, inlined
            pos = start + 1
            continue
        for word in rest:
            gap = end
            while gap < size and text[gap].isspace():
                gap += 1
            if gap == end or not folded.startswith(word, gap):
                end = -1
                break
            end = gap + len(word)
        if end >= 0 and (end == size or not is_word(text[end])):
            found.append((start, end))
            pos = end
        else:
            pos = start + 1
    return found
