"""Deduplication end to end: real watcher, worker processes and publisher, SQLite and
PostgreSQL.  Exact and near copies through the pipeline under both policies, and several
worker processes receiving an article, its copies and its rewrites at the same moment.

NER is off (``SEEDWORKER_NER_MODEL=""``, the fast profile) to keep worker start-up cheap;
deduplication does not depend on it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.corpus import near_copy, typo_copy
from tests.support.paths import EXAMPLE
from tests.support.stack import DUPLICATE, STORED, Stack, count_rows
from worker.pipeline.dedup import jaccard, shingles
from worker.pipeline.normalise import normalise
from worker.store.schema import Document, Duplicate

pytestmark = pytest.mark.e2e

ARTICLE = EXAMPLE.read_text(encoding="utf-8")
FAST = {"SEEDWORKER_NER_MODEL": ""}


@pytest.fixture
def stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path, broker_url, database_url, extra_env=dict(FAST)).start_all(concurrency=1)
    yield s
    s.stop()


def test_exact_and_near_copies_become_duplicate_events(stack: Stack, database_url: str) -> None:
    stack.drop("original.txt", ARTICLE.encode())
    [stored] = stack.wait_for_events(1, timeout=90, type=STORED)
    story = stored["data"]["story_id"]
    assert story

    stack.drop("same text, other name.txt", ARTICLE.encode())
    [exact] = stack.wait_for_events(1, timeout=90, type=DUPLICATE)
    rewrite = near_copy(ARTICLE)  # new byline and dateline, a paragraph rewritten, a footer
    stack.drop("rewrite.txt", rewrite.encode())
    dups = stack.wait_for_events(2, timeout=90, type=DUPLICATE)
    [near] = [e for e in dups if e["data"]["filename"] == "rewrite.txt"]

    assert exact["data"]["kind"] == "exact" and exact["data"]["similarity"] == 1.0
    assert near["data"]["kind"] == "near"
    true_jaccard = jaccard(shingles(normalise(ARTICLE.encode()).text), shingles(normalise(rewrite.encode()).text))
    assert 0.8 <= near["data"]["similarity"] < 1.0
    assert abs(near["data"]["similarity"] - true_jaccard) < 0.12
    for dup in (exact, near):
        assert dup["data"]["duplicate_of"] == stored["data"]["id"]
        assert dup["subject"] == stored["data"]["id"]
        assert dup["data"]["story_id"] == story
        assert dup["data"]["id"].startswith("dup_")
    assert count_rows(database_url, Document) == 1
    assert count_rows(database_url, Duplicate) == 2
    stack.wait_for(lambda: len(list(stack.archive.rglob("*.txt"))) == 3, what="all three files archived")


def test_unrelated_story_is_stored_with_its_own_story(stack: Stack, database_url: str) -> None:
    stack.drop("original.txt", ARTICLE.encode())
    other = "BERLIN (Reuters) - " + " ".join(
        f"Rail operators in region {i} reported delays after storms damaged overhead lines." for i in range(30)
    )
    stack.drop("other.txt", other.encode())
    stored = stack.wait_for_events(2, timeout=90, type=STORED)
    assert len({e["data"]["story_id"] for e in stored}) == 2
    assert count_rows(database_url, Document) == 2


def test_drop_policy_emits_the_event_and_keeps_no_record(tmp_path: Path, broker_url: str, database_url: str) -> None:
    stack = Stack(
        tmp_path, broker_url, database_url, extra_env={**FAST, "SEEDWORKER_DUPLICATE_POLICY": "drop"}
    ).start_all(concurrency=1)
    try:
        stack.drop("original.txt", ARTICLE.encode())
        [stored] = stack.wait_for_events(1, timeout=90, type=STORED)
        stack.drop("rewrite.txt", near_copy(ARTICLE).encode())
        stack.drop("copy.txt", ARTICLE.encode())
        dups = stack.wait_for_events(2, timeout=90, type=DUPLICATE)
        assert sorted(e["data"]["kind"] for e in dups) == ["exact", "near"]
        for dup in dups:
            assert dup["data"]["id"] is None
            assert dup["data"]["duplicate_of"] == stored["data"]["id"]
            assert dup["data"]["story_id"] == stored["data"]["story_id"]
        assert count_rows(database_url, Duplicate) == 0 and count_rows(database_url, Document) == 1
    finally:
        stack.stop()


def test_workers_racing_copies_and_rewrites_end_with_one_canonical(
    tmp_path: Path, broker_url: str, database_url: str
) -> None:
    """Six messages queued before three worker processes start, so they take them at once."""
    from worker.client import Producer
    from worker.settings import Settings

    texts = {f"copy-{i}.txt": ARTICLE for i in range(3)}
    texts.update({f"rewrite-{i}.txt": typo_copy(ARTICLE, i) for i in range(3)})
    sets = [shingles(normalise(t.encode()).text) for t in texts.values()]
    assert min(jaccard(a, b) for a in sets for b in sets) >= 0.85  # each is near every other one

    stack = Stack(tmp_path, broker_url, database_url, extra_env={**FAST, "SEEDWORKER_PREFETCH_MULTIPLIER": "1"})
    stack.inbox.mkdir(parents=True, exist_ok=True)
    settings = Settings(_env_file=None, broker_url=broker_url, database_url=database_url)  # type: ignore[call-arg]
    producer = Producer(settings, broker_url=broker_url)
    try:
        receipts = [
            producer.send(producer.build_request(text.encode(), filename=name, wait=True))
            for name, text in texts.items()
        ]
        stack.start("publisher", "publish")
        stack.start("worker", "worker", "--concurrency=3", f"--node-name=w1@{tmp_path.name}")
        stack.start("worker2", "worker", "--concurrency=1", f"--node-name=w2@{tmp_path.name}")
        results = producer.wait(receipts, timeout=150)
        events = stack.wait_for_events(6, timeout=90)
    finally:
        producer.close()
        if "worker2" in stack.procs:
            stack.kill("worker2", signal.SIGTERM)
        stack.stop()

    outcomes = [o for r in results.values() for o in r.outcomes]
    stored = [o for o in outcomes if o.status == "stored"]
    assert len(stored) == 1, outcomes
    canonical = stored[0].document_id
    assert all(o.status == "duplicate" and o.duplicate_of == canonical for o in outcomes if o is not stored[0])
    assert count_rows(database_url, Document) == 1
    assert count_rows(database_url, Duplicate) == 5

    assert len({e["id"] for e in events}) == 6
    [stored_event] = [e for e in events if e["type"] == STORED]
    assert stored_event["data"]["id"] == canonical
    dup_events = [e for e in events if e["type"] == DUPLICATE]
    assert {e["data"]["duplicate_of"] for e in dup_events} == {canonical}
    assert {e["data"]["story_id"] for e in events} == {stored_event["data"]["story_id"]}
    # The copies of whichever text won are exact; every other text is near it.
    winner = stored_event["data"]["filename"]
    for e in dup_events:
        same_text = texts[e["data"]["filename"]] == texts[winner]
        assert e["data"]["kind"] == ("exact" if same_text else "near"), e["data"]
