"""Datelines, bylines and dates in the styles wire copy uses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from worker.pipeline.datelines import split_lead
from worker.pipeline.dates import parse_date
from worker.pipeline.normalise import normalise


@pytest.mark.parametrize(
    ("text", "place", "country", "agency", "raw"),
    [
        ("WASHINGTON (AP) — Body.", "Washington", None, "AP", "WASHINGTON (AP) —"),
        ("KYIV, Ukraine (Reuters) - Body.", "Kyiv", "Ukraine", "Reuters", "KYIV, Ukraine (Reuters) -"),
        ("PARIS (AFP) - Body.", "Paris", None, "AFP", "PARIS (AFP) -"),
        ("NEW YORK (AP) -- Body.", "New York", None, "AP", "NEW YORK (AP) --"),
        ("RIO DE JANEIRO (AP) — Body.", "Rio de Janeiro", None, "AP", "RIO DE JANEIRO (AP) —"),
        ("ST. LOUIS (AP) — Body.", "St. Louis", None, "AP", "ST. LOUIS (AP) —"),
        ("SPRINGFIELD, Ill. (AP) — Body.", "Springfield", "Ill.", "AP", "SPRINGFIELD, Ill. (AP) —"),
        ("SÃO PAULO (Reuters) – Body.", "São Paulo", None, "Reuters", "SÃO PAULO (Reuters) –"),
        ("Kyiv (Reuters) - Body.", "Kyiv", None, "Reuters", "Kyiv (Reuters) -"),
        ("GAZA CITY, Gaza Strip (AP) — Body.", "Gaza City", "Gaza Strip", "AP", "GAZA CITY, Gaza Strip (AP) —"),
        ("WASHINGTON, Feb 6 (Reuters) - Body.", "Washington", None, "Reuters", "WASHINGTON, Feb 6 (Reuters) -"),
        ("WASHINGTON — Body.", "Washington", None, None, "WASHINGTON —"),
    ],
)
def test_wire_datelines_give_place_country_and_agency(
    text: str, place: str, country: str | None, agency: str | None, raw: str
) -> None:
    lead = split_lead(text)
    assert lead.dateline is not None
    assert (lead.dateline.place, lead.dateline.country, lead.dateline.agency) == (place, country, agency)
    assert lead.dateline.raw == raw
    assert lead.text == "Body."


def test_dateline_on_its_own_line_is_taken_off() -> None:
    lead = split_lead("LONDON (Reuters) -\nThe body starts here.")
    assert lead.dateline is not None and lead.dateline.place == "London"
    assert lead.text == "The body starts here."


@pytest.mark.parametrize(
    "text",
    [
        "Markets fell sharply on Tuesday. LONDON (Reuters) - a quote that is not a dateline.",
        "The first paragraph.\n\nLONDON (Reuters) - the second paragraph is not a dateline.",
        "Apple (AAPL) - shares rose on Tuesday.",  # Title Case needs a known agency
        "The Very Long Name Of Some Place (AP) — too many words to be a place.",
        "I — think — therefore I am.",
        "Hello - world.",
        "washington (AP) — lower case is not a dateline.",
    ],
)
def test_text_that_is_not_a_leading_dateline_is_left_alone(text: str) -> None:
    lead = split_lead(text)
    assert lead.dateline is None
    assert lead.text == text


def test_dateline_in_the_middle_of_a_file_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    body = "Officials met on Monday.\n\nLater, LONDON (Reuters) - was quoted in the report.\n\nMore text."
    path.write_text(body, encoding="utf-8")
    doc = normalise(path.read_bytes(), filename=path.name)
    assert doc.dateline is None
    assert doc.text == body


@pytest.mark.parametrize(
    ("text", "author"),
    [
        ("By Jane Doe\n\nWASHINGTON (AP) — Body.", "Jane Doe"),
        ("By JANE DOE, Associated Press\nWASHINGTON (AP) — Body.", "Jane Doe"),
        ("BY Mary-Ann O'Neill and Li Wei\n\nBEIJING (Reuters) - Body.", "Mary-Ann O'Neill and Li Wei"),
        ("By: Pieter van der Berg | Reuters\n\nAMSTERDAM (Reuters) - Body.", "Pieter van der Berg"),
    ],
)
def test_byline_before_the_dateline_gives_the_author(text: str, author: str) -> None:
    lead = split_lead(text)
    assert lead.author == author
    assert lead.dateline is not None
    assert lead.text == "Body."


def test_byline_without_a_dateline_is_still_taken() -> None:
    lead = split_lead("By Jane Doe\n\nThe story begins here.")
    assert (lead.author, lead.dateline, lead.text) == ("Jane Doe", None, "The story begins here.")


@pytest.mark.parametrize(
    "text",
    ["By the way, this is not a byline.\n\nBody.", "By 2030 emissions must fall\n\nBody.", "Bystanders ran.\n\nBody."],
)
def test_sentences_starting_with_by_are_not_bylines(text: str) -> None:
    assert split_lead(text).author is None


def test_headline_then_byline_then_dateline_keeps_the_headline(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    path.write_text("Talks resume in Geneva\n\nBy Jane Doe\n\nGENEVA (AFP) - Delegates met.\n", encoding="utf-8")
    doc = normalise(path.read_bytes(), filename=path.name)
    assert doc.title == "Talks resume in Geneva"
    assert doc.author == "Jane Doe"
    assert doc.dateline is not None and doc.dateline.agency == "AFP"
    assert doc.text == "Talks resume in Geneva\n\nDelegates met."


def test_dateline_is_only_looked_for_in_the_first_300_characters() -> None:
    text = "WASHINGTON " * 40 + "(AP) — body"
    assert split_lead(text).dateline is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-02-06", dt.date(2024, 2, 6)),
        ("2024-02-06T10:00:00Z", dt.date(2024, 2, 6)),
        ("2024-02-06 23:30:00+05:30", dt.date(2024, 2, 6)),
        ("24 Nov 2026", dt.date(2026, 11, 24)),
        ("24 November 2026", dt.date(2026, 11, 24)),
        ("November 24, 2026", dt.date(2026, 11, 24)),
        ("Nov. 24, 2026", dt.date(2026, 11, 24)),
        ("Sept. 3, 2025", dt.date(2025, 9, 3)),
        ("Tue, 24 Nov 2026 10:00:00 +0000", dt.date(2026, 11, 24)),
        ("Tuesday, November 24, 2026", dt.date(2026, 11, 24)),
        ("2026/11/24", dt.date(2026, 11, 24)),
    ],
)
def test_dates_in_common_styles_parse(raw: str, expected: dt.date) -> None:
    assert parse_date(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["2024-02-30", "31 Apr 2024", "February 30, 2024", "Fri, 31 Feb 2026 10:00:00 +0000"])
def test_impossible_dates_are_a_warning_not_a_failure(raw: str) -> None:
    date, warning = parse_date(raw)
    assert date is None
    assert warning == f"date: {raw!r} is not a valid date"


@pytest.mark.parametrize("raw", ["soon", "next Tuesday", "5", "Novelty 3, 2024"])
def test_strings_that_are_not_dates_are_a_warning(raw: str) -> None:
    date, warning = parse_date(raw)
    assert date is None
    assert warning is not None and raw in warning


def test_impossible_date_in_a_header_keeps_the_document(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    path.write_text("Title: Leap\nDate: 2024-02-30\n\nThe body of the story.", encoding="utf-8")
    doc = normalise(path.read_bytes(), filename=path.name)
    assert doc.date is None
    assert doc.date_raw == "2024-02-30"
    assert doc.warnings == ["date: '2024-02-30' is not a valid date"]
