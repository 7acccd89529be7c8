"""``SEEDWORKER_EMBARGO=hold`` through the whole pipeline (watcher -> Redis -> Celery worker
-> SQLite / PostgreSQL -> outbox -> publisher -> Redis Stream): an embargoed ninjs item
dropped in the inbox is stored at once, its event reaches the stream only after the
embargo, and a plain story dropped beside it is not held up."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.support.stack import Stack, count_rows
from worker.store.schema import Document

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FAST = {"SEEDWORKER_NER_MODEL": "", "SEEDWORKER_KEYWORDS": "false"}
EMBARGO_SECONDS = 12  # enough for the watcher and the worker to store it well before it lifts


def _ninjs(embargo: dt.datetime) -> bytes:
    return json.dumps(
        {
            "uri": "urn:example:news:2026:embargoed-report",
            "headlines": [{"role": "main", "value": "Report on river quality due at noon"}],
            "bodies": [{"role": "main", "value": "The agency's annual report on river quality finds fewer spills."}],
            "urgency": 3,
            "pubstatus": "usable",
            "genres": [{"name": "Current", "uri": "http://cv.iptc.org/newscodes/genre/Current"}],
            "embargoed": embargo.isoformat(),
        }
    ).encode()


def _stored(stack: Stack, filename: str) -> list[dict[str, object]]:
    return [
        e for e in stack.events() if e["type"] == "org.seedworker.document.stored" and e["data"]["filename"] == filename
    ]


def test_an_embargoed_item_is_stored_at_once_and_its_event_waits_for_the_embargo(
    tmp_path: Path, broker_url: str, database_url: str
) -> None:
    stack = Stack(tmp_path, broker_url, database_url, {**FAST, "SEEDWORKER_EMBARGO": "hold"}).start_all()
    try:
        embargo = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=EMBARGO_SECONDS)).replace(microsecond=0)
        stack.drop("embargoed.json", _ninjs(embargo))
        stack.drop("plain.txt", b"Council news\n\nThe council approved the new bus timetable on Monday.\n")
        stack.wait_for(lambda: _stored(stack, "plain.txt"), 60, "the plain story's event")
        stack.wait_for(lambda: count_rows(database_url, Document) == 2, 60, "both documents stored")
        assert dt.datetime.now(dt.UTC) < embargo, "the pipeline took longer than the embargo; raise EMBARGO_SECONDS"
        assert _stored(stack, "embargoed.json") == []  # stored, but its event is held
        (event,) = stack.wait_for(lambda: _stored(stack, "embargoed.json"), EMBARGO_SECONDS + 30, "the held event")
        assert dt.datetime.now(dt.UTC) >= embargo
        data = event["data"]
        assert isinstance(data, dict)
        assert dt.datetime.fromisoformat(data["embargoed_until"]) == embargo
        assert (data["urgency"], data["genre"], data["pubstatus"]) == (
            3,
            "genre:Current",
            "usable",
        )  # the URI gives the QCode
    finally:
        stack.stop()
