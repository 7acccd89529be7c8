"""Stored documents rendered as IPTC ninjs 2.1 (worker/export/ninjs.py), on SQLite and
PostgreSQL: every sample format gives a valid item, an agency item keeps what it said, and
what seedworker renders reads back through its own ninjs parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.ninjs import date_time_problems, ninjs_problems, store_file
from worker.export.ninjs import URN_PREFIX, to_ninjs
from worker.models import Tag
from worker.pipeline.normalise import normalise
from worker.store.engine import make_engine
from worker.store.migrations import upgrade
from worker.store.repository import DocumentStore

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "formats"
RENDERABLE = (
    "ninjs-1.json",
    "ninjs-2.json",
    "ninjs-3.json",
    "newsml-item.xml",
    "newsml-message.xml",
    "feed.rss",
    "press-release.eml",
    "report.pdf",
    "report.docx",
    "header.txt",
    "page.html",
    "story.json",
)
PERSON = Tag(kind="entity", name="Kim Park", label="PERSON", source="spacy:test")
PLACE = Tag(kind="entity", name="London", label="GPE", source="gazetteer", country="GB")
TOPIC = Tag(kind="topic", name="transport", source="auto:v3", score=0.91)


@pytest.fixture
def store(database_url: str) -> DocumentStore:
    upgrade(database_url)
    return DocumentStore(make_engine(database_url), event_source="urn:test")


def _render(store: DocumentStore, doc_id: str) -> dict[str, object]:
    document = store.get_document(doc_id)
    assert document is not None
    return to_ninjs(document)


def test_every_sample_format_renders_as_valid_ninjs_2_1(store: DocumentStore) -> None:
    rendered = 0
    for name in RENDERABLE:
        for doc_id in store_file(store, (SAMPLES / name).read_bytes(), name):
            item = _render(store, doc_id)
            assert ninjs_problems(item) == [], (name, ninjs_problems(item))
            assert date_time_problems(item) == [], (name, item)
            assert {"role": "seedworker", "value": doc_id} in item["altids"]  # type: ignore[operator]
            rendered += 1
    assert rendered >= len(RENDERABLE)


def test_an_agency_item_keeps_its_id_dates_codes_and_rights(store: DocumentStore) -> None:
    (doc_id,) = store_file(store, (SAMPLES / "ninjs-2.json").read_bytes(), "ninjs-2.json", (PERSON, PLACE, TOPIC))
    item = _render(store, doc_id)
    assert item["uri"] == "urn:example:news:2026:rail-strike"  # the provider's id, not ours
    assert (item["version"], item["firstcreated"]) == ("2", "2026-11-24T08:00:00+00:00")
    assert item["versioncreated"] == "2026-11-24T11:00:00+00:00"
    assert (item["urgency"], item["pubstatus"], item["language"]) == (2, "usable", "en")
    assert item["headlines"] == [
        {"role": "main", "value": "Rail strike called off after improved pay offer"},
        {"role": "sub", "value": "Services to run as normal"},
    ]
    assert (item["by"], item["located"]) == ("Kim Park", "London")
    assert item["genres"] == [
        {"name": "Current", "uri": "http://cv.iptc.org/newscodes/genre/Current", "literal": "genre:Current"}
    ]
    subjects = {s["literal"]: s for s in item["subjects"] if "literal" in s}  # type: ignore[union-attr]
    assert subjects["medtop:20000569"] == {
        "name": "labour dispute",
        "creator": "provider",
        "literal": "medtop:20000569",
        "uri": "http://cv.iptc.org/newscodes/mediatopic/20000569",
    }
    assert {"name": "transport", "creator": "auto:v3", "confidence": 91} in item["subjects"]  # type: ignore[operator]
    assert item["people"] == [{"name": "Kim Park", "rel": "mentioned"}]
    assert item["places"] == [{"name": "London", "rel": "mentioned"}]
    assert item["copyrightnotice"] == "Copyright 2026 Example News Agency"
    body = item["bodies"][0]  # type: ignore[index]
    assert body["contenttype"] == "text/plain" and body["value"].startswith("Train drivers called off")
    assert "embargoed" not in item  # it had none: nothing is made up


def test_an_embargoed_newsml_item_renders_its_embargo(store: DocumentStore) -> None:
    (doc_id,) = store_file(store, (SAMPLES / "newsml-item.xml").read_bytes(), "newsml-item.xml")
    item = _render(store, doc_id)
    assert item["uri"] == "urn:example:news:2026:museum-wing"
    assert (item["embargoed"], item["urgency"]) == ("2026-11-23T12:00:00+00:00", 5)
    assert item["copyrightholder"] == "Example News Agency"
    assert item["usageterms"] == "For use by subscribers only."
    assert {
        "name": "museum",
        "creator": "provider",
        "literal": "medtop:20000038",
        "uri": "http://cv.iptc.org/newscodes/mediatopic/20000038",
    } in item["subjects"]  # type: ignore[operator]


def test_a_plain_text_document_gets_a_seedworker_urn_and_only_what_it_has(store: DocumentStore) -> None:
    (doc_id,) = store_file(store, (SAMPLES / "header.txt").read_bytes(), "header.txt")
    item = _render(store, doc_id)
    document = store.get_document(doc_id)
    assert document is not None
    assert item["uri"] == URN_PREFIX + doc_id
    assert not {"urgency", "pubstatus", "embargoed", "genres", "copyrightnotice", "version"} & set(item)
    assert item["headlines"] == [{"role": "main", "value": document.title}]
    assert ninjs_problems(item) == []


def test_what_seedworker_renders_reads_back_through_its_ninjs_parser(store: DocumentStore) -> None:
    for name in ("ninjs-1.json", "newsml-item.xml", "press-release.eml"):
        (doc_id, *_) = store_file(store, (SAMPLES / name).read_bytes(), name)
        document = store.get_document(doc_id)
        assert document is not None
        again = normalise(json.dumps(to_ninjs(document)).encode(), filename="again.json")
        assert again.format == "ninjs"
        assert (again.title, again.author, again.text) == (document.title, document.author, document.text)
        assert (again.urgency, again.pubstatus, again.genre) == (document.urgency, document.pubstatus, document.genre)
        stored_embargo = document.embargoed_until
        assert (again.embargoed_until is None) == (stored_embargo is None)
