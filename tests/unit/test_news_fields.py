"""Urgency, genre, pubstatus and embargo: typed fields of the document, from ninjs and
NewsML-G2 (the samples in examples/formats/ and crafted items), None for other formats."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from worker.models import NormalisedDocument
from worker.pipeline.normalise import normalise

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "formats"
UTC = dt.UTC


def _ninjs(**fields: object) -> NormalisedDocument:
    item = {"uri": "urn:example:1", "body_text": "The council met on Tuesday to approve the budget.", **fields}
    return normalise(json.dumps(item).encode(), filename="item.json")


@pytest.mark.parametrize(
    ("name", "urgency", "pubstatus", "embargo"),
    [
        ("ninjs-1.json", 3, "usable", dt.datetime(2026, 11, 24, 12, 0, tzinfo=UTC)),
        ("ninjs-2.json", 2, "usable", None),
        ("ninjs-3.json", 4, "usable", None),
        ("newsml-item.xml", 5, "usable", dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC)),
    ],
)
def test_agency_samples_give_typed_news_fields(
    name: str, urgency: int, pubstatus: str, embargo: dt.datetime | None
) -> None:
    doc = normalise((SAMPLES / name).read_bytes(), filename=name)
    fields = (doc.urgency, doc.genre, doc.pubstatus, doc.embargoed_until)
    assert fields == (urgency, "genre:Current", pubstatus, embargo)
    assert doc.metadata["urgency"] == urgency  # the metadata keys stay as they were


def test_newsml_message_items_carry_their_own_fields() -> None:
    from worker.pipeline.normalise import normalise_records

    records = normalise_records((SAMPLES / "newsml-message.xml").read_bytes(), filename="newsml-message.xml")
    docs = [d for _, d in records if isinstance(d, NormalisedDocument)]
    assert docs and all(d.format == "newsml" for d in docs)
    assert [d.urgency for d in docs] == [d.metadata.get("urgency") for d in docs]


def test_an_embargo_with_an_offset_is_kept_as_the_same_instant_in_utc() -> None:
    doc = _ninjs(embargoed="2026-12-03T20:00:00+01:00")
    assert doc.embargoed_until == dt.datetime(2026, 12, 3, 19, 0, tzinfo=UTC)
    assert doc.embargoed_until.utcoffset() == dt.timedelta(0)
    assert doc.warnings == []


def test_an_embargo_without_an_offset_is_utc_with_a_warning() -> None:
    doc = _ninjs(embargoed="2026-12-03T20:00:00")
    assert doc.embargoed_until == dt.datetime(2026, 12, 3, 20, 0, tzinfo=UTC)
    assert any("no UTC offset" in w for w in doc.warnings)


def test_an_unreadable_embargo_is_dropped_with_a_warning_never_guessed() -> None:
    doc = _ninjs(embargoed="after the match")
    assert doc.embargoed_until is None
    assert any("embargoed" in w and "not an ISO 8601" in w for w in doc.warnings)
    assert doc.metadata["embargoed"] == "after the match"  # what the provider said is still there


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "2026-13-01T00:00Z"])
def test_an_embargo_out_of_range_in_utc_is_dropped_not_raised(value: str) -> None:
    doc = _ninjs(embargoed=value)
    assert doc.embargoed_until is None and any("embargoed" in w for w in doc.warnings)


def test_out_of_range_urgency_and_odd_status_and_genre_names() -> None:
    doc = _ninjs(urgency=12, pubstatus="stat:withheld", genres=[{"name": "Analysis"}])
    assert (doc.urgency, doc.pubstatus, doc.genre) == (None, "withheld", "Analysis")
    doc = _ninjs(urgency="1", genre=[{"code": "genre:Obituary", "name": "Obituary"}])
    assert (doc.urgency, doc.genre) == (1, "genre:Obituary")


def test_other_formats_have_no_news_fields() -> None:
    from worker.pipeline.normalise import normalise_records

    for name in ("header.txt", "story.json", "post.md", "feed.rss"):
        docs = [d for _, d in normalise_records((SAMPLES / name).read_bytes(), filename=name)]
        assert any(isinstance(d, NormalisedDocument) for d in docs), name
        for doc in (d for d in docs if isinstance(d, NormalisedDocument)):
            assert (doc.urgency, doc.genre, doc.pubstatus, doc.embargoed_until) == (None, None, None, None)


def test_the_model_refuses_a_naive_embargo_and_an_urgency_outside_1_to_9() -> None:
    base: dict[str, Any] = {"text": "x", "canonical_hash": "0" * 64}
    with pytest.raises(ValidationError, match="UTC offset"):
        NormalisedDocument(**base, embargoed_until=dt.datetime(2026, 1, 1))
    with pytest.raises(ValidationError):
        NormalisedDocument(**base, urgency=0)
    doc = NormalisedDocument(**base, embargoed_until="2026-01-01T10:00:00+02:00")
    assert doc.embargoed_until == dt.datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
