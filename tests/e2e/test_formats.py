"""Every input format, encoding and reason code of the normalise stage, through the real
pipeline: files written into the inbox of a real stack (watcher -> Redis -> Celery worker
processes -> SQLite / PostgreSQL -> outbox -> publisher -> Redis Stream).

Starting a stack costs seconds, so one stack per database backend takes every file at once
(``run``, module-scoped) and each test then checks its own files: the stored row, the event,
the failed/ folder.  NER is off (the fast profile): entities are not what is tested here.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator

import pytest

from tests.support.databases import BACKENDS
from tests.support.e2e import Run, module_stack, wait_settled
from tests.support.paths import EXAMPLE
from tests.support.stack import DUPLICATE, FAILED, STORED
from worker.broker import EmbeddedRedis
from worker.store.schema import Document, Failure, TagRow

pytestmark = pytest.mark.e2e

MAX_FILE_BYTES = 100_000

# -- the files -------------------------------------------------------------------------------------

BYLINE = (
    "By JANE DOE, Associated Press\n\n"
    "PARIS (AFP) - Farmers drove hundreds of tractors into the centre of the capital on Monday,"
    " blocking the main roads to protest against cheap imports and new environmental rules.\n"
)
REUTERS_CRLF = (
    " date 2026-11-24 KYIV, Ukraine (Reuters) - Air raid sirens sounded across the country"
    " overnight as the energy grid came under renewed attack.\r\n\r\n\r\n"
    "Engineers worked through the night to restore power to hospitals and water pumps."
)
HEADER = (
    "Title: Budget approved after long night\n"
    "Date: 24 Nov 2026\n"
    "Author: Jane Doe\n"
    "Source: City Desk\n"
    "URL: https://example.com/budget\n"
    "Tags: budget, council\n"
    "Desk: Metro\n"
    "\n"
    "The council voted on Tuesday to approve the budget for next year after a debate that"
    " lasted well past midnight.\n"
)
YAML_MD = (
    "---\n"
    "title: Harbour bridge reopens\n"
    "date: November 24, 2026\n"
    "author: [Ana Lima, Ben Okafor]\n"
    "tags: [transport, harbour]\n"
    "edition: 3\n"
    "---\n"
    "# Harbour bridge reopens\n\n"
    "The bridge *reopened* to traffic on Monday morning after eight months of repairs to its"
    " steel cables.\n"
)
TOML_MD = (
    "+++\n"
    'title = "Museum gets new wing"\n'
    'date = "2026-02-30"\n'
    'author = "Sam Reyes"\n'
    'tags = ["culture"]\n'
    "+++\n"
    "The city museum opened a new wing dedicated to maritime history, with ship models and"
    " maps from three centuries.\n"
)
JSON_DOC = {
    "title": "Rail strike called off",
    "body": "Union leaders called off the national rail strike late on Sunday after the operator"
    " improved its pay offer for drivers and conductors.",
    "date": "Tue, 24 Nov 2026 10:00:00 +0000",
    "author": {"name": "Li Wei"},
    "tags": ["rail", "labour"],
    "url": "https://example.com/rail",
    "id": 17,
}
JSONL_LINES = [
    json.dumps({"text": "Fishermen in the north reported the best herring catch in a decade this season."}),
    json.dumps({"body": "A new ferry route will connect the two islands from next spring, the operator said."}),
    '{"text": "this line is broken",',
    json.dumps({"content": "Volunteers planted four thousand trees along the river banks over the weekend."}),
]
HTML = """<!DOCTYPE html>
<html><head><title>Library saved by donors</title>
<meta name="author" content="Maria Rossi">
<style>body { color: hotpink; }</style>
<script>var trackingSecret = "do-not-store-me";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/news">News</a> | <a href="/sport">Sport</a></nav>
<article><h1>Library saved by donors</h1>
<p>The village library that was due to close at the end of the month has been saved by a
group of local donors who raised enough money to keep it open for another five years.</p>
<p>Volunteers will run the reading room on weekends, and the council has promised to repair
the leaking roof before winter.</p></article>
<footer>Copyright 2026 Example News. All rights reserved.</footer>
<script>document.write("injected footer text");</script>
</body></html>
"""
UTF16_TEXT = "Zürich’s “Bahnhofstrasse” was closed on Sunday — police said a water main had burst under the street."
UTF16BE_TEXT = "Sønderborg’s harbour festival drew “record crowds” — about forty thousand visitors in three days."
UTF8BOM_TEXT = "Łódź city hall said the new tram line — the first in decades — would open in spring next year."
CP1252_TEXT = "Café owners said the “new rules” — approved on Tuesday — would cost them dearly this winter."
LATIN1_TEXT = "Les habitants de Montréal ont déclaré que l'hiver était très froid à cause du vent du nord."
CHEROKEE = "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ ᎠᏂᏴᏫ ᎤᎾᏓᏅᏖᏗ ᏗᏓᏂᏱᏍᎩ ᎠᎴ ᏗᎦᏙᎵ ᎤᏂᏍᎦᏅᏨ ᏕᎦᎶᏗ ᎠᏁᎯ ᏣᎳᎩ ᎠᏂᏴᏫᏯ ᎤᏂᎶᏒᏍᏔᏅ"


def _utf16(text: str, order: str) -> bytes:
    bom = codecs.BOM_UTF16_LE if order == "le" else codecs.BOM_UTF16_BE
    return bom + text.replace("\n", "\r\n").encode(f"utf-16-{order}")


def _example_variant(example: bytes) -> bytes:
    """The example saved differently: leading space, CRLF, no trailing newline, curly quotes
    straightened, extra blank lines.  Canonically the same article."""
    text = example.decode("utf-8").strip()
    text = text.replace("’", "'").replace("“", '"').replace("”", '"')
    return (" " + text.replace("\n\n", "\n\n\n\n")).replace("\n", "\r\n").encode("utf-8")


def files(example: bytes) -> dict[str, bytes]:
    return {
        "example.txt": example,
        "example-copy-crlf.txt": _example_variant(example),
        "kyiv-crlf.txt": REUTERS_CRLF.encode(),
        "byline.txt": BYLINE.encode(),
        "header.txt": HEADER.encode(),
        "yaml.md": YAML_MD.encode(),
        "toml.md": TOML_MD.encode(),
        "story.json": json.dumps(JSON_DOC).encode(),
        "batch.jsonl": ("\n".join(JSONL_LINES) + "\n").encode(),
        "page.html": HTML.encode(),
        "utf16le.txt": _utf16(UTF16_TEXT, "le"),
        "utf16be.txt": _utf16(UTF16BE_TEXT, "be"),
        "utf8bom.txt": codecs.BOM_UTF8 + UTF8BOM_TEXT.encode(),
        "cp1252.txt": CP1252_TEXT.encode("cp1252"),
        "latin1.txt": LATIN1_TEXT.encode("latin-1"),
        "cherokee.txt": CHEROKEE.encode(),
        # bad input
        "empty.txt": b"",
        "blank.txt": b"  \r\n\t\n   \n",
        "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        "nul.txt": b"Some text that looks fine\x00\x00\x00 but holds NUL bytes in the middle.",
        "undecodable.txt": codecs.BOM_UTF16_LE + "an odd number of bytes".encode("utf-16-le") + b"!",
        "too-large.txt": b"A sentence that repeats until the file is over the limit. " * 2000,
        "invalid.json": b'{"title": "Unfinished", "text": "the closing brace is missing"',
        "notext.json": json.dumps({"title": "No body here", "author": "Nobody", "summary": ""}).encode(),
        "scripts-only.html": b"<html><head><script>var a = 1;</script><style>p{}</style></head><body></body></html>",
    }


FAILURES = {
    "empty.txt": "empty",
    "blank.txt": "empty",
    "binary.txt": "binary",
    "nul.txt": "binary",
    "undecodable.txt": "undecodable",
    "too-large.txt": "too_large",
    "invalid.json": "invalid_json",
    "notext.json": "missing_text",
    "scripts-only.html": "no_text_extracted",
}
# events each file gives: (stored or duplicate, failed)
EXPECTED_EVENTS = len(files(b"x")) + 3  # one per file, but four for batch.jsonl (3 stored, 1 failed)


# -- one stack per backend, every file at once ---------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    embedded_redis: EmbeddedRedis,
    example_bytes: bytes,
) -> Iterator[Run]:
    env = {"SEEDWORKER_MAX_FILE_BYTES": str(MAX_FILE_BYTES), "SEEDWORKER_NER_MODEL": ""}
    with module_stack("formats", request.param, tmp_path_factory, embedded_redis, **env) as stack:
        stack.start_all(concurrency=2)
        dropped = files(example_bytes)
        for name, data in dropped.items():
            if name != "example-copy-crlf.txt":
                stack.drop(name, data)
        # The copy goes in once the original is stored, so which one is the duplicate is known.
        stack.wait_for_events(1, timeout=240, type=STORED, data__filename="example.txt")
        stack.drop("example-copy-crlf.txt", dropped["example-copy-crlf.txt"])
        events = stack.wait_for_events(EXPECTED_EVENTS, timeout=240)
        # Every file archived, or in failed/ with its .error.json, and none left in processing.
        wait_settled(stack, len(dropped))
        yield Run(stack, stack.database_url, dropped, events)


# -- what each file became --------------------------------------------------------------------------


def test_every_file_gives_exactly_its_events_and_nothing_is_left_behind(run: Run) -> None:
    assert len(run.events) == EXPECTED_EVENTS
    assert len({e["id"] for e in run.events}) == EXPECTED_EVENTS
    counts = {name: [e["type"].rsplit(".", 1)[-1] for e in run.events_for(name)] for name in run.dropped}
    assert {name: len(types) for name, types in counts.items()} == {
        name: 4 if name == "batch.jsonl" else 1 for name in run.dropped
    }, counts
    assert not [p for p in run.stack.inbox.rglob("*") if p.is_file()]  # inbox and processing area empty


def test_example_gives_date_dateline_and_language(run: Run) -> None:
    data = run.event("example.txt")["data"]
    assert run.event("example.txt")["type"] == STORED
    assert data["date"] == "2024-02-06"
    assert (data["dateline_place"], data["agency"], data["language"]) == ("Washington", "AP", "en")
    doc = run.document("example.txt")
    assert doc.format == "text" and doc.encoding == "utf-8"
    assert doc.text.startswith("President Donald Trump is set to hold talks")
    assert doc.dateline_raw == "WASHINGTON (AP) —"
    assert "’" in doc.text  # curly quotes kept in the display text


def test_example_saved_with_crlf_leading_space_and_straight_quotes_is_a_duplicate(run: Run) -> None:
    original, copy = run.event("example.txt"), run.event("example-copy-crlf.txt")
    assert copy["type"] == DUPLICATE
    assert copy["data"]["duplicate_of"] == original["data"]["id"]
    assert copy["data"]["kind"] == "exact"


def test_reuters_dateline_with_country_crlf_and_inline_date(run: Run) -> None:
    data = run.event("kyiv-crlf.txt")["data"]
    assert (data["dateline_place"], data["dateline_country"], data["agency"]) == ("Kyiv", "UA", "Reuters")
    assert data["date"] == "2026-11-24"
    doc = run.document("kyiv-crlf.txt")
    assert doc.text.startswith("Air raid sirens sounded")
    assert "\r" not in doc.text and "\n\n\n" not in doc.text
    assert doc.date_raw == "2026-11-24"


def test_byline_and_afp_dateline(run: Run) -> None:
    data = run.event("byline.txt")["data"]
    assert data["author"] == "Jane Doe"
    assert (data["dateline_place"], data["agency"]) == ("Paris", "AFP")
    assert run.document("byline.txt").text.startswith("Farmers drove hundreds of tractors")


def test_header_block_fills_fields(run: Run) -> None:
    doc = run.document("header.txt")
    assert doc.format == "header"
    assert doc.title == "Budget approved after long night"
    assert (doc.date.isoformat(), doc.date_raw) == ("2026-11-24", "24 Nov 2026")
    assert doc.author == "Jane Doe"
    assert doc.meta == {
        "source": "City Desk",
        "url": "https://example.com/budget",
        "desk": "Metro",
        "path": "header.txt",
    }
    assert doc.text.startswith("The council voted on Tuesday")
    producer = {r.name for r in run.rows(TagRow, document_id=doc.id, kind="producer")}
    assert producer == {"budget", "council"}


def test_markdown_with_yaml_front_matter(run: Run) -> None:
    doc = run.document("yaml.md")
    assert doc.format == "markdown"
    assert doc.title == "Harbour bridge reopens"
    assert (doc.date.isoformat(), doc.date_raw) == ("2026-11-24", "November 24, 2026")
    assert doc.author == "Ana Lima, Ben Okafor"
    assert doc.meta == {"edition": 3, "path": "yaml.md"}  # path: where the watcher found it
    assert doc.text.startswith("# Harbour bridge reopens\n\nThe bridge *reopened*")  # Markdown body kept


def test_markdown_with_toml_front_matter_and_an_impossible_date_is_stored_with_a_warning(run: Run) -> None:
    doc = run.document("toml.md")
    assert (doc.format, doc.title, doc.author) == ("markdown", "Museum gets new wing", "Sam Reyes")
    assert doc.date is None and doc.date_raw == "2026-02-30"
    assert doc.warnings == ["date: '2026-02-30' is not a valid date"]
    assert run.event("toml.md")["type"] == STORED


def test_json_object_with_rfc2822_date(run: Run) -> None:
    doc = run.document("story.json")
    assert (doc.format, doc.title, doc.author) == ("json", "Rail strike called off", "Li Wei")
    assert (doc.date.isoformat(), doc.date_raw) == ("2026-11-24", "Tue, 24 Nov 2026 10:00:00 +0000")
    assert doc.meta == {"url": "https://example.com/rail", "id": 17, "path": "story.json"}
    assert doc.text.startswith("Union leaders called off")


def test_json_lines_bad_line_fails_alone_with_its_line_number(run: Run) -> None:
    events = run.events_for("batch.jsonl")
    assert sorted(e["type"] for e in events) == [FAILED, STORED, STORED, STORED]
    [failed] = [e for e in events if e["type"] == FAILED]
    assert failed["data"]["reason"] == "invalid_json"
    assert "line 3" in failed["data"]["message"]
    assert failed["data"]["details"]["line"] == 3
    stored_texts = {d.text for d in run.rows(Document, filename="batch.jsonl")}
    assert stored_texts == {json.loads(JSONL_LINES[i]).popitem()[1] for i in (0, 1, 3)}
    assert {d.format for d in run.rows(Document, filename="batch.jsonl")} == {"jsonl"}

    # The original is kept in failed/ with its report naming the bad line.
    assert (run.stack.failed / "batch.jsonl").read_bytes() == run.dropped["batch.jsonl"]
    report = json.loads((run.stack.failed / "batch.jsonl.error.json").read_text())
    assert report["reason"] == "invalid_json"
    assert report["failed_lines"] == [3] and report["stored_records"] == 3
    assert "1 of 4 records failed (lines 3)" in report["message"]
    assert report["records"][0]["failure_id"] == failed["data"]["id"]


def test_html_main_text_and_title_without_scripts_or_boilerplate(run: Run) -> None:
    doc = run.document("page.html")
    assert (doc.format, doc.title, doc.author) == ("html", "Library saved by donors", "Maria Rossi")
    assert "The village library that was due to close" in doc.text
    assert "leaking roof before winter" in doc.text
    for junk in ("trackingSecret", "do-not-store-me", "hotpink", "injected footer", "Home |", "All rights reserved"):
        assert junk not in doc.text


@pytest.mark.parametrize(
    ("name", "text", "encoding"),
    [
        ("utf16le.txt", UTF16_TEXT, "utf-16-le"),
        ("utf16be.txt", UTF16BE_TEXT, "utf-16-be"),
        ("utf8bom.txt", UTF8BOM_TEXT, "utf-8-sig"),
        ("cp1252.txt", CP1252_TEXT, "windows-1252"),
        ("latin1.txt", LATIN1_TEXT, "windows-1252"),  # Latin-1 is read as its superset
    ],
)
def test_encodings_are_detected_and_text_reads_back_exactly(run: Run, name: str, text: str, encoding: str) -> None:
    doc = run.document(name)
    assert (doc.text, doc.encoding) == (text, encoding)
    assert run.event(name)["data"]["language"] in ("en", "de", "fr", "pl", "da")


def test_unsupported_script_is_stored_with_language_und(run: Run) -> None:
    event = run.event("cherokee.txt")
    assert event["type"] == STORED and event["data"]["language"] == "und"
    assert run.document("cherokee.txt").text == CHEROKEE


@pytest.mark.parametrize(("name", "reason"), sorted(FAILURES.items()))
def test_bad_input_fails_with_its_reason_and_is_kept_in_failed(run: Run, name: str, reason: str) -> None:
    event = run.event(name)
    assert event["type"] == FAILED
    assert event["data"]["reason"] == reason
    message = event["data"]["message"]
    assert len(message.split()) >= 4, message  # a sentence, not a code
    [row] = run.rows(Failure, filename=name)
    assert (row.reason, row.message, row.id) == (reason, message, event["data"]["id"])

    assert (run.stack.failed / name).read_bytes() == run.dropped[name]
    report = json.loads((run.stack.failed / f"{name}.error.json").read_text())
    assert (report["reason"], report["message"], report["failure_id"]) == (reason, message, event["data"]["id"])
    assert report["file"] == name


def test_too_large_file_says_the_size_and_the_limit(run: Run) -> None:
    message = run.event("too-large.txt")["data"]["message"]
    assert str(len(run.dropped["too-large.txt"])) in message and str(MAX_FILE_BYTES) in message


def test_failures_do_not_affect_the_other_documents(run: Run) -> None:
    stored = {e["data"]["filename"] for e in run.events if e["type"] == STORED}
    expected = set(run.dropped) - set(FAILURES) - {"example-copy-crlf.txt"}
    assert stored == expected
    archived = {p.name for p in run.stack.archive.rglob("*") if p.is_file()}
    assert archived == (expected | {"example-copy-crlf.txt"}) - {"batch.jsonl"}
    assert EXAMPLE.name not in archived  # the example was dropped under another name
