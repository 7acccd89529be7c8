"""``seedworker docs show ID --format ninjs`` through the installed entry point, on SQLite and
PostgreSQL: an agency item stored by the real normaliser and store comes out as valid ninjs
2.1; the default JSON form is unchanged apart from the news fields it gained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import one_line_error, seedworker, user_env
from tests.support.ninjs import date_time_problems, ninjs_problems, store_file
from worker.store.engine import make_engine
from worker.store.migrations import upgrade
from worker.store.repository import DocumentStore

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "formats"


@pytest.fixture
def stored(tmp_path: Path, database_url: str) -> tuple[str, dict[str, str]]:
    """An embargoed NewsML-G2 item in the database, and a user's environment that names it."""
    upgrade(database_url)
    store = DocumentStore(make_engine(database_url), event_source="urn:test")
    try:
        (doc_id,) = store_file(store, (SAMPLES / "newsml-item.xml").read_bytes(), "newsml-item.xml")
    finally:
        store.engine.dispose()
    return doc_id, user_env(tmp_path, data_dir=str(tmp_path / "data"), database_url=database_url)


def test_docs_show_format_ninjs_prints_valid_ninjs_2_1(tmp_path: Path, stored: tuple[str, dict[str, str]]) -> None:
    doc_id, env = stored
    done = seedworker("docs", "show", doc_id[4:14], "--format", "ninjs", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    item = json.loads(done.stdout)
    assert ninjs_problems(item) == [] and date_time_problems(item) == []
    assert item["uri"] == "urn:example:news:2026:museum-wing"
    assert item["altids"] == [{"role": "seedworker", "value": doc_id}]
    assert (item["embargoed"], item["urgency"], item["pubstatus"]) == ("2026-11-23T12:00:00+00:00", 5, "usable")
    assert item["headlines"][0] == {"role": "main", "value": "Museum opens a maritime wing"}
    assert {s.get("literal") for s in item["subjects"]} >= {"medtop:01000000", "medtop:20000038"}


def test_docs_show_json_stays_the_default_with_the_news_fields(
    tmp_path: Path, stored: tuple[str, dict[str, str]]
) -> None:
    doc_id, env = stored
    default = seedworker("docs", "show", doc_id, cwd=tmp_path, env=env)
    assert default.returncode == 0, default.stderr
    assert (
        seedworker("docs", "show", doc_id, "--format", "json", "--json", cwd=tmp_path, env=env).stdout == default.stdout
    )
    shown = json.loads(default.stdout)
    assert shown["id"] == doc_id and shown["format"] == "newsml" and "uri" not in shown
    assert (shown["urgency"], shown["genre"], shown["pubstatus"]) == (5, "genre:Current", "usable")
    assert shown["embargoed_until"] == "2026-11-23T12:00:00+00:00"


def test_docs_show_refuses_an_unknown_format_in_one_line(tmp_path: Path, stored: tuple[str, dict[str, str]]) -> None:
    doc_id, env = stored
    line = one_line_error(seedworker("docs", "show", doc_id, "--format", "xml", cwd=tmp_path, env=env), 2)
    assert "xml" in line and "ninjs" in line
