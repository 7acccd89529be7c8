"""A ``regex`` rule's finder skips a text that holds none of the strings every match of its
pattern contains (issue 21): the same matches as scanning every text, on any pattern."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bench import corpus
from worker.pipeline.casefold import fold
from worker.pipeline.taxonomy import load_taxonomy
from worker.pipeline.termmatch import regex_finder, required_literals

# Letters that fold in unusual ways (K Kelvin, long s, dotted and dotless i, sigmas) and
# word / non-word neighbours.
_ALPHABET = "aAbBsSkK\u212a\u017fiI\u0130\u0131\u03c3\u03a3\u03c2 -._\n1"


def _scanned(pattern: re.Pattern[str], text: str) -> list[tuple[int, int, float]]:
    """Every text scanned: the finder as it was before the pre-filter."""
    return [(m.start(), m.end(), 1.0) for m in pattern.finditer(text) if m.end() > m.start()]


_literal = st.text(_ALPHABET.replace("\n", ""), min_size=1, max_size=4).map(re.escape)
_atom = st.one_of(_literal, st.sampled_from([r"\b", r"\w", ".", "[ab]", r"\s+", r"\d", "(?<!a)"]))


def _compose(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=4).map("".join),
        st.lists(children, min_size=1, max_size=4).map(lambda xs: "(?:" + "|".join(xs) + ")"),
        children.map(lambda x: "(?i:" + x + ")"),
        children.map(lambda x: "(?-i:" + x + ")"),
        children.map(lambda x: "(" + x + ")"),
        st.tuples(children, st.sampled_from(["?", "*", "+", "{2}", "{0,2}", "+?", "{1,3}"])).map("".join),
    )


_patterns = st.recursive(_atom, _compose, max_leaves=10)


@settings(max_examples=1500, deadline=None)
@given(_patterns, st.sampled_from([0, re.IGNORECASE, re.IGNORECASE | re.ASCII]), st.text(_ALPHABET, max_size=60))
def test_the_finder_finds_what_a_scan_finds(source: str, flags: int, text: str) -> None:
    try:
        pattern = re.compile(source, flags)
    except re.error:
        return
    assert regex_finder(pattern)(text) == _scanned(pattern, text)
    # and the strings are really in every match's text
    needles = required_literals(pattern)
    if needles is not None:
        for m in pattern.finditer(text):
            if m.end() > m.start():
                assert any(n in (fold(m.group()) if ci else m.group()) for n, ci in needles)


def test_the_shipped_ai_rule_needs_its_words() -> None:
    rule = load_taxonomy(None).rule("ai")
    flags = 0 if rule.spec.case_sensitive else re.IGNORECASE
    strong, phrases = (required_literals(re.compile(p, flags)) for p in rule.spec.terms())
    assert strong == {("AI", False)}
    assert phrases is not None and ("artificial intelligence", True) in phrases and len(phrases) == 11
    texts = [corpus.article(i).decode("utf-8") for i in range(200)]
    texts += [
        "AI and ARTIFICIAL INTELLIGENCE, Machine Learning, neural networks, ChatGPT, OpenAI's chatbots.",
        "Said again: no ai here, nor Aİ, but \u0130 and \u0131 and DeepMind\u2019s GENERATIVE models.",
    ]
    for source in rule.spec.terms():
        pattern = re.compile(source, flags)
        for text in texts:
            assert regex_finder(pattern)(text) == _scanned(pattern, text)
    assert regex_finder(re.compile(rule.spec.terms()[1], flags))(texts[-2])
