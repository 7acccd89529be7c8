"""Tagging end to end, with real watcher, worker and publisher processes:

* inbox sub-folders become folder tags, renamed and filtered by the folder settings;
* enough folder-labelled documents make a worker enqueue ``seedworker.tags.train`` by itself,
  the workers load the new model from the database, and ``seedworker tags retag`` (Celery
  tasks on the worker, progress from their reports) gives the older unlabelled documents
  ``auto`` topics with one ``document.retagged`` event each; a second retag changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.eval_tags import make_corpus
from tests.support.stack import STORED, Stack
from worker.store.engine import make_engine
from worker.store.schema import TagModel, TagRow

pytestmark = pytest.mark.e2e

RETAGGED = "org.seedworker.document.retagged"


def _make_stack(tmp_path: Path, broker_url: str, database_url: str, **env: str) -> Stack:
    taxonomy = tmp_path / "taxonomy.toml"
    taxonomy.write_text("# no rules: topics here come from folders and the learned model\n")
    base = {
        "SEEDWORKER_NER_MODEL": "",  # the fast profile: this test is about topics, not entities
        "SEEDWORKER_TAXONOMY_PATH": str(taxonomy),
        "SEEDWORKER_AUTO_TAG_CHECK_SECONDS": "0",
        "SEEDWORKER_AUTO_TAG_THRESHOLD": "0.3",
    }
    return Stack(tmp_path, broker_url, database_url, extra_env={**base, **env})


@pytest.fixture
def folder_stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    s = _make_stack(
        tmp_path,
        broker_url,
        database_url,
        SEEDWORKER_FOLDER_TAG_MAP=json.dumps({"pol": "politics"}),
        SEEDWORKER_FOLDER_TAG_IGNORE=json.dumps(["incoming"]),
        SEEDWORKER_FOLDER_TAG_DEPTH="2",
    ).start_all(concurrency=1)
    yield s
    s.stop()


def test_inbox_subfolders_become_folder_tags(folder_stack: Stack) -> None:
    stack = folder_stack
    stack.drop("pol/incoming/speech.txt", b"The parliament debated the budget late into the night.\n")
    stack.drop("Sport/match.txt", b"The striker scored twice in the cup final on Saturday.\n")
    stack.drop("a/b/c/deep.txt", b"Three folders deep, only two of them count.\n")
    stack.drop("root.txt", b"No folder at all for this one.\n")

    events = stack.wait_for_events(4, timeout=60, type=STORED)
    folders = {
        e["data"]["filename"]: sorted(t["name"] for t in e["data"]["tags"] if t["kind"] == "folder") for e in events
    }
    assert folders == {
        "speech.txt": ["politics"],  # "pol" mapped, "incoming" ignored
        "match.txt": ["Sport"],  # spelling kept
        "deep.txt": ["a", "b"],  # depth 2
        "root.txt": [],
    }


@pytest.fixture
def auto_stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    s = _make_stack(
        tmp_path, broker_url, database_url, SEEDWORKER_AUTO_TRAIN_AFTER="20", SEEDWORKER_AUTO_TRAIN_MIN_DOCS="10"
    ).start_all(concurrency=2)
    yield s
    s.stop()


def _tags(database_url: str, doc_id: str) -> list[tuple[str, str, str]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(TagRow.kind, TagRow.name, TagRow.source).where(TagRow.document_id == doc_id))
            return sorted((str(k), str(n), str(s)) for k, n, s in rows)
    finally:
        engine.dispose()


def _model_versions(database_url: str) -> list[int]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return [int(v) for v in conn.scalars(select(TagModel.version))]
    finally:
        engine.dispose()


def _cli(stack: Stack, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=stack.env(),
        cwd=stack.root,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def test_background_training_then_retag_gives_auto_topics_with_events(auto_stack: Stack, database_url: str) -> None:
    stack = auto_stack
    # 30 documents, 3 topics, clearly worded: this test is about the mechanics (bench/eval_tags.py measures)
    corpus = make_corpus(10, seed=11, topics=("politics", "sport", "health"), topical_share=0.35)
    unlabelled, labelled = corpus[:4], corpus[4:]
    for doc in unlabelled:  # before any model exists: stored without auto topics
        stack.drop(doc.filename, doc.text.encode())
    early = stack.wait_for_events(len(unlabelled), timeout=60, type=STORED)
    early_ids = {e["data"]["filename"]: e["data"]["id"] for e in early}
    for doc_id in early_ids.values():
        assert [t for t in _tags(database_url, doc_id) if t[2].startswith("auto")] == []

    for doc in labelled:
        stack.drop(f"{doc.topic}/{doc.filename}", doc.text.encode())
    stack.wait_for_events(len(corpus), timeout=120, type=STORED)
    stack.drop("nudge.txt", b"One more document, so a worker looks at the counts again.\n")
    stack.wait_for_events(len(corpus) + 1, timeout=60, type=STORED)
    # 26 new labelled documents >= 20: a worker enqueued seedworker.tags.train by itself
    stack.wait_for(lambda: _model_versions(database_url), timeout=120, what="a model trained in the background")
    assert _model_versions(database_url) == [1]

    summary = _cli(stack, "tags", "retag", "--batch-size", "8", "--reason", "new model")
    assert summary["documents"] == len(corpus) + 1 and summary["batches"] == 4
    assert summary["batches_done"] == 4 and summary["missing"] == 0
    retagged = stack.wait_for_events(int(str(summary["changed"])), timeout=60, type=RETAGGED)
    assert summary["changed"] >= 3  # the early unlabelled articles at least

    by_subject = {e["subject"]: e["data"] for e in retagged}
    truth = {doc.filename: doc.topic for doc in unlabelled}
    correct = 0
    for filename, doc_id in early_ids.items():
        assert doc_id in by_subject, f"{filename} was not retagged"
        data = by_subject[doc_id]
        assert data["reason"] == "new model" and data["removed"] == []
        added = [t["name"] for t in data["added"] if t["kind"] == "topic"]
        assert added, data
        correct += truth[filename] in added
        stored = _tags(database_url, doc_id)
        assert any(kind == "topic" and source == "auto:v1" for kind, _, source in stored)
    assert correct >= 3
    labelled_subjects = set(by_subject) - set(early_ids.values())
    assert len(labelled_subjects) <= 1  # only the nudge may get an auto topic; folder-tagged ones never

    again = _cli(stack, "tags", "retag", "--batch-size", "16")
    assert again["changed"] == 0 and again["batches_done"] == 2
    assert len([e for e in stack.events() if e["type"] == RETAGGED]) == len(retagged)


@pytest.fixture
def ruled_stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    """Rules that give the user's own label names: ``politics`` as a plain rule topic and
    ``sport`` as an IPTC subject, like the shipped taxonomy's.  The model check interval is
    left at its default (30 s): a model trained a moment ago must be used all the same."""
    taxonomy = tmp_path / "rules.toml"
    taxonomy.write_text(
        '[tags.politics]\nmatch = ["parliament", "senator", "election", "ballot", "coalition", "cabinet"]\n'
        '[tags.sport]\ncode = "medtop:15000000"\nmatch = ["match", "goal", "league", "coach", "stadium"]\n'
    )
    env = {
        "SEEDWORKER_NER_MODEL": "",
        "SEEDWORKER_TAXONOMY_PATH": str(taxonomy),
        "SEEDWORKER_AUTO_TRAIN_AFTER": "0",
        "SEEDWORKER_AUTO_TRAIN_MIN_DOCS": "10",
    }
    s = Stack(tmp_path, broker_url, database_url, extra_env=env).start_all(concurrency=1)
    yield s
    s.stop()


def test_the_users_label_wins_as_an_auto_tag_even_when_a_rule_gives_the_same_name(ruled_stack: Stack) -> None:
    """Issue 18 §3: label by folder, ``seedworker tags train``, then drop unlabelled files at
    once: each gets its learned label as an ``auto`` topic beside the rule's tag of the same
    name, and the event tells them apart (kind, and scheme + code for the IPTC subject)."""
    stack = ruled_stack
    corpus = make_corpus(12, seed=21, topics=("politics", "sport", "health"), topical_share=0.35)
    unlabelled = [d for topic in ("politics", "sport", "health") for d in corpus if d.topic == topic][::6]
    labelled = [d for d in corpus if d not in unlabelled]
    assert sorted(d.topic for d in unlabelled) == ["health", "health", "politics", "politics", "sport", "sport"]
    stack.drop("warmup.txt", b"A first document, before any model exists.\n")  # the worker has looked: no model
    stack.wait_for_events(1, timeout=60, type=STORED)
    for doc in labelled:
        stack.drop(f"{doc.topic}/{doc.filename}", doc.text.encode())
    stack.wait_for_events(1 + len(labelled), timeout=120, type=STORED)
    trained = _cli(stack, "tags", "train", "--json")
    assert trained["version"] == 1

    for doc in unlabelled:  # right after train returned
        stack.drop(doc.filename, doc.text.encode())
    events = stack.wait_for_events(len(corpus) + 1, timeout=120, type=STORED)
    by_file = {e["data"]["filename"]: e["data"]["tags"] for e in events}
    collisions = 0
    for doc in unlabelled:
        tags = by_file[doc.filename]
        mine = [(t["kind"], t["source"]) for t in tags if t["name"] == doc.topic]
        assert ("topic", "auto:v1") in mine, (doc.filename, tags)  # the learned label, as auto
        collisions += any(source.startswith("rule:") for _, source in mine)
        for t in tags:
            if t["kind"] == "subject":  # the IPTC rule: joinable by scheme + code
                assert (t["scheme"], t["code"]) == ("http://cv.iptc.org/newscodes/mediatopic/", "medtop:15000000")
    assert collisions >= 3, by_file  # a rule gave the same name on several of them (politics and sport)
