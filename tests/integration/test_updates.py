"""Updates in the store, on SQLite and PostgreSQL: a newer version of a ninjs item, the same
version again, a late older version; a write-thru without an id linked by containment; an
unrelated same-topic story left alone; the verdicts ``explain_duplicate`` gives; newest
versions in listings; deleting a middle version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.paths import EXAMPLE
from worker.models import FileSummary, IngestRequest, PipelineBatch, StageItem
from worker.pipeline.dedup import DedupParams
from worker.pipeline.normalise import normalise
from worker.store.engine import make_engine
from worker.store.near_index import NearDuplicateIndex
from worker.store.repository import DocumentStore
from worker.store.schema import ContainmentBand, Document, OutboxRow
from worker.store.writethru_index import WriteThruIndex

ARTICLE = EXAMPLE.read_text(encoding="utf-8")
PARAGRAPHS = ARTICLE.split("\n\n")
UNRELATED_SAME_TOPIC = (
    "WASHINGTON (AP) — Senate negotiators met again on Tuesday over the spending bill, with leaders of both "
    "parties saying a deal on the budget was still possible before the deadline at the end of the week.\n\n"
    "The talks in the Capitol ran late into the evening. Aides said the sticking points were funding for "
    "border security and disaster relief, and that a short-term measure remained an option.\n\n"
    "Lawmakers from both chambers have until Friday to agree on a plan or risk a partial government "
    "shutdown affecting hundreds of thousands of federal workers across the country.\n\n"
    "The White House said the president was monitoring the negotiations closely and would sign any "
    "reasonable compromise that reached his desk before the deadline."
)


@pytest.fixture
def store(database_url: str) -> Iterator[DocumentStore]:
    params = DedupParams()
    s = DocumentStore(
        make_engine(database_url),
        event_source="urn:test",
        near=NearDuplicateIndex(params),
        writethru=WriteThruIndex(params),
    )
    s.create_schema()
    yield s
    s.engine.dispose()


def _batch(raw: bytes, key: str, filename: str) -> tuple[PipelineBatch, StageItem, bytes]:
    doc = normalise(raw, filename=filename)
    request = IngestRequest.from_bytes(raw, filename=filename, idempotency_key=key)
    item = StageItem(document=doc)
    return PipelineBatch(request=request, key=key, summary=FileSummary.of(filename, raw), items=[item]), item, raw


def _ninjs(version: str, body: str, headline: str = "Lawmakers reach budget deal", created: str = "") -> bytes:
    item: dict[str, Any] = {
        "uri": "urn:example:news:2026:budget",
        "version": version,
        "headline": headline,
        "body_text": body,
    }
    if created:
        item["versioncreated"] = created
    return json.dumps(item).encode()


def _events(store: DocumentStore) -> list[dict[str, Any]]:
    with store.session() as s:
        return [json.loads(p) for p in s.scalars(select(OutboxRow.payload).order_by(OutboxRow.seq))]


def _doc(store: DocumentStore, doc_id: str | None) -> Document:
    found = store.get_document(str(doc_id))
    assert found is not None
    return found


def test_a_newer_ninjs_version_is_an_update_and_repeats_or_older_versions_are_duplicates(
    store: DocumentStore,
) -> None:
    body = "\n\n".join(PARAGRAPHS[1:5])
    v1 = store.persist_document(*_batch(_ninjs("1", body), "k1", "budget-v1.json"))
    corrected = body.replace("Senate", "the Senate", 1) + "\n\nCorrection: an earlier version misnamed the chamber."
    v2 = store.persist_document(*_batch(_ninjs("2", corrected), "k2", "budget-v2.json"))
    assert v1.status == v2.status == "stored"
    assert v2.updates == v1.document_id and v2.short() == f"stored {v2.document_id} (updates {v1.document_id})"
    first, second = _doc(store, v1.document_id), _doc(store, v2.document_id)
    assert (first.version, second.version, second.updates) == (1, 2, first.id)
    assert second.story_id == first.story_id and (second.item_id, second.item_version) == (first.item_id, 2)
    updated = _events(store)[-1]
    assert updated["type"] == "org.seedworker.document.updated" and updated["subject"] == second.id
    data = updated["data"]
    assert (data["updates"], data["previous_version"], data["version"], data["match"]) == (
        first.id,
        1,
        2,
        "item_version",
    )
    assert data["item_id"] == "urn:example:news:2026:budget" and data["story_id"] == first.story_id

    again = store.persist_document(*_batch(_ninjs("1", body), "k3", "budget-v1-again.json"))
    assert (again.status, again.duplicate_of, again.duplicate_kind) == ("duplicate", first.id, "exact")
    assert _events(store)[-1]["data"]["reason"] == "same_version"

    # Version 4 (a headline change only: same body as version 2) skips 3; then version 3 comes
    # late and version 2 is re-sent with an edit: neither replaces the newer.
    v4 = store.persist_document(*_batch(_ninjs("4", corrected, headline="Budget deal passes"), "k4", "v4.json"))
    assert v4.status == "stored" and v4.updates == second.id and _doc(store, v4.document_id).version == 3
    late = store.persist_document(*_batch(_ninjs("3", corrected + " Late edit."), "k5", "late-v3.json"))
    assert (late.status, late.duplicate_of) == ("duplicate", v4.document_id)
    duplicate = _events(store)[-1]["data"]
    assert (duplicate["reason"], duplicate["item_version"], duplicate["kind"]) == ("older_version", 3, "exact")
    resent = store.persist_document(*_batch(_ninjs("2", corrected + " Late edit."), "k6", "v2-again.json"))
    assert (resent.status, resent.duplicate_of) == ("duplicate", second.id)
    assert _events(store)[-1]["data"]["reason"] == "same_version"
    newest = [d.id for d in store.list_documents(newest_versions=True)]
    assert newest == [v4.document_id]
    assert len(store.list_documents()) == 3


def test_versions_ordered_by_time_when_unnumbered(store: DocumentStore) -> None:
    body = "\n\n".join(PARAGRAPHS[1:4])
    early = store.persist_document(*_batch(_ninjs("", body, created="2026-11-24T10:00:00Z"), "a", "a.json"))
    later = store.persist_document(
        *_batch(_ninjs("", body + "\n\nMore to come.", created="2026-11-24T11:00:00Z"), "b", "b.json")
    )
    assert later.updates == early.document_id
    stale = store.persist_document(
        *_batch(_ninjs("", body + "\n\nAn older draft.", created="2026-11-24T09:00:00Z"), "c", "c.json")
    )
    assert (stale.status, stale.duplicate_of) == ("duplicate", later.document_id)
    assert _events(store)[-1]["data"]["reason"] == "older_version"


def test_a_write_thru_without_an_id_is_linked_and_a_same_topic_story_is_not(store: DocumentStore) -> None:
    first_take = "\n\n".join(PARAGRAPHS[:5])
    first = store.persist_document(*_batch(first_take.encode(), "t1", "first-take.txt"))
    other = store.persist_document(*_batch(UNRELATED_SAME_TOPIC.encode(), "t2", "other.txt"))
    whole = ARTICLE.encode()
    verdict = store.explain_duplicate(normalise(whole, filename="whole.txt"))
    assert verdict["verdict"] == "update" and verdict["updates"] == first.document_id
    assert verdict["containment"] >= 0.8 and "write-thru" in verdict["why"]
    assert verdict["containment_candidates"][0]["document_id"] == first.document_id
    later = store.persist_document(*_batch(whole, "t3", "whole.txt"))
    assert (later.status, later.updates) == ("stored", first.document_id)
    assert other.updates is None and other.status == "stored"
    event = _events(store)[-1]
    assert event["type"] == "org.seedworker.document.updated"
    assert event["data"]["match"] == "containment" and event["data"]["containment"] >= 0.8
    assert event["data"]["story_id"] == _doc(store, first.document_id).story_id
    assert _doc(store, other.document_id).story_id != _doc(store, first.document_id).story_id
    with store.session() as s:
        assert s.scalar(select(ContainmentBand.document_id).where(ContainmentBand.document_id == later.document_id))

    # A shorter text arriving after the longer one it is part of is not an update of it.
    excerpt = "\n\n".join(PARAGRAPHS[6:10])
    late = store.persist_document(*_batch(excerpt.encode(), "t4", "excerpt.txt"))
    assert late.status == "stored" and late.updates is None
    verdict = store.explain_duplicate(normalise(UNRELATED_SAME_TOPIC.encode() + b" ", filename="o.txt"))
    assert verdict["verdict"] == "exact"


def test_deleting_a_middle_version_keeps_the_chain(store: DocumentStore) -> None:
    body = "\n\n".join(PARAGRAPHS[1:4])
    ids = [
        store.persist_document(*_batch(_ninjs(str(v), body + f"\n\nUpdate number {v}."), f"v{v}", f"v{v}.json"))
        for v in (1, 2, 3)
    ]
    store.delete([str(ids[1].document_id)])
    assert _doc(store, ids[2].document_id).updates == ids[0].document_id
    assert [d.id for d in store.list_documents(newest_versions=True)] == [ids[2].document_id]


def test_without_the_write_thru_index_a_write_thru_is_a_new_story(database_url: str) -> None:
    store = DocumentStore(make_engine(database_url), event_source="urn:test", near=NearDuplicateIndex())
    store.create_schema()
    try:
        first = store.persist_document(*_batch("\n\n".join(PARAGRAPHS[:5]).encode(), "n1", "first.txt"))
        later = store.persist_document(*_batch(ARTICLE.encode(), "n2", "whole.txt"))
        assert later.status == "stored" and later.updates is None and later.document_id != first.document_id
    finally:
        store.engine.dispose()


def test_cli_explains_an_update_and_shows_the_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from worker.cli import main
    from worker.services import ensure_schema
    from worker.settings import load_settings

    monkeypatch.setenv("SEEDWORKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SEEDWORKER_INBOX", str(tmp_path / "inbox"))
    settings = load_settings(_env_file=None)
    ensure_schema(settings)
    params = DedupParams()
    store = DocumentStore(
        make_engine(settings.effective_database_url),
        event_source="urn:test",
        near=NearDuplicateIndex(params),
        writethru=WriteThruIndex(params),
    )
    first = store.persist_document(*_batch("\n\n".join(PARAGRAPHS[:5]).encode(), "c1", "first.txt"))
    (tmp_path / "whole.txt").write_text(ARTICLE)
    runner = CliRunner()
    out = runner.invoke(main, ["dedup", "check", str(tmp_path / "whole.txt"), "--json"])
    assert out.exit_code == 0, out.output
    [verdict] = json.loads(out.output)["documents"]
    assert (verdict["verdict"], verdict["updates"], verdict["how"], verdict["version"]) == (
        "update",
        first.document_id,
        "containment",
        2,
    )
    text = runner.invoke(main, ["dedup", "check", str(tmp_path / "whole.txt")])
    assert "whole.txt: UPDATE" in text.output and f"earlier version? {first.document_id}" in text.output
    monkeypatch.setenv("SEEDWORKER_DEDUP_UPDATES", "false")
    off = runner.invoke(main, ["dedup", "check", str(tmp_path / "whole.txt"), "--json"])
    assert json.loads(off.output)["documents"][0]["verdict"] == "new"

    later = store.persist_document(*_batch(ARTICLE.encode(), "c2", "whole.txt"))
    shown = json.loads(runner.invoke(main, ["docs", "show", str(later.document_id)]).output)
    assert shown["story"]["version"] == 2 and shown["story"]["updates"] == first.document_id
    assert shown["story"]["latest"] is True and shown["story"]["id"] == _doc(store, first.document_id).story_id
    earlier = json.loads(runner.invoke(main, ["docs", "show", str(first.document_id)]).output)["story"]
    assert (earlier["version"], earlier["updated_by"], earlier["latest"]) == (1, [later.document_id], False)
    listed = [json.loads(line)["id"] for line in runner.invoke(main, ["docs", "list", "--json"]).output.splitlines()]
    assert listed == [later.document_id]
    every = runner.invoke(main, ["docs", "list", "--json", "--all-versions"]).output.splitlines()
    assert len(every) == 2
    store.engine.dispose()
