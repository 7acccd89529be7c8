"""Issue 17 §7: a dateline's country comes from the same gazetteer that gives place
entities theirs, and a wire dateline under an HTML page's headline is parsed exactly as in
plain text (taken off the text, so "AP" never becomes an organisation)."""

from __future__ import annotations

import pytest

from worker.pipeline.normalise import normalise

BODY = " The talks ended without an agreement late on Tuesday, officials said."


@pytest.mark.parametrize(
    ("dateline", "place", "country"),
    [
        ("WASHINGTON (AP) —", "Washington", "US"),  # the example article: was None
        ("KYIV, Ukraine (Reuters) -", "Kyiv", "UA"),  # the written country, as its code
        ("NEW YORK (AP) --", "New York", "US"),
        ("PARIS (AFP) -", "Paris", "FR"),
        ("RIO DE JANEIRO (AP) —", "Rio de Janeiro", "BR"),
        ("XQZVILLE (AP) —", "Xqzville", None),  # unknown to the gazetteer: nothing invented
    ],
)
def test_dateline_country_comes_from_the_gazetteer(dateline: str, place: str, country: str | None) -> None:
    doc = normalise((dateline + BODY).encode(), filename="wire.txt")
    assert doc.dateline is not None
    assert (doc.dateline.place, doc.dateline.country) == (place, country)


def test_a_written_country_the_gazetteer_does_not_know_is_kept_as_written() -> None:
    doc = normalise(("XQZVILLE, Qqland (AP) —" + BODY).encode(), filename="wire.txt")
    assert doc.dateline is not None and doc.dateline.country == "Qqland"


def test_html_dateline_under_the_headline_is_a_dateline_not_text() -> None:
    page = (
        "<!DOCTYPE html><html><head><title>Fashion week opens</title></head><body><article>"
        "<h1>Fashion week opens</h1>"
        "<p>MILAN (AP) — Designers showed their spring collections on the first day of fashion week,"
        " with crowds filling the streets around the cathedral.</p>"
        "<p>The shows continue until Sunday, the organisers said.</p></article></body></html>"
    )
    doc = normalise(page.encode(), filename="page.html")
    assert doc.dateline is not None
    assert (doc.dateline.place, doc.dateline.country, doc.dateline.agency) == ("Milan", "IT", "AP")
    assert "(AP)" not in doc.text and "MILAN" not in doc.text
    assert doc.text.startswith("Fashion week opens\nDesigners showed their spring collections")


def test_a_dateline_is_not_looked_for_under_a_first_line_that_is_not_the_title() -> None:
    page = (
        "<html><head><title>Another title</title></head><body><article><p>Fashion week opens</p>"
        "<p>MILAN (AP) — Designers showed their spring collections on the first day of fashion week.</p>"
        "</article></body></html>"
    )
    doc = normalise(page.encode(), filename="page.html")
    assert doc.dateline is None and "MILAN (AP)" in doc.text
