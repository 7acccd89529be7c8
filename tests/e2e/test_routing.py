"""Routing the heavy stage to its own queue: with ``SEEDWORKER_PIPELINE=chain`` and
``SEEDWORKER_TAG_QUEUE`` set, one worker consumes only the default queue (ingest, normalise,
store) and another, with its own node name, only the tag queue (NER).  Documents need both:
they wait in the tag queue until the tag worker starts, then come out stored and tagged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.corpus import generate
from tests.support.paths import EXAMPLE
from tests.support.stack import STORED, Stack
from worker.app import create_app
from worker.settings import Settings

pytestmark = pytest.mark.e2e

TAG_QUEUE = "seedworker-ner"


@pytest.fixture
def chain_stack(tmp_path: Path, broker_url: str) -> Iterator[Stack]:
    stack = Stack(
        tmp_path,
        broker_url,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        extra_env={"SEEDWORKER_PIPELINE": "chain", "SEEDWORKER_TAG_QUEUE": TAG_QUEUE},
    )
    stack.inbox.mkdir(parents=True)
    yield stack
    stack.stop()


def _articles() -> list[bytes]:
    """The example article and two unrelated generated ones (not near-duplicates of it)."""
    files, _ = generate(40)
    return [EXAMPLE.read_bytes(), files["article-00000.txt"], files["article-00001.txt"]]


@pytest.mark.timeout(420)
def test_tag_stage_runs_only_on_the_tag_queue_worker(chain_stack: Stack) -> None:
    stack = chain_stack
    app = create_app(Settings(_env_file=None, tag_queue=TAG_QUEUE), stack.broker_url)  # type: ignore[call-arg]
    redis = stack.redis()
    stack.start("light", "worker", "--queues=seedworker", "--concurrency=1", "--node-name=light@routing")
    stack.start("publisher", "publish")
    stack.start("watcher", "watch", "--watcher-id=routing")
    stack.wait_for(lambda: app.control.ping(timeout=0.5), 90, what="the light worker answering")

    articles = _articles()
    for i, body in enumerate(articles):
        stack.drop(f"article-{i}.txt", body)

    # Normalised, then parked on the tag queue: nobody consumes it yet, nothing is stored.
    stack.wait_for(lambda: int(redis.llen(TAG_QUEUE)) == len(articles), 90, what="three tag tasks queued")
    assert int(redis.llen("seedworker")) == 0
    assert stack.events() == []

    stack.start("ner", "worker", f"--queues={TAG_QUEUE}", "--concurrency=1", "--node-name=ner@routing")
    events = stack.wait_for_events(len(articles), 240, type=STORED)
    assert {e["data"]["filename"] for e in events} == {f"article-{i}.txt" for i in range(len(articles))}
    [example] = [e for e in events if e["data"]["filename"] == "article-0.txt"]
    people = {t["name"] for t in example["data"]["tags"] if t.get("label") == "PERSON"}
    assert "Vladimir Putin" in people  # NER ran (on the tag worker)
    assert int(redis.llen(TAG_QUEUE)) == 0

    queues = app.control.inspect(timeout=5).active_queues() or {}
    consumed = {node: sorted(q["name"] for q in qs) for node, qs in queues.items()}
    assert consumed == {"light@routing": ["seedworker"], "ner@routing": [TAG_QUEUE]}
    redis.close()
