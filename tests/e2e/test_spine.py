"""The spine, end to end: real embedded Redis, real Celery worker processes, the real watcher
and publisher, real files, SQLite and PostgreSQL.  The user's three scenarios for the example
article, plus the client and the CLI on the same stack.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import EXAMPLE
from tests.support.stack import DUPLICATE, FAILED, STORED, Stack, count_rows
from worker.store.schema import Document, Duplicate, Failure, OutboxRow

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path, broker_url, database_url).start_all()
    yield s
    s.stop()


def test_example_file_is_stored_tagged_and_announced(stack: Stack, database_url: str) -> None:
    shutil.copy(EXAMPLE, stack.inbox / EXAMPLE.name)

    [event] = stack.wait_for_events(1, type=STORED)
    data = event["data"]
    assert event["specversion"] == "1.0" and event["subject"] == data["id"]
    assert data["filename"] == EXAMPLE.name
    assert data["date"] == "2024-02-06"
    assert data["dateline_place"] == "Washington"
    assert data["agency"] == "AP"
    assert data["language"] == "en"
    entities = {(t["name"], t["label"]) for t in data["tags"] if t["kind"] == "entity"}
    for person in ("Donald Trump", "Vladimir Putin", "Volodymyr Zelenskyy"):
        assert (person, "PERSON") in entities
    places = {name for name, label in entities if label in ("GPE", "LOC")}
    assert {"Russia", "Ukraine", "Moscow"} <= places
    assert ("White House", "ORG") in entities

    archived = stack.wait_for(lambda: list(stack.archive.rglob(EXAMPLE.name)), what="file archived")
    assert archived[0].read_bytes() == EXAMPLE.read_bytes()
    assert not list(stack.inbox.glob("*.txt"))
    assert count_rows(database_url, Document) == 1


def test_same_content_under_another_name_is_a_duplicate(stack: Stack, database_url: str) -> None:
    shutil.copy(EXAMPLE, stack.inbox / "first.txt")
    [stored] = stack.wait_for_events(1, type=STORED)
    stack.drop("copy of the article.txt", EXAMPLE.read_bytes())

    [dup] = stack.wait_for_events(1, type=DUPLICATE)
    assert dup["data"]["duplicate_of"] == stored["data"]["id"]
    assert dup["data"]["kind"] == "exact" and dup["data"]["similarity"] == 1.0
    assert dup["data"]["filename"] == "copy of the article.txt"
    assert count_rows(database_url, Document) == 1
    assert count_rows(database_url, Duplicate) == 1
    stack.wait_for(lambda: len(list(stack.archive.rglob("*.txt"))) == 2, what="both files archived")


BAD_FILES = {  # name -> (content, reason)
    "image.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" * 20, "binary"),
    "empty.txt": (b"", "empty"),
    "blank.txt": (b"   \n\t\n  ", "empty"),
}


def test_bad_files_fail_with_their_reason_and_are_kept(stack: Stack, database_url: str) -> None:
    """Three bad files on one stack (one stack per case cost ~6 s each): each ends as its own
    failure with its own reason, kept in failed/ with its report, and the worker keeps going."""
    for name, (content, _) in BAD_FILES.items():
        stack.drop(name, content)

    events = {e["data"]["filename"]: e for e in stack.wait_for_events(len(BAD_FILES), type=FAILED)}
    assert sorted(events) == sorted(BAD_FILES)
    for name, (content, reason) in BAD_FILES.items():
        event = events[name]
        assert event["data"]["reason"] == reason, name
        assert len(event["data"]["message"]) > 10  # a sentence, not a code

        kept = stack.wait_for(
            lambda name=name: (stack.failed / name).exists() and (stack.failed / f"{name}.error.json").exists(),
            what=f"{name} in failed/ with its .error.json",
        )
        assert kept
        assert (stack.failed / name).read_bytes() == content
        report = json.loads((stack.failed / f"{name}.error.json").read_text())
        assert report["reason"] == reason and report["failure_id"] == event["data"]["id"]
    assert count_rows(database_url, Failure) == len(BAD_FILES)

    # ...and the worker keeps going.
    shutil.copy(EXAMPLE, stack.inbox / "after-failure.txt")
    stack.wait_for_events(1, type=STORED)


def test_every_outcome_is_published_exactly_once_per_id(stack: Stack, database_url: str) -> None:
    stack.drop("a.txt", EXAMPLE.read_bytes())
    stack.drop("b.txt", EXAMPLE.read_bytes())
    stack.drop("c.txt", b"\x00\x01\x02binary")
    stack.drop("d.txt", b"date 2024-03-01\nBERLIN (Reuters) - A different story entirely, about trains in Germany.\n")
    events = stack.wait_for_events(4, timeout=40)
    stack.wait_for(lambda: count_rows(database_url, OutboxRow) == 4, what="four outbox rows")
    types = sorted(e["type"].rsplit(".", 1)[-1] for e in events)
    assert types == ["duplicate", "failed", "stored", "stored"]
    assert len({e["id"] for e in events}) == 4


def test_client_submit_waits_for_outcome_and_rejects_bad_requests(stack: Stack) -> None:
    from worker.client import Producer
    from worker.errors import InvalidRequest
    from worker.settings import Settings

    settings = Settings(_env_file=None, broker_url=stack.broker_url, database_url=stack.database_url)  # type: ignore[call-arg]
    producer = Producer(settings)
    receipt = producer.send(producer.build_request(EXAMPLE, tags=["world"], wait=True))
    result = producer.wait([receipt], timeout=60)[receipt.key]
    assert result.status == "stored"
    assert result.outcomes[0].document_id

    with pytest.raises(InvalidRequest, match="filename"):
        producer.build_request(b"text", filename="../../etc/passwd")
    producer.close()

    [event] = stack.wait_for_events(1, type=STORED)
    producer_tags = [t["name"] for t in event["data"]["tags"] if t["kind"] == "producer"]
    assert producer_tags == ["world"]


def test_raw_invalid_message_becomes_failed_event(stack: Stack) -> None:
    """A program that bypasses the client and sends garbage still gets a clear failure."""
    from worker.app import create_app
    from worker.settings import Settings

    app = create_app(Settings(_env_file=None), stack.broker_url)  # type: ignore[call-arg]
    app.send_task("seedworker.ingest", kwargs={"request": {"filename": "x.txt", "text": "hi", "colour": "red"}})
    [event] = stack.wait_for_events(1, type=FAILED)
    assert event["data"]["reason"] == "invalid_request"
    assert "colour" in event["data"]["message"]


def test_events_tail_replays_the_stream_as_json_lines(stack: Stack) -> None:
    shutil.copy(EXAMPLE, stack.inbox / EXAMPLE.name)
    stack.wait_for_events(1, type=STORED)
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "events", "tail", "--from", "0", "--no-follow"],
        env=stack.env(),
        cwd=stack.root,
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["type"] == STORED
