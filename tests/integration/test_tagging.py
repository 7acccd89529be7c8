"""Tags in the store, on SQLite and PostgreSQL: the ``auto`` model stored as JSON and arrays
and loaded back, auto tags only where no explicit tag exists, ``tags explain``, and retag
writing new tags with one ``document.retagged`` event per changed document."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import select

from bench.eval_tags import make_corpus
from tests.support.logs import captured_logs
from worker import process
from worker.cli import main
from worker.errors import NotEnoughTrainingData
from worker.models import IngestRequest, Tag
from worker.pipeline.classifier import fit
from worker.pipeline.tag import FolderPolicy, Tagger, is_auto
from worker.pipeline.taxonomy import Taxonomy
from worker.settings import Settings
from worker.store.engine import make_engine
from worker.store.repository import DocumentStore
from worker.store.schema import OutboxRow, TagModel, TagRow
from worker.store.tagging import TRAIN_PENDING_KEY, AutoModels, TagStore, request_training

RETAGGED = "org.seedworker.document.retagged"


@pytest.fixture
def store(database_url: str) -> DocumentStore:
    s = DocumentStore(make_engine(database_url), event_source="urn:test")
    s.create_schema()
    return s


def _tagger(rules: dict[str, object] | None = None) -> Tagger:
    taxonomy = Taxonomy.from_mapping({"tags": rules or {}})
    return Tagger(taxonomy=taxonomy, nlp=None, folders=FolderPolicy(), auto_threshold=0.3)


def _ingest(
    store: DocumentStore, tagger: Tagger, text: str, name: str, *, folders: list[str] | None = None
) -> tuple[str, list[Tag]]:
    request = IngestRequest(text=text, filename=name, folder_tags=folders or [], idempotency_key=f"test:{name}")
    batch = process.tag(process.prepare(request, f"test:{name}", max_bytes=1 << 20), tagger)
    result = process.store(batch, store, max_bytes=1 << 20)
    [outcome] = result.outcomes
    assert outcome.status == "stored", outcome
    assert outcome.document_id is not None
    return outcome.document_id, batch.items[0].tags


def _labelled(store: DocumentStore, tagger: Tagger, per_topic: int = 6) -> list[str]:
    return [_ingest(store, tagger, d.text, d.filename, folders=[d.topic])[0] for d in make_corpus(per_topic)]


def _retag_events(store: DocumentStore) -> list[dict[str, object]]:
    with store.session() as s:
        rows = s.scalars(select(OutboxRow).where(OutboxRow.type == RETAGGED).order_by(OutboxRow.seq))
        return [json.loads(r.payload) for r in rows]


def test_model_is_stored_as_json_and_arrays_and_loads_back_identical(store: DocumentStore) -> None:
    _labelled(store, _tagger())
    tags = TagStore(store)
    examples = tags.training_examples()
    assert len(examples) == 36 and all(len(e.labels) == 1 for e in examples)

    stored, report = tags.train(min_docs=10)
    assert stored.version == 1 and stored.trained_on == 36
    assert sorted(stored.labels) == ["culture", "economy", "health", "politics", "science", "sport"]
    assert report.test_docs == 7 and set(report.labels) == set(stored.labels)

    with store.session() as s:
        row = s.scalars(select(TagModel)).one()
        json.dumps(row.params)  # plain JSON
        assert row.arrays[:2] == b"PK"  # numpy .npz (a zip of .npy arrays), read with allow_pickle=False
        with np.load(io.BytesIO(row.arrays), allow_pickle=False) as arrays:
            assert arrays["coef"].shape == (6, arrays["columns"].shape[0])

    loaded = tags.load_model()
    assert loaded is not None and loaded.version == 1
    fresh = fit(examples)  # the same data trains the same model
    texts = [d.text for d in make_corpus(3, seed=99)]
    assert np.allclose(loaded.predict_proba(texts), fresh.predict_proba(texts), atol=1e-5)

    again, _ = tags.train(min_docs=10)
    assert again.version == 2 and tags.latest_version() == 2
    assert [m.version for m in tags.models()] == [2, 1]


def test_auto_tags_only_documents_without_explicit_tags(store: DocumentStore) -> None:
    tagger = _tagger()
    _labelled(store, tagger)
    tags = TagStore(store)
    tags.train(min_docs=10)
    tagger.auto = tags.load_model()
    [sport, economy] = [d for d in make_corpus(1, seed=7) if d.topic in ("sport", "economy")][:2]

    _, auto_tagged = _ingest(store, tagger, sport.text if sport.topic == "sport" else economy.text, "new.txt")
    autos = [t for t in auto_tagged if is_auto(t)]
    assert autos and autos[0].kind == "topic" and autos[0].source == "auto:v1"
    assert autos[0].score is not None and autos[0].score >= 0.3

    _, explicit = _ingest(store, tagger, economy.text + " (filed)", "filed.txt", folders=["sport"])
    assert not [t for t in explicit if is_auto(t)]  # the folder said sport; auto stays out
    assert [(t.kind, t.name) for t in explicit] == [("folder", "sport")]


def test_training_needs_enough_labelled_documents(store: DocumentStore) -> None:
    tagger = _tagger()
    for d in make_corpus(1):
        _ingest(store, tagger, d.text, d.filename, folders=[d.topic])
    with pytest.raises(NotEnoughTrainingData, match="at least 20"):
        TagStore(store).train(min_docs=20)
    with pytest.raises(NotEnoughTrainingData, match="two labels"):
        TagStore(store).train(min_docs=2)  # one document per label is not enough to learn from


def test_retag_adds_and_removes_tags_with_one_event_per_changed_document(store: DocumentStore) -> None:
    old = _tagger({"rain": {"match": ["rain"]}})
    rainy, _ = _ingest(store, old, "Heavy rain and wind hit the coast on Monday.", "rain.txt")
    sunny, _ = _ingest(store, old, "Sunny skies and storm warnings lifted.", "sun.txt", folders=["weather"])
    plain, _ = _ingest(store, old, "The council met to discuss parking.", "plain.txt")
    tags = TagStore(store)

    new = _tagger({"storm": {"match": ["storm", "wind"]}})  # the taxonomy changed: rain is gone
    ids = tags.select_for_retag()
    assert ids == [rainy, sunny, plain]
    items, missing = tags.load_for_retag([*ids, "doc_missing"])
    assert missing == ["doc_missing"]
    derived = new.derive_many([i.document for i in items], [i.explicit for i in items])
    outcome = tags.apply_retag(items, derived, run_id="run1", reason="taxonomy changed")
    assert sorted(outcome.changed) == sorted([rainy, sunny]) and outcome.unchanged == 1

    events = {e["subject"]: e for e in _retag_events(store)}
    assert set(events) == {rainy, sunny}
    rain_event = events[rainy]["data"]
    assert rain_event["run_id"] == "run1" and rain_event["reason"] == "taxonomy changed"
    assert [(t["kind"], t["name"]) for t in rain_event["added"]] == [("topic", "storm")]
    assert [(t["kind"], t["name"]) for t in rain_event["removed"]] == [("topic", "rain")]
    with store.session() as s:
        sunny_tags = {(r.kind, r.name, r.source) for r in s.scalars(select(TagRow).where(TagRow.document_id == sunny))}
    assert sunny_tags == {("folder", "weather", "folder"), ("topic", "storm", "rule:storm")}  # folder kept

    # the same run again, and a new run with nothing new: no writes, no events
    items, _ = tags.load_for_retag(ids)
    derived = new.derive_many([i.document for i in items], [i.explicit for i in items])
    assert tags.apply_retag(items, derived, run_id="run1", reason="again").unchanged == 3
    assert tags.apply_retag(items, derived, run_id="run2", reason="again").unchanged == 3
    assert len(_retag_events(store)) == 2


def test_retag_limited_to_one_tag_name(store: DocumentStore) -> None:
    old = _tagger()
    doc, _ = _ingest(store, old, "Storm and wind; the election was delayed.", "a.txt")
    new = _tagger({"storm": {"match": ["storm"]}, "elections": {"match": ["election"]}})
    tags = TagStore(store)
    items, _ = tags.load_for_retag([doc])
    derived = new.derive_many([i.document for i in items], [i.explicit for i in items])
    outcome = tags.apply_retag(items, derived, run_id="r", reason="storm rule", only_tag="storm")
    assert outcome.changed == [doc]
    [event] = _retag_events(store)
    assert [t["name"] for t in event["data"]["added"]] == ["storm"]  # "elections" left for another run
    with store.session() as s:
        names = set(s.scalars(select(TagRow.name).where(TagRow.document_id == doc)))
    assert names == {"storm"}


def _cli_env(database_url: str, tmp_path: Path, taxonomy: Path) -> dict[str, str]:
    """What ``seedworker tags explain`` needs: the database, a data folder and the taxonomy."""
    return {
        "SEEDWORKER_DATABASE_URL": database_url,
        "SEEDWORKER_DATA_DIR": str(tmp_path / "data"),
        "SEEDWORKER_TAXONOMY_PATH": str(taxonomy),
    }


def test_explain_says_why_each_tag_was_given(store: DocumentStore, database_url: str, tmp_path: Path) -> None:
    tagger = _tagger()
    _labelled(store, tagger)
    tags = TagStore(store)
    tags.train(min_docs=10)
    tagger.auto = tags.load_model()
    taxonomy = tmp_path / "taxonomy.toml"
    taxonomy.write_text('[tags.coast]\nmatch = ["coast"]\nalgorithm = "any"\n')
    ruled = Tagger(
        taxonomy=Taxonomy.from_mapping({"tags": {"coast": {"match": ["coast"]}}}), nlp=None, auto_threshold=0.3
    )
    ruled.auto = tagger.auto
    text = make_corpus(1, seed=5)[0].text + "\n\nRain hit the coast."
    doc_id, _ = _ingest(store, ruled, text, "x.txt")
    filed_id, _ = _ingest(store, tagger, "Filed under a folder.", "y.txt", folders=["archive"])

    env = _cli_env(database_url, tmp_path, taxonomy)
    result = CliRunner().invoke(main, ["tags", "explain", doc_id, "--json"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    why = {(t["kind"], t["source"]): t["why"] for t in out["tags"]}
    rule = why[("topic", "rule:coast")]
    assert rule["rule"] == "coast" and rule["algorithm"] == "any" and "'coast'" in rule["text"]
    [auto] = [w for (kind, source), w in why.items() if source.startswith("auto:")]
    assert auto["model"] == "auto" and auto["version"] == 1 and 0.3 <= auto["score"] <= 1
    assert auto["model_micro_f1"] is not None

    result = CliRunner().invoke(main, ["tags", "explain", filed_id], env=env)
    assert result.exit_code == 0, result.output
    assert "folder" in result.output and "archive" in result.output  # the table (width-wrapped)
    result = CliRunner().invoke(main, ["tags", "explain", filed_id, "--json"], env=env)
    [folder] = json.loads(result.output)["tags"]
    assert folder["why"]["text"] == "the file was in the inbox folder 'archive'"
    assert CliRunner().invoke(main, ["tags", "explain", "doc_nope"], env=env).exit_code == 1


def test_explain_counts_each_term_and_lists_every_term(store: DocumentStore, database_url: str, tmp_path: Path) -> None:
    """Issue 17 §7: ``matched 'allies' (5x)`` when "allies" occurs once (5 was the count over
    all terms), and ``--json`` stopped at 10 terms."""
    terms = [f"term{i}" for i in range(12)] + ["allies", "sanctions"]
    spec = {"match": terms, "min_count": 2}
    taxonomy = tmp_path / "taxonomy.toml"
    taxonomy.write_text("[tags.diplomacy]\nmatch = " + json.dumps(terms) + "\nmin_count = 2\n")
    tagger = Tagger(taxonomy=Taxonomy.from_mapping({"tags": {"diplomacy": spec}}), nlp=None)
    text = "The allies met. Sanctions, sanctions and more SANCTIONS were agreed; sanctions stay."
    doc_id, _ = _ingest(store, tagger, text, "d.txt")
    env = _cli_env(database_url, tmp_path, taxonomy)
    result = CliRunner().invoke(main, ["tags", "explain", doc_id, "--json"], env=env)
    assert result.exit_code == 0, result.output
    [tag] = json.loads(result.output)["tags"]
    assert tag["count"] == 5
    why = tag["why"]
    assert why["terms"] == terms  # every term, not the first 10
    assert why["matches"] == [{"text": "Sanctions", "count": 4}, {"text": "allies", "count": 1}]
    assert why["text"] == "rule 'diplomacy' (any) matched 'Sanctions' (4x), 'allies' (1x)"


def test_retag_keeps_provider_subjects_and_rules_never_replace_them(store: DocumentStore) -> None:
    """Issue 22: subject codes the input carried (source ``provider``) survive a retag, and a
    rule for the same code is not given beside them; they travel with scheme and code."""
    request = IngestRequest(text="The parliament voted on the budget.", filename="p.txt", idempotency_key="test:p")
    batch = process.prepare(request, "test:p", max_bytes=1 << 20)
    doc = batch.items[0].document
    carried = [{"name": "politics", "code": "medtop:11000000"}]
    batch.items[0].document = doc.model_copy(update={"metadata": {**doc.metadata, "subjects": carried}})
    batch = process.tag(batch, _tagger())
    [outcome] = process.store(batch, store, max_bytes=1 << 20).outcomes
    doc_id = outcome.document_id
    assert doc_id is not None
    with store.session() as s:
        [stored_event] = [
            json.loads(p) for p in s.scalars(select(OutboxRow.payload).where(OutboxRow.subject == doc_id))
        ]
    [subject] = [t for t in stored_event["data"]["tags"] if t["kind"] == "subject"]
    assert subject == {
        "kind": "subject",
        "name": "politics",
        "label": None,
        "country": None,
        "scheme": "http://cv.iptc.org/newscodes/mediatopic/",
        "code": "medtop:11000000",
        "source": "provider",
    }

    rules = {"politics": {"match": ["parliament"], "code": "medtop:11000000"}, "budget": {"match": ["budget"]}}
    new = _tagger(rules)
    tags = TagStore(store)
    items, _ = tags.load_for_retag([doc_id])
    assert [(t.source, t.code) for t in items[0].explicit] == [("provider", "medtop:11000000")]
    derived = new.derive_many([i.document for i in items], [i.explicit for i in items])
    tags.apply_retag(items, derived, run_id="r1", reason="new rules")
    with store.session() as s:
        rows = {
            (r.kind, r.name, r.source, r.code) for r in s.scalars(select(TagRow).where(TagRow.document_id == doc_id))
        }
    assert ("subject", "politics", "provider", "medtop:11000000") in rows
    assert ("topic", "budget", "rule:budget", None) in rows
    assert not [r for r in rows if r[2] == "rule:politics"]
    [event] = _retag_events(store)
    assert event["data"]["removed"] == []


def test_workers_use_a_new_model_from_the_next_task(store: DocumentStore) -> None:
    """A model stored by ``tags train`` is used by the very next call (issue 18 §3: documents
    ingested after train returns use it); the labelled-document count that triggers
    background training is asked at most every check interval."""
    tagger = _tagger()
    now = [100.0]
    due: list[int] = []
    settings = Settings(_env_file=None, auto_tag_check_seconds=10, auto_train_after=30)  # type: ignore[call-arg]
    tags = TagStore(store)
    models = AutoModels(tags, settings, on_training_due=lambda: due.append(1), clock=lambda: now[0])
    assert models.current() is None and not due
    _labelled(store, tagger)  # 36 labelled documents
    assert models.current() is None and not due  # within the interval: not counted yet
    now[0] += 10
    assert models.current() is None and due == [1]  # 36 >= 30 new labelled documents
    tags.train(min_docs=10)
    model = models.current()  # no time has passed: the new model all the same
    assert model is not None and model.version == 1
    now[0] += 10
    assert models.current() is model and due == [1]  # counted since v1: 0 new
    tags.train(min_docs=10)
    newer = models.current()
    assert newer is not None and newer.version == 2


def test_background_training_is_requested_once(redis_client: redis.Redis) -> None:
    sent: list[int] = []
    assert request_training(redis_client, lambda: sent.append(1))
    assert not request_training(redis_client, lambda: sent.append(1))
    assert sent == [1] and redis_client.ttl(TRAIN_PENDING_KEY) > 0


def test_retag_selects_documents_stored_since_a_date(store: DocumentStore) -> None:
    import datetime as dt

    tagger = _tagger()
    first, _ = _ingest(store, tagger, "First story.", "1.txt")
    second, _ = _ingest(store, tagger, "Second story.", "2.txt")
    tags = TagStore(store)
    now = dt.datetime.now(dt.UTC)
    assert tags.select_for_retag(since=now - dt.timedelta(days=1)) == [first, second]
    assert tags.select_for_retag(since=now + dt.timedelta(minutes=1)) == []
    assert tags.select_for_retag(limit=1) == [first]


def test_train_and_models_commands(store: DocumentStore, database_url: str, tmp_path: Path) -> None:
    _labelled(store, _tagger())
    env = {"SEEDWORKER_DATABASE_URL": database_url, "SEEDWORKER_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(main, ["tags", "train", "--json"], env=env)
    assert result.exit_code == 0, result.output
    trained = json.loads(result.output.strip().splitlines()[-1])
    assert trained["version"] == 1 and trained["trained_on"] == 36 and trained["test_docs"] == 7
    assert set(trained["labels"]) == {"culture", "economy", "health", "politics", "science", "sport"}
    table = CliRunner().invoke(main, ["tags", "train"], env=env)
    assert table.exit_code == 0 and "auto model v2" in table.output and "micro-F1" in table.output
    listed = [json.loads(line) for line in CliRunner().invoke(main, ["tags", "models"], env=env).output.splitlines()]
    assert [m["version"] for m in listed] == [2, 1]


def test_retag_command_sends_batches_to_the_queue(
    store: DocumentStore, database_url: str, tmp_path: Path, redis_client: redis.Redis, broker_url: str
) -> None:
    tagger = _tagger()
    for i in range(5):
        _ingest(store, tagger, f"Story number {i}.", f"{i}.txt")
    env = {
        "SEEDWORKER_DATABASE_URL": database_url,
        "SEEDWORKER_DATA_DIR": str(tmp_path / "data"),
        "SEEDWORKER_BROKER_URL": broker_url,
    }
    result = CliRunner().invoke(main, ["tags", "retag", "--batch-size", "2", "--no-wait", "--tag", "x"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["documents"] == 5 and summary["batches"] == 3
    messages = [json.loads(m) for m in redis_client.lrange("seedworker", 0, -1)]
    assert sorted(m["headers"]["task"] for m in messages) == ["seedworker.tags.retag"] * 3
    bodies = [json.loads(base64.b64decode(m["body"]))[1] for m in messages]
    assert sorted(len(b["document_ids"]) for b in bodies) == [1, 2, 2]
    assert {b["run_id"] for b in bodies} == {summary["run_id"]} and {b["tag"] for b in bodies} == {"x"}


def test_worker_refuses_to_start_with_an_invalid_taxonomy(tmp_path: Path, broker_url: str) -> None:
    import os
    import subprocess
    import sys

    taxonomy = tmp_path / "topics.toml"
    taxonomy.write_text(
        '[tags.bad]\nmatch = ["(unclosed"]\nalgorithm = "regex"\n\n[tags.worse]\nmatch = "x"\nalgo = 1\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env.update(
        SEEDWORKER_BROKER_URL=broker_url,
        SEEDWORKER_DATA_DIR=str(tmp_path / "data"),
        SEEDWORKER_TAXONOMY_PATH=str(taxonomy),
        SEEDWORKER_NER_MODEL="",
    )
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "worker", "--concurrency=1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2, out.stderr[-2000:]  # a configuration error: `seedworker run` stops on it
    # every problem at once, each with the file, the tag and the reason
    assert f"{taxonomy}: tag 'worse': unknown key 'algo'" in out.stderr
    assert f"{taxonomy}: tag 'bad': invalid regex '(unclosed'" in out.stderr
    assert "ready" not in out.stderr


def test_a_missing_ner_model_is_reported_before_loading_anything(tmp_path: Path) -> None:
    from worker.errors import ConfigError

    with pytest.raises(ConfigError, match="'no_such_pipeline' is not installed"):
        Tagger.check_settings(Settings(_env_file=None, ner_model="no_such_pipeline"))  # type: ignore[call-arg]
    Tagger.check_settings(Settings(_env_file=None))  # type: ignore[call-arg]  # the shipped model is installed


def test_concurrent_retags_of_the_same_documents_write_each_change_once(store: DocumentStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    old = _tagger()
    ids = [_ingest(store, old, f"Storm number {i} and wind.", f"{i}.txt")[0] for i in range(6)]
    new = _tagger({"storm": {"match": ["storm"]}})
    tags = TagStore(store)

    def run(run_id: str) -> list[str]:
        items, _ = tags.load_for_retag(ids)
        derived = new.derive_many([i.document for i in items], [i.explicit for i in items])
        return tags.apply_retag(items, derived, run_id=run_id, reason="race").changed

    with ThreadPoolExecutor(4) as pool:
        changed = [doc for result in pool.map(run, ["a", "b", "c", "d"]) for doc in result]
    assert sorted(changed) == sorted(ids)  # each document changed by exactly one of the runs
    assert len(_retag_events(store)) == len(ids)
    with store.session() as s:
        rows = list(s.execute(select(TagRow.document_id, TagRow.name)))
    assert sorted(rows) == sorted((doc, "storm") for doc in ids)  # no doubled rows


def test_an_unreadable_database_is_logged_once_per_outage_not_per_task(tmp_path: Path) -> None:
    """The model version is read before every task; while the database cannot be read the
    worker keeps the model it has and says so once, not once per document."""
    (tmp_path / "db").mkdir()  # a directory where the database file should be: unreadable
    broken = TagStore(DocumentStore(make_engine(f"sqlite:///{tmp_path / 'db'}"), event_source="urn:test"))
    settings = Settings(_env_file=None, auto_train_after=0)  # type: ignore[call-arg]
    models = AutoModels(broken, settings)
    with captured_logs() as logs:
        assert [models.current() for _ in range(5)] == [None] * 5
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "could not refresh the auto model; keeping the one loaded"
    ]
