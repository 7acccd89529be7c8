"""Agency and feed formats, from the samples in examples/formats/ and from crafted bytes:
IPTC ninjs (1.x, 2.x, 3.x), NewsML-G2 (newsItem, newsMessage) and RSS 2.0 / Atom feeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.errors import InputError, InvalidXML, MissingText, SeveralDocuments, TooLarge, UnsafeXML
from worker.models import NormalisedDocument
from worker.pipeline.formats import detect_format
from worker.pipeline.formats.base import MAX_RECORDS
from worker.pipeline.normalise import normalise, normalise_records

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "formats"


def _sample(name: str) -> NormalisedDocument:
    return normalise((SAMPLES / name).read_bytes(), filename=name)


def _records(name: str, raw: bytes | None = None) -> list[tuple[int | None, NormalisedDocument | InputError]]:
    return normalise_records(raw if raw is not None else (SAMPLES / name).read_bytes(), filename=name)


# --- ninjs ---------------------------------------------------------------------------------


def test_ninjs_1_maps_headline_byline_dates_body_html_and_provider_metadata() -> None:
    doc = _sample("ninjs-1.json")
    assert doc.format == "ninjs"
    assert doc.title == "Harbour authority approves night ferry service"
    assert doc.author == "Jane Doe"
    assert str(doc.date) == "2026-11-24" and doc.date_raw == "2026-11-24T09:30:00Z"  # firstcreated
    assert doc.text.startswith("The harbour authority on Tuesday")  # HTML read, dateline taken off
    assert doc.dateline is not None and (doc.dateline.place, doc.dateline.country) == ("Portsmouth", "GB")
    meta = doc.metadata
    assert meta["urgency"] == 3 and meta["pubstatus"] == "usable"
    assert meta["embargoed"] == "2026-11-24T12:00:00Z"
    assert meta["subheadline"] == "First crossings planned for the spring"
    assert meta["subjects"] == [
        {"scheme": "medtop", "code": "20000735", "name": "transport"},
        {
            "scheme": "medtop",
            "code": "20000740",
            "name": "maritime transport",
            "uri": "http://cv.iptc.org/newscodes/mediatopic/20000740",
        },
    ]
    assert meta["genres"] == [{"scheme": "genre", "code": "Current", "name": "Current"}]
    assert meta["copyrightnotice"] == "Copyright 2026 Example News Agency"
    assert meta["usageterms"] == "For use by subscribers only."
    assert meta["associations"] == [
        {
            "name": "featureimage",
            "uri": "urn:example:photo:2026:ferry-at-dusk",
            "type": "picture",
            "headline": "A ferry at dusk",
        }
    ]
    assert doc.producer_tags == ["ferry", "harbour"]


def test_ninjs_2_reads_headlines_bodies_by_and_subject_uris() -> None:
    doc = _sample("ninjs-2.json")
    assert (doc.format, doc.title, doc.author) == (
        "ninjs",
        "Rail strike called off after improved pay offer",
        "Kim Park",
    )
    assert doc.text.startswith("Train drivers called off")
    assert doc.language == "en"  # en-GB
    assert doc.dateline is not None and (doc.dateline.place, doc.dateline.country) == ("London", "GB")  # located
    assert [s["code"] for s in doc.metadata["subjects"]] == ["20000569", "20000743"]
    assert doc.metadata["subheadline"] == "Services to run as normal"
    assert doc.metadata["associations"] == [
        {"name": "featureimage", "uri": "urn:example:photo:2026:platform", "type": "picture"}
    ]


def test_ninjs_3_camel_case_keys_and_html_bodies() -> None:
    doc = _sample("ninjs-3.json")
    assert doc.format == "ninjs" and doc.title == "Wind farm approved off the coast"
    assert doc.text.startswith("Regulators approved a wind farm")
    assert doc.metadata["pubstatus"] == "usable" and doc.metadata["versioncreated"] == "2026-11-24T08:30:00Z"
    assert doc.metadata["copyrightnotice"] == "Copyright 2026 Example News Agency"
    assert doc.metadata["subjects"][0]["code"] == "20000249"
    assert doc.metadata["genres"] == [{"scheme": "genre", "code": "Current", "name": "Current"}]


def test_ninjs_is_sniffed_whatever_the_name_but_plain_json_stays_json() -> None:
    raw = (SAMPLES / "ninjs-2.json").read_text(encoding="utf-8")
    assert detect_format("item.txt", raw) == "ninjs"
    assert detect_format("item.json", raw) == "ninjs"
    assert detect_format("story.json", (SAMPLES / "story.json").read_text(encoding="utf-8")) == "json"
    assert detect_format("items.jsonl", raw.replace("\n", "")) == "jsonl"
    plain = json.dumps({"uri": "https://example.com/1", "urgency": 2, "versioncreated": "2026", "text": "A story."})
    assert detect_format("plain.json", plain) == "json"  # a producer's own JSON with a uri stays JSON


def test_ninjs_dateline_field_fills_the_dateline_when_the_body_has_none() -> None:
    item = {
        "uri": "urn:x:1",
        "versioncreated": "2026-11-24T10:00:00Z",
        "headline": "Port strike ends",
        "dateline": {"text": "ROTTERDAM, Nov 24 (Reuters)"},
        "body_text": "Dock workers ended their strike on Tuesday after a new pay deal was agreed.",
    }
    doc = normalise(json.dumps(item).encode(), filename="x.json")
    assert doc.dateline is not None
    assert (doc.dateline.place, doc.dateline.country, doc.dateline.agency) == ("Rotterdam", "NL", "Reuters")
    assert doc.dateline.raw == "ROTTERDAM, Nov 24 (Reuters)"


def test_ninjs_without_a_body_fails_missing_text() -> None:
    raw = json.dumps(
        {"$schema": "http://www.iptc.org/std/ninjs/ninjs-schema_1.3.json", "uri": "urn:x", "headline": "No body"}
    ).encode()
    with pytest.raises(MissingText, match="no body_text, body_html or bodies"):
        normalise(raw, filename="x.json")


# --- NewsML-G2 ------------------------------------------------------------------------------


def test_newsml_item_maps_content_meta_rights_and_xhtml_body() -> None:
    doc = _sample("newsml-item.xml")
    assert doc.format == "newsml"
    assert (doc.title, doc.author, doc.language) == ("Museum opens a maritime wing", "Sam Reyes", "en")
    assert doc.text.startswith("The city museum opened a new wing") and "\n\nEntry to the new wing" in doc.text
    assert doc.dateline is not None
    assert (doc.dateline.place, doc.dateline.country, doc.dateline.raw) == ("Bristol", "GB", "BRISTOL, England, Nov 23")
    meta = doc.metadata
    assert (meta["urgency"], meta["pubstatus"], meta["embargoed"]) == (5, "usable", "2026-11-23T12:00:00Z")
    assert meta["uri"] == "urn:example:news:2026:museum-wing" and meta["version"] == "3"
    assert meta["subjects"] == [
        {"scheme": "medtop", "code": "01000000", "name": "arts, culture, entertainment and media"},
        {"scheme": "medtop", "code": "20000038", "name": "museum"},
    ]
    assert meta["copyrightholder"] == "Example News Agency" and meta["usageterms"] == "For use by subscribers only."


def test_newsml_message_gives_one_record_per_item_and_a_bad_item_fails_alone() -> None:
    records = _records("newsml-message.xml")
    assert [r for r, _ in records] == [1, 2, 3]
    first, second, third = (result for _, result in records)
    assert isinstance(first, NormalisedDocument) and first.title == "Harbour bridge reopens after repairs"
    assert first.dateline is not None and first.dateline.place == "Southampton"
    assert isinstance(second, NormalisedDocument) and second.metadata["pubstatus"] == "withheld"
    assert second.text.startswith("The town library reopened")  # inlineData
    assert isinstance(third, MissingText) and third.message.startswith("item 3: ") and third.details["item"] == 3
    with pytest.raises(SeveralDocuments):
        normalise((SAMPLES / "newsml-message.xml").read_bytes(), filename="newsml-message.xml")


def test_newsml_with_an_entity_bomb_or_external_entity_is_refused_unexpanded() -> None:
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE newsItem [<!ENTITY l0 "lol">{laughs}]>'
        '<newsItem xmlns="http://iptc.org/std/nar/2006-10-01/"><contentSet><inlineData>&l9;</inlineData>'
        "</contentSet></newsItem>"
    ).encode()
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE newsItem [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<newsItem xmlns="http://iptc.org/std/nar/2006-10-01/"><contentSet><inlineData>&x;</inlineData>'
        b"</contentSet></newsItem>"
    )
    for raw in (bomb, xxe):
        [(record, error)] = _records("item.xml", raw)
        assert record is None and isinstance(error, UnsafeXML), error


def test_malformed_newsml_fails_invalid_xml_with_its_position() -> None:
    raw = b'<newsItem xmlns="http://iptc.org/std/nar/2006-10-01/"><contentMeta></newsItem>'
    [(_, error)] = _records("item.xml", raw)
    assert isinstance(error, InvalidXML) and error.details["line"] == 1


# --- feeds ----------------------------------------------------------------------------------


def test_rss_items_are_records_with_html_content_categories_and_guid_identity() -> None:
    records = _records("feed.rss")
    assert [r for r, _ in records] == [1, 2, 3]
    first, second, third = (result for _, result in records)
    assert isinstance(first, NormalisedDocument) and first.format == "feed"
    assert first.title == "Council approves budget after long night" and first.author == "Jane Doe"
    assert first.text.startswith("The city council voted") and "\n\nOpposition members" in first.text  # content:encoded
    assert first.producer_tags == ["politics", "council"] and str(first.date) == "2026-11-24"
    assert first.metadata["url"] == "https://news.example.com/2026/11/24/budget"
    assert isinstance(second, NormalisedDocument) and second.author == "Ana Lima"  # "mail (Name)"
    assert second.text.startswith("The harbour bridge reopened")  # escaped HTML description
    assert isinstance(third, InputError) and third.reason == "no_text_extracted" and third.message.startswith("item 3")


def test_the_same_feed_item_in_a_later_feed_has_the_same_identity_even_edited() -> None:
    raw = (SAMPLES / "feed.rss").read_bytes()
    later = raw.replace(b"Opposition members said they would challenge the vote.", b"Opposition members appealed.")
    first, again = _records("feed.rss", raw)[0][1], _records("later.rss", later)[0][1]
    assert isinstance(first, NormalisedDocument) and isinstance(again, NormalisedDocument)
    assert first.text != again.text
    assert first.canonical_hash == again.canonical_hash  # the guid, not the text
    other = _records("feed.rss", raw)[1][1]
    assert isinstance(other, NormalisedDocument) and other.canonical_hash != first.canonical_hash  # by link


def test_a_bare_guid_names_an_item_only_within_its_feed() -> None:
    def feed(link: str) -> bytes:
        return (
            f'<rss version="2.0"><channel><title>T</title><link>{link}</link><item><title>A</title><guid>1</guid>'
            "<description>Two publishers both number their first item one.</description></item></channel></rss>"
        ).encode()

    first, other, again = (
        _records("a.rss", feed(link))[0][1]
        for link in ("https://a.example/", "https://b.example/", "https://a.example/")
    )
    assert isinstance(first, NormalisedDocument) and isinstance(other, NormalisedDocument)
    assert isinstance(again, NormalisedDocument)
    assert first.canonical_hash != other.canonical_hash and first.canonical_hash == again.canonical_hash


def test_atom_entries_read_html_and_xhtml_content_authors_and_ids() -> None:
    records = _records("feed.atom")
    first, second = (result for _, result in records)
    assert isinstance(first, NormalisedDocument) and first.title == "Observatory records a bright meteor shower"
    assert first.date_raw == "2026-11-24T06:00:00Z" and first.author == "Lee Chen"
    assert first.producer_tags == ["Astronomy"]
    assert first.metadata["guid"] == "urn:example:science-desk:meteors"
    assert isinstance(second, NormalisedDocument) and second.text.startswith("The seed bank added")  # xhtml summary


def test_a_feed_of_over_ten_thousand_items_is_refused_whole_and_quickly() -> None:
    items = "".join(f"<item><title>t{i}</title><description>d</description></item>" for i in range(MAX_RECORDS + 1))
    raw = f'<?xml version="1.0"?><rss version="2.0"><channel>{items}</channel></rss>'.encode()
    [(record, error)] = _records("big.rss", raw)
    assert record is None and isinstance(error, TooLarge)


def test_a_feed_of_ten_thousand_items_gives_ten_thousand_records() -> None:
    items = "".join(
        f"<item><title>Item {i}</title><guid>g{i}</guid>"
        f"<description>Short story number {i} about the harbour.</description></item>"
        for i in range(MAX_RECORDS)
    )
    raw = f'<?xml version="1.0"?><rss version="2.0"><channel>{items}</channel></rss>'.encode()
    records = _records("big.rss", raw)
    assert len(records) == MAX_RECORDS and all(isinstance(d, NormalisedDocument) for _, d in records)


def test_feed_sniffed_in_a_txt_and_by_extension() -> None:
    raw = (SAMPLES / "feed.atom").read_bytes()
    assert detect_format("feed.txt", raw.decode()) == "feed"
    assert detect_format("item.xml", (SAMPLES / "newsml-item.xml").read_text(encoding="utf-8")) == "newsml"
    assert [type(d).__name__ for _, d in _records("feed.txt", raw)] == ["NormalisedDocument"] * 2
