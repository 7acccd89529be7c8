"""The news formats through the real pipeline (watcher -> Redis -> Celery workers ->
SQLite / PostgreSQL -> outbox -> Redis Stream): ninjs, NewsML-G2, RSS/Atom, email, PDF,
DOCX and ODT, good and hostile, from the samples in examples/formats/.

One stack per backend takes every file at once; then a later feed that repeats an item
(with an edited summary) is dropped, and the repeat must be an exact duplicate by guid.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import documents
from tests.support.databases import BACKENDS
from tests.support.e2e import Run, module_stack, wait_settled
from tests.support.stack import DUPLICATE, FAILED, STORED
from worker.broker import EmbeddedRedis

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "formats"
MAX_FILE_BYTES = 100_000
GOOD = (
    "ninjs-1.json",
    "ninjs-2.json",
    "ninjs-3.json",
    "newsml-item.xml",
    "newsml-message.xml",
    "feed.rss",
    "feed.atom",
    "press-release.eml",
    "report.pdf",
    "report.docx",
    "report.odt",
    "scanned.pdf",
)
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE newsItem [<!ENTITY l0 "lol">'
    + "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    + ']><newsItem xmlns="http://iptc.org/std/nar/2006-10-01/"><contentSet><inlineData>&l9;</inlineData>'
    "</contentSet></newsItem>"
).encode()
#: (stored or duplicate, failed) events each file gives.
EVENTS = {
    "newsml-message.xml": (2, 1),
    "feed.rss": (2, 1),
    "feed.atom": (2, 0),
    "press-release.eml": (2, 0),
    "scanned.pdf": (0, 1),
    "locked.pdf": (0, 1),
    "bomb.docx": (0, 1),
    "laughs.xml": (0, 1),
}


def _files() -> dict[str, bytes]:
    dropped = {name: (SAMPLES / name).read_bytes() for name in GOOD}
    dropped["locked.pdf"] = documents.pdf([["A statement nobody may read without its password."]], user_password="pw")
    dropped["bomb.docx"] = documents.docx_zip_bomb(60 * 1024 * 1024)
    dropped["laughs.xml"] = BILLION_LAUGHS
    assert all(len(data) < MAX_FILE_BYTES for data in dropped.values())
    return dropped


def _later_feed() -> bytes:
    """The next fetch of feed.rss: its three items again (the first with its text edited)
    and a new one."""
    raw = (SAMPLES / "feed.rss").read_bytes()
    raw = raw.replace(b"Opposition members said they would challenge the vote.", b"Opposition members appealed.")
    new = (
        b"<item><title>Tram line opens</title><guid>example-city-news-tram-2026</guid>"
        b"<description>The new tram line opened on Wednesday with free rides all day for passengers.</description>"
        b"</item></channel>"
    )
    return raw.replace(b"</channel>", new)


@pytest.fixture(scope="module", params=BACKENDS)
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedded_redis: EmbeddedRedis
) -> Iterator[Run]:
    env = {"SEEDWORKER_MAX_FILE_BYTES": str(MAX_FILE_BYTES), "SEEDWORKER_NER_MODEL": ""}
    with module_stack("news-formats", request.param, tmp_path_factory, embedded_redis, **env) as stack:
        stack.start_all(concurrency=2)
        dropped = _files()
        for name, data in dropped.items():
            stack.drop(name, data)
        expected = sum(sum(EVENTS.get(name, (1, 0))) for name in dropped)
        stack.wait_for_events(expected, timeout=300)
        stack.drop("later.rss", _later_feed())
        dropped["later.rss"] = _later_feed()
        events = stack.wait_for_events(expected + 4, timeout=300)
        wait_settled(stack, len(dropped))
        yield Run(stack, stack.database_url, dropped, events)


def test_every_file_gives_its_events(run: Run) -> None:
    counts = {name: len(run.events_for(name)) for name in run.dropped}
    expected = {name: sum(EVENTS.get(name, (1, 0))) for name in run.dropped}
    expected["later.rss"] = 4
    assert counts == expected
    assert len({e["id"] for e in run.events}) == len(run.events)


def test_ninjs_item_is_stored_with_its_fields_and_provider_metadata(run: Run) -> None:
    event = run.event("ninjs-1.json")
    assert event["type"] == STORED
    data = event["data"]
    assert (data["title"], data["author"], data["date"]) == (
        "Harbour authority approves night ferry service",
        "Jane Doe",
        "2026-11-24",
    )
    assert (data["dateline_place"], data["dateline_country"], data["agency"]) == ("Portsmouth", "GB", "AP")
    doc = run.document("ninjs-1.json")
    assert doc.format == "ninjs" and doc.text.startswith("The harbour authority on Tuesday")
    assert doc.meta["urgency"] == 3 and doc.meta["pubstatus"] == "usable"
    assert doc.meta["embargoed"] == "2026-11-24T12:00:00Z"
    assert {s["code"] for s in doc.meta["subjects"]} == {"20000735", "20000740"}
    # The codes the agency sent are tags of source `provider`, joinable by their QCode.
    provider = {(t["code"], t["scheme"]) for t in data["tags"] if t.get("source") == "provider"}
    assert provider == {
        ("medtop:20000735", "http://cv.iptc.org/newscodes/mediatopic/"),
        ("medtop:20000740", "http://cv.iptc.org/newscodes/mediatopic/"),
    }
    for name in ("ninjs-2.json", "ninjs-3.json"):
        assert run.document(name).format == "ninjs"


def test_newsml_message_items_are_documents_and_the_bad_item_fails_alone(run: Run) -> None:
    events = run.events_for("newsml-message.xml")
    assert sorted(e["type"] for e in events) == [FAILED, STORED, STORED]
    [failed] = [e for e in events if e["type"] == FAILED]
    assert failed["data"]["reason"] == "missing_text" and "item 3" in failed["data"]["message"]
    titles = {d.title for d in run.rows_of("newsml-message.xml")}
    assert titles == {"Harbour bridge reopens after repairs", "Town library reopens after roof repairs"}
    item = run.document("newsml-item.xml")
    assert (item.format, item.author, item.place, item.country) == ("newsml", "Sam Reyes", "Bristol", "GB")
    assert item.meta["subjects"][0] == {
        "scheme": "medtop",
        "code": "01000000",
        "name": "arts, culture, entertainment and media",
    }


def test_feed_items_are_documents_and_a_repeated_item_is_an_exact_duplicate_by_guid(run: Run) -> None:
    first = run.events_for("feed.rss")
    assert sorted(e["type"] for e in first) == [FAILED, STORED, STORED]
    stored = {e["data"]["title"]: e["data"]["id"] for e in first if e["type"] == STORED}
    later = run.events_for("later.rss")
    assert sorted(e["type"] for e in later) == [DUPLICATE, DUPLICATE, FAILED, STORED]
    duplicates = {e["data"]["duplicate_of"]: e["data"]["kind"] for e in later if e["type"] == DUPLICATE}
    # The edited item (same guid) and the unchanged one (same link): exact duplicates, not new documents.
    assert duplicates == {
        stored["Council approves budget after long night"]: "exact",
        stored["Harbour bridge reopens"]: "exact",
    }
    [new] = [e for e in later if e["type"] == STORED]
    assert new["data"]["title"] == "Tram line opens"
    assert {d.format for d in run.rows_of("feed.atom")} == {"feed"}


def test_email_and_its_attachment_are_documents_linked_by_parent(run: Run) -> None:
    email, attachment = sorted(run.rows_of("press-release.eml"), key=lambda d: d.format)
    assert (email.format, attachment.format) == ("email", "text")
    assert email.title == "Press release: harbour lighthouse to reopen"
    assert email.author == "Harbour Authority Press Office"
    assert attachment.meta["parent"]["message_id"] == email.meta["message_id"]
    assert [a["filename"] for a in email.meta["attachments"]] == ["opening-hours.txt", "logo.png"]


def test_pdf_docx_and_odt_are_read_from_their_text(run: Run) -> None:
    pdf, docx, odt = run.document("report.pdf"), run.document("report.docx"), run.document("report.odt")
    assert (pdf.format, pdf.title, pdf.meta["pages"]) == ("pdf", "Harbour Authority Annual Report", 2)
    assert (docx.format, docx.title, docx.author) == ("docx", "City approves new tram line", "Jane Doe")
    assert (odt.format, odt.title, odt.author) == ("odt", "Orchestra returns to the market hall", "Sam Reyes")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("scanned.pdf", "no_text_extracted"),
        ("locked.pdf", "encrypted"),
        ("bomb.docx", "too_large"),
        ("laughs.xml", "unsafe_xml"),
    ],
)
def test_hostile_documents_fail_with_their_reason_and_are_kept_in_failed(run: Run, name: str, reason: str) -> None:
    event = run.event(name)
    assert event["type"] == FAILED and event["data"]["reason"] == reason
    assert (run.stack.failed / name).read_bytes() == run.dropped[name]
