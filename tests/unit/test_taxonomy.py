"""Topic rules: schema validation, every algorithm, the shipped news taxonomy."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import ConfigError
from worker.models import NormalisedDocument, Tag
from worker.pipeline.taxonomy import (
    DEFAULT_TAXONOMY,
    MAX_SPANS,
    Taxonomy,
    load_taxonomy,
)
from worker.pipeline.termmatch import term_atoms as _term_atoms
from worker.pipeline.termmatch import whole_words as _whole_words

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "articles" / "000_fd88bd66912dc591.txt"
DATELINE = "WASHINGTON (AP) — "


def example_text() -> str:
    raw = EXAMPLE.read_text(encoding="utf-8")
    return raw[raw.index(DATELINE) + len(DATELINE) :]


def doc(text: str, title: str | None = None) -> NormalisedDocument:
    return NormalisedDocument(text=text, title=title, canonical_hash="0" * 64, language="en")


def rules(**tags: dict[str, object]) -> Taxonomy:
    return Taxonomy.from_mapping({"tags": tags}, source="test.toml")


def topics(taxonomy: Taxonomy, text: str, title: str | None = None) -> dict[str, Tag]:
    return {t.name: t for t in taxonomy.match(doc(text, title))}


# -- the shipped taxonomy ----------------------------------------------------------------------


def test_shipped_taxonomy_loads_with_sensible_topics() -> None:
    taxonomy = load_taxonomy(None)
    assert taxonomy.source == str(DEFAULT_TAXONOMY)
    assert 20 <= len(taxonomy) <= 30
    expected = {
        "politics", "elections", "war-and-conflict", "diplomacy", "economy", "markets",
        "energy", "nuclear", "climate", "health", "technology", "ai", "crime-and-justice",
        "sport", "culture", "science", "disasters",
    }  # fmt: skip
    assert expected <= set(taxonomy.names)
    assert taxonomy.names == sorted(taxonomy.names)


def test_every_shipped_topic_is_an_iptc_media_topic() -> None:
    """Each rule names its IPTC Media Topic; together they cover the 17 top-level topics
    (codes as listed by AFP's topic documentation, docs/tagging.md) and no code is used twice."""
    codes = {rule.name: rule.spec.code for rule in load_taxonomy(None).rules}
    assert all(code and re.fullmatch(r"medtop:\d{8}", code) for code in codes.values()), codes
    assert len(set(codes.values())) == len(codes)
    top_level = {f"medtop:{n:02d}000000" for n in range(1, 18)}
    assert top_level <= set(codes.values()), sorted(top_level - set(codes.values()))
    assert codes["politics"] == "medtop:11000000" and codes["sport"] == "medtop:15000000"
    assert codes["war-and-conflict"] == "medtop:16000000" and codes["elections"] == "medtop:20000574"


def test_shipped_taxonomy_on_the_example_article() -> None:
    found = topics(load_taxonomy(None), example_text())
    assert {"politics", "war-and-conflict", "diplomacy", "nuclear", "energy"} <= set(found)
    assert not {"sport", "culture", "health", "elections", "ai", "education"} & set(found)
    war = found["war-and-conflict"]
    assert war.kind == "subject" and war.source == "rule:war-and-conflict" and war.score == 1.0
    assert (war.scheme, war.code) == ("http://cv.iptc.org/newscodes/mediatopic/", "medtop:16000000")
    text = example_text()
    assert all(re.fullmatch(r"[\w\s-]+", text[s:e]) for s, e in war.spans)
    assert war.matched == text[war.spans[0][0] : war.spans[0][1]]


def test_shipped_taxonomy_is_fast() -> None:
    taxonomy = load_taxonomy(None)
    article = doc(example_text())
    taxonomy.match(article)
    start = time.process_time()
    for _ in range(20):
        taxonomy.match(article)
    per_doc = (time.process_time() - start) / 20
    assert per_doc < 0.05, f"{per_doc * 1000:.1f} ms per document"


# -- algorithms --------------------------------------------------------------------------------


def test_any_matches_whole_words_only() -> None:
    t = rules(politics={"match": ["president", "parliament"]})
    assert "politics" in topics(t, "The President spoke.")
    assert "politics" not in topics(t, "Presidential hopefuls and parliamentarians met.")


def test_any_phrases_wildcards_and_string_form() -> None:
    t = rules(
        elections={"match": 'elect* "polling station"'},
        house={"match": ["white house"]},
    )
    assert t.rule("elections").spec.terms() == ["elect*", "polling station"]
    found = topics(t, "The polling\n station opened; the elected mayor and the electorate.")
    assert found["elections"].count == 3
    assert found["elections"].matched == "polling\n station"
    assert "house" in topics(t, "at the White   House today")
    assert "house" not in topics(t, "a white houseboat")
    assert "elections" not in topics(t, "selected")


def test_longest_term_wins_at_the_same_place() -> None:
    t = rules(x={"match": ["nuclear", "nuclear power plant", "power"]})
    tag = topics(t, "the nuclear power plant")["x"]
    assert tag.count == 1 and tag.matched == "nuclear power plant"


def test_terms_with_punctuation() -> None:
    t = rules(x={"match": ["U.S.", "s&p 500", "c++", "al-qaida"]})
    tag = topics(t, "U.S. stocks, the S&P 500, C++ and al-Qaida; not US or c")["x"]
    assert tag.count == 4


def test_all_needs_every_term() -> None:
    t = rules(deal={"match": ["ceasefire", "russia"], "algorithm": "all"})
    assert "deal" in topics(t, "Russia and the ceasefire")
    assert "deal" not in topics(t, "the ceasefire holds")
    # the terms may be spread over the fields
    assert "deal" in topics(t, "talks on a ceasefire", title="Russia")


def test_literal_is_the_exact_phrase() -> None:
    t = rules(x={"match": "peace deal", "algorithm": "literal"})
    assert "x" in topics(t, "a peace deal was near")
    assert "x" not in topics(t, "a peace  deal was near")  # literal: no whitespace folding
    assert "x" not in topics(t, "a deal for peace")
    assert "x" not in topics(t, "peace dealers")


def test_regex() -> None:
    t = rules(ai={"match": [r"\bAI\b", r"(?i:machine learning)"], "algorithm": "regex"})
    t_cs = rules(
        ai={"match": [r"\bAI\b"], "algorithm": "regex", "case_sensitive": True},
    )
    assert topics(t, "AI and Machine Learning")["ai"].count == 2
    assert "ai" in topics(t, "ai everywhere")  # case-insensitive by default
    assert "ai" not in topics(t_cs, "ai everywhere; said Kai")
    assert topics(t_cs, "AI rules")["ai"].matched == "AI"


def test_fuzzy_scores_and_misspellings() -> None:
    t = rules(ukraine={"match": ["Zelenskyy", "cease fire"], "algorithm": "fuzzy"})
    tag = topics(t, "President Zelensky called for a ceasefire.")["ukraine"]
    assert tag.count == 2
    assert tag.score is not None and 0.85 <= tag.score < 1.0
    assert tag.matched == "Zelensky"
    assert "ukraine" not in topics(t, "Nothing of the sort here.")
    strict = rules(x={"match": ["Zelenskyy"], "algorithm": "fuzzy", "min_score": 0.99})
    assert "x" not in topics(strict, "President Zelensky spoke")
    exact = topics(strict, "President Zelenskyy spoke")["x"]
    assert exact.score == 1.0 and exact.spans == [(10, 19)]


def test_fuzzy_is_linear_and_fast_on_long_texts() -> None:
    t = rules(x={"match": ["Zaporizhzhia power plant", "ceasefire"], "algorithm": "fuzzy"})
    long_text = example_text() * 10  # ~5,000 words
    start = time.process_time()
    tag = topics(t, long_text)["x"]
    elapsed = time.process_time() - start
    assert tag.count > MAX_SPANS and len(tag.spans) == MAX_SPANS
    assert elapsed < 1.0, f"fuzzy took {elapsed:.2f} s"


def test_case_sensitive_any() -> None:
    t = rules(x={"match": ["Apple"], "case_sensitive": True})
    assert "x" in topics(t, "Apple shares rose")
    assert "x" not in topics(t, "an apple a day")


def test_fields_title_and_text() -> None:
    t = rules(x={"match": ["ceasefire"], "fields": ["title"]})
    assert "x" not in topics(t, "a ceasefire", title="Talks")
    tag = topics(t, "talks", title="Ceasefire agreed")["x"]
    assert tag.spans == [] and tag.matched == "Ceasefire"  # spans are offsets into the text only
    both = rules(x={"match": ["ceasefire"]})
    tag = topics(both, "the ceasefire", title="Ceasefire")["x"]
    assert tag.count == 2 and tag.matched == "Ceasefire" and tag.spans == [(4, 13)]


def test_min_count() -> None:
    t = rules(x={"match": ["war"], "min_count": 2})
    assert "x" not in topics(t, "the war")
    assert topics(t, "the war, the war")["x"].count == 2


def test_spans_are_capped_but_count_is_not() -> None:
    t = rules(x={"match": ["war"]})
    tag = topics(t, "war " * 50)["x"]
    assert tag.count == 50 and len(tag.spans) == MAX_SPANS
    assert tag.spans[:2] == [(0, 3), (4, 7)]


def test_match_is_sorted_and_deterministic() -> None:
    t = rules(zeta={"match": ["a"]}, alpha={"match": ["a"]}, mid={"match": ["a"]})
    first = t.match(doc("a"))
    assert [tag.name for tag in first] == ["alpha", "mid", "zeta"]
    assert t.match(doc("a")) == first


def test_empty_taxonomy() -> None:
    assert Taxonomy.empty().match(doc("anything")) == []
    assert len(Taxonomy.from_mapping({})) == 0


@settings(max_examples=200, deadline=None)
@given(
    terms=st.lists(st.from_regex(r"[ab]{1,3}\*?", fullmatch=True), min_size=1, max_size=6),
    text=st.from_regex(r"[ab ]{0,30}", fullmatch=True),
)
def test_trie_regex_equals_longest_of_the_separate_terms(terms: list[str], text: str) -> None:
    """The trie built for ``any`` finds what the terms would find one by one, longest first."""
    trie = re.compile(_whole_words(terms, _term_atoms, 0))
    singles = [re.compile(_whole_words([t], _term_atoms, 0)) for t in terms]
    expected = []
    pos = 0
    while pos <= len(text):
        ends = [m.end() for p in singles if (m := p.match(text, pos)) and m.end() > pos]
        if ends:
            expected.append((pos, max(ends)))
            pos = max(ends)
        else:
            pos += 1
    assert [(m.start(), m.end()) for m in trie.finditer(text)] == expected


def ungated(taxonomy: Taxonomy, d: NormalisedDocument) -> list[Tag]:
    """What ``match`` would give if every finder scanned every field (no word gates)."""
    return [tag for rule in taxonomy.rules if (tag := rule.apply(d)) is not None]


_GATE_RULES = rules(
    anyrule={"match": ["sta*", "big tech", "covid-19", "u.s.", "kit"]},
    other={"match": ["#tag", "straße*", "kit"]},
    allrule={"match": ["is*", "kit"], "algorithm": "all"},
    literal={"match": ["Sta-r", "is kit."], "algorithm": "literal"},
    cased={"match": ["KIT", "Is*"], "case_sensitive": True},
    titled={"match": ["big*"], "fields": ["title"]},
)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="sStTaAkKiIbg -.#19\u0130\u0131\u017f\u212a\u00dfé\n", max_size=60),
    title=st.none() | st.text(alphabet="bigBIG ta*\u0130", max_size=12),
)
def test_word_gates_never_change_what_matches(text: str, title: str | None) -> None:
    """The gates only skip scans: with them, every rule finds what a full scan finds, also
    for characters that case-insensitive matching equates with ASCII letters (İ, ı, ſ, K)."""
    d = doc(text, title)
    assert _GATE_RULES.match(d) == ungated(_GATE_RULES, d)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Stars and big   tech", ["anyrule"]),
        ("the ſtars", ["anyrule"]),  # long s: the regex equates it with s
        ("\u0130s the KIT here", ["allrule", "anyrule", "cased", "other"]),  # dotted capital I
        ("covid-19 in the u.s.", ["anyrule"]),
        ("a #tag", ["other"]),  # a term that starts with punctuation is never gated
        ("nothing here", []),
    ],
)
def test_gated_rules_on_tricky_texts(text: str, expected: list[str]) -> None:
    d = doc(text)
    assert [t.name for t in _GATE_RULES.match(d)] == expected == [t.name for t in ungated(_GATE_RULES, d)]


def test_gates_skip_rules_whose_words_are_absent() -> None:
    """Only ASCII terms that start with a word character are gated; regex and fuzzy never."""
    gates = {rule.name: rule._gates for rule in _GATE_RULES.rules}
    assert gates["other"] == (None,)  # '#tag' and 'straße*' cannot be gated
    (terms,) = gates["anyrule"]
    assert terms is not None and terms.exact == {"big", "covid", "u", "kit"} and terms.prefixes == ("sta",)
    (kit,) = gates["literal"]
    assert kit is not None and kit.exact == {"sta", "is"} and kit.prefixes == ()
    is_, kit_ = gates["allrule"]
    assert is_ is not None and is_.prefixes == ("is",) and kit_ is not None and kit_.exact == {"kit"}
    shipped = load_taxonomy(None)
    assert all(g is not None for r in shipped.rules if r.spec.algorithm == "any" for g in r._gates)
    assert all(g is None for r in shipped.rules if r.spec.algorithm == "regex" for g in r._gates)


def test_shipped_taxonomy_same_with_and_without_gates() -> None:
    taxonomy = load_taxonomy(None)
    texts = [example_text(), example_text().upper(), example_text().replace("i", "\u0131")]
    for text in texts:
        d = doc(text, title="Big tech stocks fall")
        assert taxonomy.match(d) == ungated(taxonomy, d)


# -- loading files and reporting problems ------------------------------------------------------


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_load_toml_and_yaml_alike(tmp_path: Path) -> None:
    toml = write(
        tmp_path,
        "t.toml",
        '[tags.politics]\nmatch = ["president"]\n\n[tags.ai]\nmatch = "\\\\bAI\\\\b"\n'
        'algorithm = "regex"\ncase_sensitive = true\n',
    )
    yaml = write(
        tmp_path,
        "t.yaml",
        "tags:\n  politics:\n    match: [president]\n  ai:\n    match: '\\bAI\\b'\n"
        "    algorithm: regex\n    case_sensitive: true\n",
    )
    from_toml, from_yaml = load_taxonomy(toml), load_taxonomy(yaml)
    assert from_toml.names == from_yaml.names == ["ai", "politics"]
    assert from_toml.rule("ai").spec == from_yaml.rule("ai").spec
    sample = doc("The president and AI")
    assert [t.name for t in from_toml.match(sample)] == ["ai", "politics"]
    assert load_taxonomy(write(tmp_path, "empty.yml", "")).names == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('[tags.politics]\nmatch = ["a"]\nalgoritm = "any"\n', "unknown key 'algoritm'"),
        ('[tags.politics]\nmatch = ["a"]\nalgorithm = "anyy"\n', "algorithm"),
        ('[tags.politics]\nmatch = ["(unclosed"]\nalgorithm = "regex"\n', "invalid regex"),
        ('[tags.politics]\nmatch = ["a*"]\nalgorithm = "regex"\n', "matches the empty string"),
        ('[tags.politics]\nmatch = ["a"]\nmin_score = 0.9\n', "only valid with algorithm"),
        ("[tags.politics]\nmatch = []\n", "at least one"),
        ('[tags.politics]\nmatch = ["  "]\n', "at least one"),
        ('[tags.politics]\nmatch = ["a*b"]\n', "only allowed at the end"),
        ('[tags.politics]\nmatch = ["a"]\nfields = ["body"]\n', "fields"),
        ('[tags.politics]\nmatch = ["a"]\nfields = []\n', "fields"),
        ('[tags.politics]\nmatch = ["a"]\nmin_count = 0\n', "min_count"),
        ('[tags.politics]\nmatch = ["a"]\nalgorithm = "fuzzy"\nmin_score = 2\n', "min_score"),
        ("[tags.politics]\nalgorithm = 'any'\n", "match"),
    ],
)
def test_invalid_rules_name_file_tag_and_reason(tmp_path: Path, content: str, reason: str) -> None:
    path = write(tmp_path, "bad.toml", content)
    with pytest.raises(ConfigError) as info:
        load_taxonomy(path)
    message = str(info.value)
    assert str(path) in message
    assert "'politics'" in message
    assert reason in message


def test_problems_outside_a_tag(tmp_path: Path) -> None:
    cases = {
        "syntax.toml": ("[tags.politics\nmatch = 1\n", "invalid TOML"),
        "top.toml": ('[topics.politics]\nmatch = ["a"]\n', "unknown key 'topics'"),
        "name.toml": ('[tags."  "]\nmatch = ["a"]\n', "tag name"),
        "list.yaml": ("- a\n- b\n", "top level must be a table/mapping"),
        "broken.yaml": ("tags: [a\n", "invalid YAML"),
        "rules.json": ("{}", "must end in .toml, .yaml or .yml"),
    }
    for name, (content, reason) in cases.items():
        path = write(tmp_path, name, content)
        with pytest.raises(ConfigError, match=re.escape(reason)) as info:
            load_taxonomy(path)
        assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_taxonomy(tmp_path / "missing.toml")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.toml",
        '[tags.one]\nmatch = ["a"]\nbogus = 1\n\n[tags.two]\nmatch = ["b"]\nalgorithm = "x"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_taxonomy(path)
    assert "'one'" in str(info.value) and "'two'" in str(info.value)


def test_schema_and_compile_problems_are_reported_together(tmp_path: Path) -> None:
    content = '[tags.one]\nmatch = ["(x"]\nalgorithm = "regex"\n\n[tags.two]\nmatch = "b"\nalgo = 1\n'
    path = write(tmp_path, "bad.toml", content)
    with pytest.raises(ConfigError) as info:
        load_taxonomy(path)
    lines = str(info.value).splitlines()
    assert f"{path}: tag 'two': unknown key 'algo'" in lines
    assert any(line.startswith(f"{path}: tag 'one': invalid regex") for line in lines)


# -- the one-pass scanner (worker/pipeline/termscan.py) against the regexes --------------------

_TERM_CHARS = "abAB-.#ſıİK é"


def _term(draw: st.DrawFn) -> str:
    core = draw(st.text(alphabet=_TERM_CHARS, min_size=1, max_size=5)).strip()
    core = " ".join(core.split()) or "a"
    return core + ("*" if draw(st.booleans()) and core[-1] != "*" else "")


@st.composite
def _rules(draw: st.DrawFn) -> Taxonomy:
    tags: dict[str, dict[str, object]] = {}
    for i in range(draw(st.integers(1, 4))):
        algorithm = draw(st.sampled_from(["any", "all", "literal"]))
        terms = [_term(draw) for _ in range(draw(st.integers(1, 4)))]
        if algorithm == "literal":
            terms = [t.rstrip("*") or "a" for t in terms]
        tags[f"r{i}"] = {
            "match": terms,
            "algorithm": algorithm,
            "case_sensitive": draw(st.booleans()),
            "fields": draw(st.sampled_from([["title", "text"], ["text"], ["title"]])),
            "min_count": draw(st.integers(1, 3)),
        }
    return rules(**tags)


@settings(max_examples=400, deadline=None)
@given(
    taxonomy=_rules(),
    text=st.text(alphabet="abAB \n\t-.#_ſıİKkéσς1\U0001f600", max_size=60),
    title=st.none() | st.text(alphabet="abAB -.", max_size=12),
)
def test_one_pass_scanner_finds_what_the_regexes_find(taxonomy: Taxonomy, text: str, title: str | None) -> None:
    """Whole words, phrases over any whitespace, wildcards, terms that start or end with
    punctuation, case folding (İ, ı, ſ, K, final sigma), overlapping and nested terms,
    characters outside the BMP: the scanner gives every rule the matches of its regex, and the
    tag built from them (Rule._apply_scanned) is the one built from the regexes' matches."""
    d = doc(text, title)
    assert taxonomy.match(d) == ungated(taxonomy, d)


def _corpus_texts() -> list[str]:
    from bench import corpus

    return [example_text(), *(corpus.article(i).decode("utf-8") for i in range(400))]


def test_shipped_taxonomy_one_pass_equals_the_regexes_on_a_corpus() -> None:
    """The shipped taxonomy on the example article and 400 generated articles (40 of them also
    upper-cased and with dotless i's): identical tags (spans, counts, matched text)."""
    taxonomy = load_taxonomy(None)
    tagged = 0
    for n, text in enumerate(_corpus_texts()):
        variants = (text, text.upper(), text.replace("i", "\u0131")) if n < 40 else (text,)
        for variant in variants:
            d = doc(variant, title="Big tech stocks fall as the White House weighs sanctions")
            found = taxonomy.match(d)
            assert found == ungated(taxonomy, d)
            tagged += bool(found)
    assert tagged >= 400
