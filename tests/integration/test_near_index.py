"""The near-duplicate index in the store, on SQLite and PostgreSQL: near copies linked or
dropped with their similarity, story ids, the index shared by store instances, rebuild, and
concurrent writers racing near copies."""

from __future__ import annotations

import json
import multiprocessing as mp
import random
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from tests.support.corpus import near_copy, typo_copy
from tests.support.paths import EXAMPLE
from worker.models import FileSummary, IngestRequest, PipelineBatch, StageItem
from worker.pipeline.dedup import DedupParams, jaccard, shingles
from worker.pipeline.normalise import normalise
from worker.store.engine import make_engine
from worker.store.near_index import NearDuplicateIndex
from worker.store.repository import DocumentStore
from worker.store.schema import Document, Duplicate, MinhashBand, OutboxRow

ARTICLE = EXAMPLE.read_text(encoding="utf-8")


def _store(url: str, policy: str = "link", near: bool = True) -> DocumentStore:
    store = DocumentStore(
        make_engine(url),
        event_source="urn:test",
        duplicate_policy=policy,
        near=NearDuplicateIndex(DedupParams()) if near else None,
    )
    store.create_schema()
    return store


def _batch(text: str, key: str, filename: str = "a.txt") -> tuple[PipelineBatch, StageItem, bytes]:
    raw = text.encode()
    doc = normalise(raw, filename=filename)
    request = IngestRequest(text=text, filename=filename, idempotency_key=key)
    item = StageItem(document=doc)
    return PipelineBatch(request=request, key=key, summary=FileSummary.of(filename, raw), items=[item]), item, raw


def unrelated(seed: int) -> str:
    rng = random.Random(seed)
    words = ["grain", "harvest", "rail", "tariff", "river", "council", "vote", "budget", "storm", "school"]
    return "\n\n".join(" ".join(rng.choice(words) + str(rng.randrange(999)) for _ in range(60)) for _ in range(4))


def _count(store: DocumentStore, model: type) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _events(store: DocumentStore) -> list[dict[str, object]]:
    with store.session() as s:
        return [json.loads(p) for p in s.scalars(select(OutboxRow.payload).order_by(OutboxRow.seq))]


def test_near_copy_is_linked_with_similarity_and_story(database_url: str) -> None:
    copy = near_copy(ARTICLE)
    exact = jaccard(shingles(normalise(ARTICLE.encode()).text), shingles(normalise(copy.encode()).text))
    assert 0.8 <= exact < 1.0

    store = _store(database_url)
    first = store.persist_document(*_batch(ARTICLE, "k1"))
    dup = store.persist_document(*_batch(copy, "k2", "rewrite.txt"))

    assert first.status == "stored"
    assert dup.status == "duplicate" and dup.duplicate_kind == "near"
    assert dup.duplicate_of == first.document_id
    # 0.85 is within the estimate's error margin of 0.8, so the exact Jaccard decided (and is reported).
    assert abs(exact - 0.8) < DedupParams().margin
    assert dup.similarity == pytest.approx(exact)
    stored_event, dup_event = _events(store)
    story = stored_event["data"]["story_id"]  # type: ignore[index]
    assert story and str(story).startswith("story_")
    assert dup_event["data"]["story_id"] == story  # type: ignore[index]
    assert dup_event["data"]["kind"] == "near"  # type: ignore[index]
    with store.session() as s:
        [link] = s.scalars(select(Duplicate)).all()
        assert (link.kind, link.story_id, link.document_id) == ("near", story, first.document_id)
        assert s.get(Document, first.document_id).story_id == story  # type: ignore[union-attr]
    assert _count(store, Document) == 1
    assert _count(store, MinhashBand) == DedupParams().bands[0]


def test_exact_copy_takes_the_canonical_story(database_url: str) -> None:
    store = _store(database_url)
    store.persist_document(*_batch(ARTICLE, "k1"))
    dup = store.persist_document(*_batch(ARTICLE, "k2"))
    assert dup.duplicate_kind == "exact" and dup.similarity == 1.0
    stored_event, dup_event = _events(store)
    assert dup_event["data"]["story_id"] == stored_event["data"]["story_id"]  # type: ignore[index]


def test_drop_policy_applies_to_near_copies(database_url: str) -> None:
    store = _store(database_url, policy="drop")
    first = store.persist_document(*_batch(ARTICLE, "k1"))
    dup = store.persist_document(*_batch(near_copy(ARTICLE), "k2"))
    assert dup.status == "duplicate" and dup.duplicate_kind == "near" and dup.document_id is None
    assert dup.duplicate_of == first.document_id
    assert _count(store, Duplicate) == 0 and _count(store, Document) == 1
    assert len(_events(store)) == 2


def test_unrelated_documents_start_their_own_stories(database_url: str) -> None:
    store = _store(database_url)
    outcomes = [store.persist_document(*_batch(unrelated(i), f"k{i}")) for i in range(3)]
    assert [o.status for o in outcomes] == ["stored"] * 3
    stories = {e["data"]["story_id"] for e in _events(store)}  # type: ignore[index]
    assert len(stories) == 3


def test_near_detection_off_stores_the_rewrite(database_url: str) -> None:
    store = _store(database_url, near=False)
    store.persist_document(*_batch(ARTICLE, "k1"))
    assert store.persist_document(*_batch(near_copy(ARTICLE), "k2")).status == "stored"
    assert _count(store, MinhashBand) == 0


def test_index_is_shared_by_a_new_store_instance(database_url: str) -> None:
    first_store = _store(database_url)
    first = first_store.persist_document(*_batch(ARTICLE, "k1"))
    first_store.engine.dispose()

    second_store = _store(database_url)
    match = second_store.find_duplicate(normalise(near_copy(ARTICLE).encode()).canonical_hash, near_copy(ARTICLE))
    assert match is not None and match.kind == "near" and match.document_id == first.document_id
    dup = second_store.persist_document(*_batch(near_copy(ARTICLE), "k2"))
    assert dup.duplicate_of == first.document_id


def test_rebuild_restores_a_lost_index_and_is_idempotent(database_url: str) -> None:
    store = _store(database_url, near=False)  # documents stored before near detection existed
    first = store.persist_document(*_batch(ARTICLE, "k1"))
    for i in range(4):
        store.persist_document(*_batch(unrelated(i), f"u{i}"))
    with store.session() as s:
        s.execute(update(Document).values(story_id=None))
    near = NearDuplicateIndex()
    seen: list[int] = []
    assert near.rebuild(store.session, batch_size=2, progress=seen.append) == 5
    assert seen == [2, 2, 1]
    rows = _count(store, MinhashBand)
    assert rows == 5 * DedupParams().bands[0]
    assert near.rebuild(store.session, batch_size=3) == 5
    assert _count(store, MinhashBand) == rows
    with store.session() as s:
        assert s.scalar(select(func.count()).where(Document.story_id.is_(None))) == 0
        s.execute(delete(MinhashBand))  # lose the index entirely...
    near.rebuild(store.session)
    store.near = near
    dup = store.persist_document(*_batch(near_copy(ARTICLE), "k2"))  # ...and rebuild finds it again
    assert dup.duplicate_of == first.document_id and dup.duplicate_kind == "near"


def _race(url: str, text: str, key: str, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = DocumentStore(make_engine(url), event_source="urn:test", near=NearDuplicateIndex())
    batch = _batch(text, key, f"{key}.txt")
    barrier.wait()
    outcome = store.persist_document(*batch)
    out.put((key, outcome.status, outcome.duplicate_of, outcome.document_id))


def test_concurrent_near_copies_end_with_one_canonical(database_url: str) -> None:
    """Two exact copies and three rewrites stored at the same moment by five processes."""
    _store(database_url)
    texts = [ARTICLE, ARTICLE, typo_copy(ARTICLE, 1), typo_copy(ARTICLE, 2), typo_copy(ARTICLE, 3)]
    # Near-duplication is not transitive: the race is only decidable when every rewrite is
    # near every other one, whichever of them commits first.
    sets = [shingles(normalise(t.encode()).text) for t in texts]
    assert min(jaccard(a, b) for a in sets for b in sets) >= 0.85
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(texts)), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(database_url, t, f"k{i}", barrier, out)) for i, t in enumerate(texts)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    results = [out.get(timeout=10) for _ in procs]
    stored = [r for r in results if r[1] == "stored"]
    assert len(stored) == 1, results
    canonical = stored[0][3]
    assert all(r[2] == canonical for r in results if r[1] == "duplicate"), results
    store = _store(database_url)
    assert _count(store, Document) == 1 and _count(store, Duplicate) == 4
    events = _events(store)
    assert len(events) == 5
    assert len({e["data"]["story_id"] for e in events}) == 1  # type: ignore[index]


def test_cli_check_explains_and_rebuild_reindexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from worker.cli import main
    from worker.settings import load_settings
    from worker.store.schema_check import ensure_schema

    monkeypatch.setenv("SEEDWORKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SEEDWORKER_INBOX", str(tmp_path / "inbox"))
    settings = load_settings(_env_file=None)
    ensure_schema(settings)
    engine = make_engine(settings.effective_database_url)
    store = DocumentStore(engine, event_source="urn:test", near=NearDuplicateIndex())
    first = store.persist_document(*_batch(ARTICLE, "k1"))
    (tmp_path / "rewrite.txt").write_text(near_copy(ARTICLE))
    (tmp_path / "other.txt").write_text(unrelated(1))
    runner = CliRunner()

    out = runner.invoke(main, ["dedup", "check", str(tmp_path / "rewrite.txt"), "--json"])
    assert out.exit_code == 0, out.output
    [verdict] = json.loads(out.output)["documents"]
    assert verdict["verdict"] == "near" and verdict["duplicate_of"] == first.document_id
    assert verdict["story_id"] == f"story_{str(first.document_id).removeprefix('doc_')}"
    assert 0.8 <= verdict["similarity"] < 1.0 and verdict["shared_bands"] >= 1
    assert "exact Jaccard decided" in verdict["why"]
    assert json.loads(out.output)["unindexed_documents"] == 0

    text_out = runner.invoke(main, ["dedup", "check", str(tmp_path / "other.txt")])
    assert text_out.exit_code == 0 and "NEW" in text_out.output

    with store.session() as s:
        s.execute(delete(MinhashBand))
        s.execute(update(Document).values(minhash=None))
    stale = runner.invoke(main, ["dedup", "check", str(tmp_path / "rewrite.txt")])
    assert "NEW" in stale.output and "1 stored document(s) have no signature" in stale.output
    rebuilt = runner.invoke(main, ["dedup", "rebuild", "--batch-size", "10"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "indexed 1 documents" in rebuilt.output
    assert _count(store, MinhashBand) == DedupParams().bands[0]
    assert _count(store, Document) == 1  # check stored nothing
    store.engine.dispose()
