"""casefold: the folding, ``\\w`` and phrase search agree with ``re.IGNORECASE`` itself."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.pipeline.casefold import _EXTRA_CLASSES, find_phrase, fold, is_word

_ALL = "".join(chr(i) for i in range(sys.maxunicode + 1) if not 0xD800 <= i < 0xE000)
_CASED = [ch for ch in _ALL if ch.lower() != ch or ch.upper() != ch or ch.casefold() != ch]


def test_word_and_space_are_those_of_re() -> None:
    words = set(re.findall(r"\w", _ALL))
    assert {ch for ch in _ALL if is_word(ch)} == words
    assert {ch for ch in _ALL if ch.isspace()} == set(re.findall(r"\s", _ALL))


def test_the_extra_classes_are_those_of_re() -> None:
    casefix = pytest.importorskip("re._casefix")
    expected = {frozenset({chr(k), *map(chr, v)}) for k, v in casefix._EXTRA_CASES.items()}
    assert {frozenset(group) for group in _EXTRA_CLASSES} == expected


def test_every_character_folds_to_one_character_that_re_finds_equal() -> None:
    folded = fold("".join(_CASED))
    assert len(folded) == len(_CASED)
    for ch, rep in zip(_CASED, folded, strict=True):
        assert re.fullmatch(re.escape(ch), rep, re.IGNORECASE), (ch, rep)
        assert re.fullmatch(re.escape(rep), ch, re.IGNORECASE), (ch, rep)
        assert fold(rep) == rep == fold(ch)
    assert fold(_ALL[:0x3000]) == "".join(fold(ch) for ch in _ALL[:0x3000])


def test_characters_with_different_folds_differ_for_re() -> None:
    by_fold: dict[str, list[str]] = {}
    for ch in _CASED:
        by_fold.setdefault(fold(ch), []).append(ch)
    for ch in _CASED:
        for other in {ch.upper(), ch.lower(), ch.title(), ch.swapcase()}:
            if len(other) == 1:
                same = re.fullmatch(re.escape(ch), other, re.IGNORECASE) is not None
                assert same == (fold(ch) == fold(other)), (ch, other)


def test_final_sigma_and_dotted_capital_i() -> None:
    assert fold("ΟΔΟΣ οδος") == fold("οδοσ οδοσ") and len(fold("ΟΔΟΣ")) == 4
    assert fold("İSTANBUL") == "istanbul"
    assert fold("ſtraße K") == "straße k"


def regex_spans(text: str, phrase: str) -> list[tuple[int, int]]:
    """The regex search the keyword spans used until 3 Dec 2026: the oracle."""
    body = r"\s+".join(re.escape(w) for w in phrase.split())
    pattern = re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


_TRICKY = "aAbBsSſkKK \n\t.-_'’1İıIiσςΣß"


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=_TRICKY, max_size=80),
    phrase=st.lists(
        st.text(alphabet=_TRICKY.replace(" ", "").replace("\n", "").replace("\t", ""), min_size=1, max_size=3),
        min_size=1,
        max_size=3,
    ),
)
def test_find_phrase_finds_what_the_regex_finds(text: str, phrase: list[str]) -> None:
    joined = " ".join(phrase)
    assert find_phrase(text, joined) == regex_spans(text, joined)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200), data=st.data())
def test_find_phrase_on_any_text(text: str, data: st.DataObject) -> None:
    words = text.split()
    if words:
        start = data.draw(st.integers(0, len(words) - 1))
        phrase = " ".join(words[start : start + data.draw(st.integers(1, 3))])
        assert find_phrase(text, phrase) == regex_spans(text, phrase)


def test_find_phrase_on_an_article() -> None:
    text = "Power  plant, power\nplant and POWER PLANTS; the power-plant. powerplant"
    assert find_phrase(text, "power plant") == regex_spans(text, "power plant") == [(0, 12), (14, 25)]
    assert find_phrase(text, "") == []


def test_the_last_fold_is_remembered_by_identity_only() -> None:
    """``fold`` keeps the last long text's fold: asked again for that very object it answers
    from memory; an equal text built anew, or a different one, is folded afresh."""
    from worker.pipeline import casefold

    text = "Straße İstanbul ΟΔΟΣ " * 20
    assert fold(text) == casefold._fold(text) == fold(text)
    assert casefold._memo[0][0] is text
    assert fold("A title between two folds of the text") == "a title between two folds of the text"
    assert casefold._memo[0][0] is text  # a short text does not evict it
    assert fold(text.upper()) == casefold._fold(text.upper())
    rebuilt = "".join(list(text))
    assert rebuilt is not text and fold(rebuilt) == casefold._fold(text)
    assert fold("short") == "short"
