"""Every input format, written to a real file and normalised: the fields each one fills."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import EmptyDocument, InputError, InvalidJSON, MissingText, NoExtractableText
from worker.models import NormalisedDocument
from worker.pipeline.formats import detect_format, suffix_of
from worker.pipeline.normalise import normalise, normalise_records

BODY = "The council voted on Tuesday to approve the new budget after a long debate."


def _file(tmp_path: Path, name: str, content: str | bytes) -> tuple[bytes, str]:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path.read_bytes(), path.name


def _normalise(tmp_path: Path, name: str, content: str | bytes) -> NormalisedDocument:
    raw, filename = _file(tmp_path, name, content)
    return normalise(raw, filename=filename)


# --- format detection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "text", "expected"),
    [
        ("a.json", "{}", "json"),
        ("a.JSONL", "{}", "jsonl"),
        ("a.ndjson", "{}", "jsonl"),
        ("a.html", "plain", "html"),
        ("a.htm", "plain", "html"),
        ("a.md", "plain", "markdown"),
        ("a.markdown", "plain", "markdown"),
        ("a.txt", "plain", "text"),
        ("a.csv", "plain", "text"),
        ("", "plain", "text"),
        ("a.txt", "<!DOCTYPE html><html></html>", "html"),
        ("a.txt", "  \n<html lang='en'><body></body></html>", "html"),
        ("a.txt", "---\ntitle: x\n---\nbody", "markdown"),
        ("a.txt", "+++\ntitle = 'x'\n+++\nbody", "markdown"),
        ("a.json", "<html>", "json"),  # the extension decides first
        ("a.txt", "<htmlish> is not html", "text"),
    ],
)
def test_format_comes_from_the_extension_then_the_content(filename: str, text: str, expected: str) -> None:
    assert detect_format(filename, text) == expected


# --- plain text and header blocks --------------------------------------------------------


def test_header_block_fills_known_fields_and_keeps_the_rest_as_metadata(tmp_path: Path) -> None:
    doc = _normalise(
        tmp_path,
        "story.txt",
        "Title: Budget approved\nDate: 24 Nov 2026\nAuthor: Jane Doe\nSource: City Wire\n"
        "URL: https://example.com/budget\nTags: budget, council , city\nLanguage: en-GB\n"
        "Desk: Metro\n\n" + BODY,
    )
    assert doc.format == "header"
    assert doc.text == BODY
    assert doc.title == "Budget approved"
    assert (doc.date, doc.date_raw) == (dt.date(2026, 11, 24), "24 Nov 2026")
    assert doc.author == "Jane Doe"
    assert doc.language == "en"
    assert doc.producer_tags == ["budget", "council", "city"]
    assert doc.metadata == {"source": "City Wire", "url": "https://example.com/budget", "desk": "Metro"}


def test_header_keys_are_case_insensitive(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "a.txt", "TITLE: Loud\nDATE: 2024-02-06\n\n" + BODY)
    assert (doc.title, doc.date) == ("Loud", dt.date(2024, 2, 6))


def test_body_line_with_an_unknown_key_is_not_eaten_as_a_header(tmp_path: Path) -> None:
    text = "Note: this meeting was moved to Friday.\n\n" + BODY
    doc = _normalise(tmp_path, "a.txt", text)
    assert doc.format == "text"
    assert doc.text == text
    assert doc.metadata == {}


def test_header_without_a_blank_line_after_it_is_body_text(tmp_path: Path) -> None:
    text = "Title: not a header\n" + BODY
    doc = _normalise(tmp_path, "a.txt", text)
    assert doc.format == "text"
    assert doc.text == text


def test_header_with_a_crlf_file_still_parses(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "a.txt", "Title: Windows\r\nTags: a\r\n\r\n" + BODY + "\r\n")
    assert (doc.format, doc.title, doc.producer_tags, doc.text) == ("header", "Windows", ["a"], BODY)


def test_short_first_line_followed_by_a_blank_line_is_the_title(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "a.txt", "Council approves budget\n\n" + BODY)
    assert doc.title == "Council approves budget"
    assert doc.text.startswith("Council approves budget\n\n")


@pytest.mark.parametrize(
    "text",
    [
        BODY,  # one paragraph: no title is invented from the first sentence
        "This first line ends with a period.\n\n" + BODY,
        "A first line without a blank line after it\n" + BODY,
        "x " * 100 + "\n\n" + BODY,  # too long to be a headline
    ],
)
def test_no_title_is_invented(tmp_path: Path, text: str) -> None:
    assert _normalise(tmp_path, "a.txt", text).title is None


# --- Markdown and front matter ------------------------------------------------------------


def test_yaml_front_matter_fills_fields_and_the_markdown_body_is_kept(tmp_path: Path) -> None:
    doc = _normalise(
        tmp_path,
        "post.md",
        "---\ntitle: Budget approved\ndate: 2026-11-24\nauthor: [Jane Doe, John Roe]\n"
        "tags: [budget, council]\nsource: City Wire\nurl: https://example.com/b\ndraft: false\n"
        "nested: {a: [1, 2]}\n---\n# A heading\n\n*Emphasis* and a [link](https://example.com).\n",
    )
    assert doc.format == "markdown"
    assert doc.text == "# A heading\n\n*Emphasis* and a [link](https://example.com)."
    assert doc.title == "Budget approved"
    assert (doc.date, doc.date_raw) == (dt.date(2026, 11, 24), "2026-11-24")
    assert doc.author == "Jane Doe, John Roe"
    assert doc.producer_tags == ["budget", "council"]
    assert doc.metadata == {
        "source": "City Wire",
        "url": "https://example.com/b",
        "draft": False,
        "nested": {"a": [1, 2]},
    }


def test_toml_front_matter_fills_fields(tmp_path: Path) -> None:
    doc = _normalise(
        tmp_path,
        "post.md",
        '+++\ntitle = "Budget approved"\ndate = 2026-11-24\ntags = ["budget"]\nweight = 3\n+++\n' + BODY,
    )
    assert (doc.format, doc.title, doc.date, doc.date_raw) == (
        "markdown",
        "Budget approved",
        dt.date(2026, 11, 24),
        "2026-11-24",
    )
    assert doc.producer_tags == ["budget"]
    assert doc.metadata == {"weight": 3}
    assert doc.text == BODY


def test_first_heading_is_the_title_when_front_matter_has_none(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "post.md", "# Budget approved #\n\n" + BODY)
    assert doc.title == "Budget approved"
    assert doc.text.startswith("# Budget approved #")


def test_front_matter_in_a_txt_file_is_sniffed(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "post.txt", "---\ntitle: Sniffed\n---\n" + BODY)
    assert (doc.format, doc.title, doc.text) == ("markdown", "Sniffed", BODY)


def test_unclosed_front_matter_in_a_txt_file_is_plain_text(tmp_path: Path) -> None:
    text = "---\nthis is a rule, not front matter\n" + BODY
    doc = _normalise(tmp_path, "post.txt", text)
    assert (doc.format, doc.text) == ("text", text)


def test_broken_yaml_front_matter_is_a_warning(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "post.md", "---\ntitle: [unclosed\n---\n" + BODY)
    assert doc.text == BODY
    assert doc.title is None
    assert len(doc.warnings) == 1 and doc.warnings[0].startswith("front matter: ignored, the YAML")


def test_yaml_alias_bomb_in_front_matter_is_cut_short(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(12)
    )
    doc = _normalise(tmp_path, "post.md", "---\n" + bomb + "---\n" + BODY)
    assert doc.text == BODY
    assert any("cut short" in warning for warning in doc.warnings)
    assert len(json.dumps(doc.metadata)) < 1_000_000


# --- JSON ----------------------------------------------------------------------------------


def test_json_object_fills_fields_and_keeps_other_keys_as_metadata(tmp_path: Path) -> None:
    payload = {
        "id": 17,
        "title": "Budget approved",
        "text": BODY,
        "date": "Tue, 24 Nov 2026 10:00:00 +0000",
        "author": {"name": "Jane Doe"},
        "tags": ["budget", "council"],
        "url": "https://example.com/b",
        "source": "City Wire",
        "language": "en",
        "extra": {"score": 0.5},
    }
    doc = _normalise(tmp_path, "a.json", json.dumps(payload))
    assert doc.format == "json"
    assert doc.text == BODY
    assert (doc.title, doc.date, doc.author) == ("Budget approved", dt.date(2026, 11, 24), "Jane Doe")
    assert doc.producer_tags == ["budget", "council"]
    assert doc.metadata == {"id": 17, "url": "https://example.com/b", "source": "City Wire", "extra": {"score": 0.5}}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"text": "from text", "body": "from body"}, "from text"),
        ({"text": "  ", "body": "from body"}, "from body"),
        ({"text": 5, "content": "from content"}, "from content"),
    ],
)
def test_json_text_is_the_first_non_empty_text_body_or_content(
    tmp_path: Path, payload: dict[str, object], expected: str
) -> None:
    assert _normalise(tmp_path, "a.json", json.dumps(payload)).text == expected


def test_json_with_a_dateline_in_its_text_gets_it_parsed(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "a.json", json.dumps({"text": "KYIV, Ukraine (Reuters) - " + BODY}))
    assert doc.dateline is not None and doc.dateline.place == "Kyiv"
    assert doc.text == BODY


@pytest.mark.parametrize(
    ("content", "error", "fragment"),
    [
        ('{"title": "no text"}', MissingText, "fields: title"),
        ('{"text": ""}', MissingText, "no non-empty text"),
        ("[1, 2, 3]", MissingText, "an array"),
        ('"just a string"', MissingText, "a string"),
        ('{"text": "a",\n  "title": }', InvalidJSON, "line 2, column 12"),
        ('{"text": NaN}', InvalidJSON, "NaN"),
        ("[" * 100_000 + "]" * 100_000, InvalidJSON, "nested too deeply"),
        ('{"text": "\\u0000\\u200b"}', EmptyDocument, "no text"),
    ],
)
def test_bad_json_documents_fail_with_their_reason(
    tmp_path: Path, content: str, error: type[InputError], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        _normalise(tmp_path, "a.json", content)


def test_invalid_json_error_carries_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(InvalidJSON) as info:
        _normalise(tmp_path, "a.json", '{\n "text": "a" "b"\n}')
    assert info.value.reason == "invalid_json"
    assert info.value.details == {"line": 2, "column": 14}


# --- JSON Lines ----------------------------------------------------------------------------


def test_json_lines_give_one_entry_per_record_with_its_line_number(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "First record body.", "title": "One"}),
        "",
        "{not json",
        json.dumps({"title": "no text"}),
        "   ",
        json.dumps({"body": "Fifth line body."}),
    ]
    raw, name = _file(tmp_path, "batch.jsonl", "\n".join(lines) + "\n")
    records = normalise_records(raw, filename=name)
    assert [number for number, _ in records] == [1, 3, 4, 6]
    first, bad_json, missing, last = (result for _, result in records)
    assert isinstance(first, NormalisedDocument) and (first.title, first.format) == ("One", "jsonl")
    assert isinstance(bad_json, InvalidJSON) and "line 3" in bad_json.message
    assert bad_json.details["line"] == 3
    assert isinstance(missing, MissingText) and "line 4" in missing.message
    assert isinstance(last, NormalisedDocument) and last.text == "Fifth line body."


def test_json_lines_with_crlf_endings_parse(tmp_path: Path) -> None:
    raw, name = _file(tmp_path, "b.ndjson", '{"text": "one"}\r\n{"text": "two"}\r\n')
    assert [r.text for _, r in normalise_records(raw, filename=name) if isinstance(r, NormalisedDocument)] == [
        "one",
        "two",
    ]


def test_json_lines_error_that_does_not_name_the_line_gets_it_added(tmp_path: Path) -> None:
    raw, name = _file(tmp_path, "b.jsonl", '{"text": "ok"}\n{"text": "\\u0000"}\n')
    (_, ok), (number, error) = normalise_records(raw, filename=name)
    assert isinstance(ok, NormalisedDocument)
    assert number == 2 and isinstance(error, EmptyDocument)
    assert error.message.startswith("line 2: ")
    assert error.details == {"line": 2}


def test_json_lines_file_with_only_blank_lines_is_one_empty_failure(tmp_path: Path) -> None:
    raw, name = _file(tmp_path, "b.jsonl", "\n  \n")
    [(number, error)] = normalise_records(raw, filename=name)
    assert number is None and isinstance(error, EmptyDocument)


def test_binary_json_lines_file_is_one_failure(tmp_path: Path) -> None:
    raw, name = _file(tmp_path, "b.jsonl", b'{"text": "a"}\x00\n')
    [(number, error)] = normalise_records(raw, filename=name)
    assert number is None and isinstance(error, InputError) and error.reason == "binary"


def test_normalise_accepts_a_json_lines_file_of_exactly_one_record(tmp_path: Path) -> None:
    assert _normalise(tmp_path, "one.jsonl", '{"text": "only"}\n').text == "only"
    with pytest.raises(InvalidJSON, match="2 records"):
        _normalise(tmp_path, "two.jsonl", '{"text": "a"}\n{"text": "b"}\n')


def test_other_files_give_exactly_one_record_and_never_raise(tmp_path: Path) -> None:
    raw, name = _file(tmp_path, "a.txt", BODY)
    [(number, doc)] = normalise_records(raw, filename=name)
    assert number is None and isinstance(doc, NormalisedDocument)
    raw, name = _file(tmp_path, "b.json", "{broken")
    [(number, error)] = normalise_records(raw, filename=name)
    assert number is None and isinstance(error, InvalidJSON)


# --- HTML ----------------------------------------------------------------------------------

ARTICLE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <title>Budget approved | City Wire</title>
  <meta name="author" content="Jane Doe">
  <meta name="keywords" content="budget, council">
  <meta property="article:published_time" content="2026-11-24">
  <style>p { color: red; }</style>
  <script>var tracking = "SCRIPT TEXT";</script>
</head>
<body>
  <nav><a href="/">Home</a> | <a href="/news">News</a></nav>
  <article>
    <h1>Budget approved</h1>
    {paragraphs}
  </article>
  <footer>Copyright 2026 City Wire. All rights reserved.</footer>
</body>
</html>"""
PARAGRAPHS = "\n".join(
    f"<p>Paragraph {i}: the council debated the budget for hours before the final vote was taken.</p>" for i in range(8)
)


def test_html_main_text_and_metadata_come_from_trafilatura(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "page.html", ARTICLE_HTML.replace("{paragraphs}", PARAGRAPHS))
    assert doc.format == "html"
    assert doc.title == "Budget approved"
    assert doc.author == "Jane Doe"
    assert doc.date == dt.date(2026, 11, 24)
    assert doc.producer_tags == ["budget", "council"]
    assert "Paragraph 0: the council debated" in doc.text
    assert "Paragraph 7" in doc.text
    for boilerplate in ("SCRIPT TEXT", "color: red", "Copyright", "<p>"):
        assert boilerplate not in doc.text
    assert doc.language == "en"


def test_html_saved_as_txt_is_sniffed(tmp_path: Path) -> None:
    doc = _normalise(tmp_path, "page.txt", ARTICLE_HTML.replace("{paragraphs}", PARAGRAPHS))
    assert doc.format == "html"
    assert "<" not in doc.text


def test_html_fragment_is_extracted(tmp_path: Path) -> None:
    assert _normalise(tmp_path, "frag.html", "<p>Just one paragraph here.</p>").text == "Just one paragraph here."


@pytest.mark.parametrize(
    "content",
    [
        "<html><head><title>Empty</title></head><body></body></html>",
        "<html><body><script>alert('only script')</script><style>p{}</style></body></html>",
        "<html",
    ],
)
def test_html_with_nothing_extractable_is_no_text_extracted(tmp_path: Path, content: str) -> None:
    with pytest.raises(NoExtractableText) as info:
        _normalise(tmp_path, "page.html", content)
    assert info.value.reason == "no_text_extracted"


def test_short_html_page_loses_its_navigation_footer_and_aside(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Budget approved</title></head><body><nav>Home | News</nav>"
        "<aside>Most read: cats</aside><article><p>The council voted on Tuesday to approve the budget.</p>"
        "</article><footer>Contact us</footer></body></html>"
    )
    assert _normalise(tmp_path, "page.html", html).text == "The council voted on Tuesday to approve the budget."


def test_metadata_strings_lose_nul_controls_and_lone_surrogates(tmp_path: Path) -> None:
    raw = (
        '{"text": "A story with hostile metadata.", "x": "a\\u0000b", "k\\u0001ey": 1,'
        ' "s": "\\udc80ok", "list": ["\\u0007bell"], "url": "https://example.com/\\u0000"}'
    )
    doc = _normalise(tmp_path, "a.json", raw)
    assert doc.metadata == {"x": "ab", "key": 1, "s": "ok", "list": ["bell"], "url": "https://example.com/"}
    doc.model_dump_json().encode("utf-8")  # every string is valid UTF-8


def test_json_lines_file_with_too_many_records_fails_whole_and_fast(tmp_path: Path) -> None:
    import time

    from worker.errors import TooLarge
    from worker.pipeline.normalise import MAX_RECORDS

    raw = b"[]\n" * (MAX_RECORDS * 50)  # 1.5 MB of tiny bad records: half a million errors otherwise
    started = time.process_time()
    [(line, error)] = normalise_records(raw, filename="many.jsonl")
    assert time.process_time() - started < 5
    assert line is None and isinstance(error, TooLarge) and error.reason == "too_large"
    assert f"more than {MAX_RECORDS} records" in error.message
    with pytest.raises(TooLarge):
        normalise(raw, filename="many.jsonl")


def test_json_lines_file_at_the_record_limit_is_processed(tmp_path: Path) -> None:
    from worker.pipeline.normalise import MAX_RECORDS

    raw = b"\n".join([b'{"text": "x"}'] * MAX_RECORDS) + b"\n\n\n"
    records = normalise_records(raw, filename="full.jsonl")
    assert len(records) == MAX_RECORDS and records[-1][0] == MAX_RECORDS


def test_json_with_half_a_million_fields_keeps_ten_thousand_quickly(tmp_path: Path) -> None:
    import time

    fields = {"text": "A story with far too many metadata fields.", **{f"k{i}": i for i in range(500_000)}}
    started = time.process_time()
    doc = normalise(json.dumps(fields).encode(), filename="many.json")
    assert time.process_time() - started < 30  # was quadratic: minutes
    assert len(doc.metadata) == 10_000 and doc.metadata["k0"] == 0
    assert doc.warnings == ["metadata: 490000 more field(s) dropped; at most 10000 values are kept"]


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="/.a.b./ x\\\x00é", max_size=16))
def test_suffix_of_is_pathlibs_suffix(filename: str) -> None:
    assert suffix_of(filename) == PurePosixPath(filename).suffix


@pytest.mark.parametrize(
    "filename", ["a.txt", "dir/a.tar.gz", ".bashrc", "a.", "a/.", "a/..", "...", "/", "", "x/.hidden.md", "a.B/c"]
)
def test_suffix_of_on_file_names(filename: str) -> None:
    assert suffix_of(filename) == PurePosixPath(filename).suffix
