"""Full-text search on SQLite (FTS5) and PostgreSQL: ranking, snippets, stemming, phrases,
exclusion, tag and date filters, updates and deletes, hostile query strings, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, update

from worker.store.engine import make_engine
from worker.store.migrations import upgrade
from worker.store.schema import Document, TagRow
from worker.store.search import fts5_query, parse_websearch, search_documents

REPO = Path(__file__).resolve().parents[2]

DOCS = [
    # id, title, text, date, tags
    (
        "d-flood",
        "River floods the valley",
        "Heavy rain made the river burst its banks; farmers lost crops.",
        dt.date(2024, 3, 1),
        ["Weather", "Agriculture"],
    ),
    (
        "d-elect",
        "Elections in the north",
        "Voters went to the polls in record numbers for the elections.",
        dt.date(2024, 5, 10),
        ["Politics"],
    ),
    (
        "d-rainvote",
        "Rain delays the vote",
        "Rain kept some voters at home; the election count was slow.",
        dt.date(2024, 6, 20),
        ["Politics", "Weather"],
    ),
    ("d-nodate", None, "A harvest festival in the valley drew crowds despite the rain.", None, ["Agriculture"]),
]


def _add(engine: Engine, doc_id: str, title: str | None, body: str, date: dt.date | None, tags: list[str]) -> None:
    from sqlalchemy.orm import Session

    with Session(engine) as s, s.begin():
        row = Document(
            id=doc_id,
            canonical_hash=uuid.uuid4().hex,
            ingest_key=f"k-{doc_id}",
            filename=f"{doc_id}.txt",
            source="test",
            format="txt",
            encoding="utf-8",
            title=title,
            date=date,
            language="en",
            word_count=len(body.split()),
            text=body,
            meta={},
            warnings=[],
            created_at=dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC),
        )
        row.tags = [TagRow(kind="topic", name=t, source="test") for t in tags]
        s.add(row)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    eng = make_engine(database_url)
    for d in DOCS:
        _add(eng, *d)
    yield eng
    eng.dispose()


def _ids(hits: list) -> list[str]:
    return [h.id for h in hits]


def test_ranked_matches_with_snippets_and_stemming(engine: Engine) -> None:
    hits = search_documents(engine, "election")  # stems: elections, election
    assert set(_ids(hits)) == {"d-elect", "d-rainvote"}
    assert hits[0].id == "d-elect"  # in the title and twice in the text
    assert hits[0].score >= hits[1].score
    assert "«" in hits[0].snippet and "»" in hits[0].snippet
    assert hits[0].title == "Elections in the north" and hits[0].date == dt.date(2024, 5, 10)


def test_query_language(engine: Engine) -> None:
    assert set(_ids(search_documents(engine, "rain valley"))) == {"d-flood", "d-nodate"}
    assert _ids(search_documents(engine, '"harvest festival"')) == ["d-nodate"]
    assert _ids(search_documents(engine, '"festival harvest"')) == []
    assert set(_ids(search_documents(engine, "rain -valley"))) == {"d-rainvote"}
    assert set(_ids(search_documents(engine, "festival OR polls"))) == {"d-nodate", "d-elect"}
    assert _ids(search_documents(engine, "zeppelin")) == []


def test_tag_filters_tell_the_users_labels_from_iptc_subjects(engine: Engine) -> None:
    """Issue 18 §3: ``--tag topic:politics`` is the user's label only, ``subject:politics``
    the shipped IPTC rule's, ``medtop:11000000`` its code; a bare name matches either."""
    from sqlalchemy.orm import Session

    with Session(engine) as s, s.begin():
        s.add(TagRow(document_id="d-flood", kind="subject", name="Politics", source="rule:politics",
                     scheme="http://cv.iptc.org/newscodes/mediatopic/", code="medtop:11000000"))  # fmt: skip
    assert set(_ids(search_documents(engine, "rain", tags=["politics"]))) == {"d-flood", "d-rainvote"}
    assert _ids(search_documents(engine, "rain", tags=["topic:politics"])) == ["d-rainvote"]
    assert _ids(search_documents(engine, "rain", tags=["subject:Politics"])) == ["d-flood"]
    assert _ids(search_documents(engine, "rain", tags=["medtop:11000000"])) == ["d-flood"]
    assert _ids(search_documents(engine, "rain", tags=["medtop:15000000"])) == []
    assert _ids(search_documents(engine, "rain", tags=["entity:politics"])) == []


def test_tag_and_date_filters(engine: Engine) -> None:
    assert set(_ids(search_documents(engine, "rain", tags=["weather"]))) == {"d-flood", "d-rainvote"}
    assert _ids(search_documents(engine, "rain", tags=["Weather", "Politics"])) == ["d-rainvote"]
    assert set(_ids(search_documents(engine, "rain", since=dt.date(2024, 4, 1)))) == {"d-rainvote", "d-nodate"}
    assert _ids(search_documents(engine, "rain", until=dt.date(2024, 3, 1))) == ["d-flood"]
    # no date of its own: the day it was stored (2025-01-15) counts
    assert _ids(search_documents(engine, "rain", since=dt.date(2025, 1, 15), until=dt.date(2025, 1, 15))) == [
        "d-nodate"
    ]
    assert _ids(search_documents(engine, "rain", limit=1)) and len(search_documents(engine, "rain", limit=1)) == 1


def test_index_follows_updates_and_deletes(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(Document).where(Document.id == "d-flood").values(text="Drought this year."))
        conn.execute(delete(Document).where(Document.id == "d-elect"))
    assert "d-flood" not in _ids(search_documents(engine, "farmers"))
    assert _ids(search_documents(engine, "drought")) == ["d-flood"]
    assert _ids(search_documents(engine, "polls")) == []


HOSTILE = [
    '"',
    '""',
    '"unterminated',
    'a"b',
    "'",
    "''; DROP TABLE documents; --",
    "NEAR(rain valley)",
    "rain NEAR valley",
    "title:rain",
    "rain*",
    "*",
    "^rain",
    "(rain",
    "rain)",
    "rain AND",
    "AND",
    "OR",
    "NOT rain",
    "-",
    "--rain",
    "- -",
    "rain OR OR",
    "OR rain",
    "-rain",
    ":",
    "!",
    "&|!",
    "rain & valley | !x",
    "<->",
    "\\",
    "\x00rain",
    "%",
    "_",
    "{rain}",
    "[rain]",
    "rain:*",
    "über café",
    "雨",
    "🌧",
    " ",
    "",
    "a" * 5000,
    "rain " * 300,
]


def test_hostile_queries_do_not_raise(engine: Engine) -> None:
    for query in HOSTILE:
        # the tag filter excludes everything; the point is that nothing raises
        assert search_documents(engine, query, tags=["x'; --"], since=dt.date(2000, 1, 1)) == [], query
        search_documents(engine, query)
    assert search_documents(engine, "''; DROP TABLE documents; --") == []
    assert len(search_documents(engine, "rain")) == 3  # still there


def test_fts5_translation() -> None:
    assert parse_websearch('a "b c" OR d -e') == [[(False, "a")], [(False, "b c"), (False, "d")], [(True, "e")]]
    assert fts5_query('a "b c" OR d -e') == '("a" AND ("b c" OR "d")) NOT "e"'
    assert fts5_query("-only") is None
    assert fts5_query('x"y') == '"x""y"'


def test_docs_search_command(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    eng = make_engine(database_url)
    for d in DOCS:
        _add(eng, *d)
    eng.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env.update({"SEEDWORKER_DATABASE_URL": database_url, "SEEDWORKER_DATA_DIR": str(tmp_path)})
    base = [sys.executable, "-m", "worker.cli", "docs", "search"]
    out = subprocess.run(
        [*base, "rain", "--tag", "Weather", "--since", "2024-04-01", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["d-rainvote"]
    assert rows[0]["date"] == "2024-06-20" and "«Rain»" in rows[0]["snippet"]
    table = subprocess.run(
        [*base, '"harvest festival"'], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "d-nodate" in table and "harvest" in table


def test_documents_stored_by_the_pipeline_store_are_searchable(database_url: str) -> None:
    """The real write path (DocumentStore.persist_document) on a migrated database."""
    from tests.support.store import batch
    from worker.store.repository import DocumentStore

    upgrade(database_url)
    store = DocumentStore(make_engine(database_url), event_source="urn:test")
    try:
        stored = store.persist_document(*batch("The lighthouse keeper counted ships at dawn.", "k1"))
        store.persist_document(*batch("The lighthouse keeper counted ships at dawn.", "k2", "copy.txt"))
        hits = search_documents(store.engine, "lighthouse ship", tags=["t"])
        assert _ids(hits) == [stored.document_id]
        assert "«lighthouse»" in hits[0].snippet
    finally:
        store.engine.dispose()
