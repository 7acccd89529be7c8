"""Updates through the real pipeline (watcher -> Redis -> Celery workers -> SQLite /
PostgreSQL -> outbox -> Redis Stream), one file at a time as a newsroom receives them:

* a ninjs item, then its version 2 (same ``uri``): ``document.updated`` naming version 1;
  version 1 again: ``document.duplicate`` (``reason`` same_version);
* a text first take, then the whole story (a write-thru, no id): ``document.updated`` naming
  the first take; an unrelated story on the same topic: ``document.stored``, a story of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.e2e import Run, database
from tests.support.paths import EXAMPLE
from tests.support.stack import DUPLICATE, STORED, Stack
from worker.broker import EmbeddedRedis, connect

pytestmark = pytest.mark.e2e

UPDATED = "org.seedworker.document.updated"
ARTICLE = EXAMPLE.read_text(encoding="utf-8")
PARAGRAPHS = ARTICLE.split("\n\n")
SAME_TOPIC = (
    "WASHINGTON (AP) — Senate negotiators met again on Tuesday over the spending bill, with leaders of both "
    "parties saying a deal on the budget was still possible before the deadline at the end of the week.\n\n"
    "The talks in the Capitol ran late into the evening. Aides said the sticking points were funding for "
    "border security and disaster relief, and that a short-term measure remained an option.\n\n"
    "Lawmakers from both chambers have until Friday to agree on a plan or risk a partial government "
    "shutdown affecting hundreds of thousands of federal workers across the country.\n"
)


def _ninjs(version: str, body: str) -> bytes:
    return json.dumps(
        {
            "uri": "urn:example:news:2026:harbour-storm",
            "version": version,
            "versioncreated": f"2026-11-24T1{version}:00:00Z",
            "headline": "Storm closes harbour",
            "body_text": body,
        }
    ).encode()


STORM = (
    "The harbour closed on Tuesday as the storm arrived, and ferries to the islands were cancelled until "
    "further notice, the port authority said in a statement.\n\n"
    "Forecasters expected winds of up to 120 kilometres an hour overnight along the coast."
)
#: (file name, bytes, the event type it must give), dropped one after the other.
SEQUENCE = [
    ("storm-v1.json", _ninjs("1", STORM), STORED),
    ("storm-v2.json", _ninjs("2", STORM + "\n\nThe harbour is expected to reopen on Thursday morning."), UPDATED),
    ("storm-v1-again.json", _ninjs("1", STORM), DUPLICATE),
    ("first-take.txt", "\n\n".join(PARAGRAPHS[:5]).encode(), STORED),
    ("write-thru.txt", ARTICLE.encode(), UPDATED),
    ("same-topic.txt", SAME_TOPIC.encode(), STORED),
]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedded_redis: EmbeddedRedis
) -> Iterator[Run]:
    root = tmp_path_factory.mktemp(f"updates-{request.param}")
    if not embedded_redis.is_running():
        embedded_redis.start()
    connect(embedded_redis.url).flushall()
    with database(request.param, root) as database_url:
        stack = Stack(root, embedded_redis.url, database_url, extra_env={"SEEDWORKER_NER_MODEL": ""})
        try:
            stack.start_all(concurrency=2)
            dropped: dict[str, bytes] = {}
            for n, (name, data, _) in enumerate(SEQUENCE, 1):
                stack.drop(name, data)
                dropped[name] = data
                stack.wait_for_events(n, timeout=180)  # in order: each version after the one before
            yield Run(stack, database_url, dropped, stack.events())
        finally:
            stack.stop()
            connect(embedded_redis.url).flushall()


def _data(run: Run, name: str) -> dict[str, Any]:
    return dict(run.event(name)["data"])


def test_each_file_gives_the_event_its_place_in_the_story_calls_for(run: Run) -> None:
    assert [(name, run.event(name)["type"]) for name, _, _ in SEQUENCE] == [
        (name, expected) for name, _, expected in SEQUENCE
    ]


def test_a_newer_ninjs_version_names_the_version_it_updates(run: Run) -> None:
    v1, v2 = _data(run, "storm-v1.json"), _data(run, "storm-v2.json")
    assert (v2["updates"], v2["previous_version"], v2["version"], v2["match"]) == (v1["id"], 1, 2, "item_version")
    assert (v2["item_id"], v2["item_version"]) == ("urn:example:news:2026:harbour-storm", 2)
    assert v2["story_id"] == v1["story_id"]
    first, second = run.document("storm-v1.json"), run.document("storm-v2.json")
    assert (first.version, second.version, second.updates) == (1, 2, first.id)
    again = _data(run, "storm-v1-again.json")
    assert (again["duplicate_of"], again["kind"], again["reason"]) == (v1["id"], "exact", "same_version")


def test_a_write_thru_is_linked_and_a_same_topic_story_is_not(run: Run) -> None:
    first, whole, other = _data(run, "first-take.txt"), _data(run, "write-thru.txt"), _data(run, "same-topic.txt")
    assert (whole["updates"], whole["match"], whole["version"]) == (first["id"], "containment", 2)
    assert whole["containment"] >= 0.8 and whole["story_id"] == first["story_id"]
    assert other["story_id"] not in (first["story_id"], _data(run, "storm-v1.json")["story_id"])
    assert run.document("write-thru.txt").updates == first["id"]
    assert run.document("same-topic.txt").updates is None
