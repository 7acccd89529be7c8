"""``seedworker dedup``: what a file would duplicate or update (without storing it), and index
rebuilds.  The verdict is the store's own (``DocumentStore.explain_duplicate``): the CLI only prints it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from worker.cli.context import CliContext

if TYPE_CHECKING:
    from worker.store.near_index import NearDuplicateIndex
    from worker.store.repository import DocumentStore


@click.group()
def dedup() -> None:
    """Exact and near-duplicate detection (MinHash + LSH index in the database)."""


@dedup.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--show", default=5, show_default=True, help="Candidates to list per document.")
@click.pass_obj
def check(obj: CliContext, file: Path, as_json: bool, show: int) -> None:
    """Normalise FILE as a worker would and tell what it would duplicate, and why. Stores nothing."""
    from worker import process
    from worker.models import IngestRequest

    settings = obj.settings
    store = obj.store(near=True)  # with the write-thru index unless DEDUP_UPDATES is off
    request = IngestRequest.from_bytes(file.read_bytes(), filename=file.name, source="dedup-check")
    batch = process.prepare(request, "check", max_bytes=settings.max_file_bytes)
    reports = [
        {"record": item.record, **store.explain_duplicate(item.document, show=show, near_detection=settings.dedup_near)}
        for item in batch.items
    ]
    reports += [{"record": f.record, "verdict": "failed", "reason": f.reason, "why": f.message} for f in batch.failures]
    stale = _unindexed(store)
    if as_json:
        click.echo(json.dumps({"file": str(file), "documents": reports, "unindexed_documents": stale}, indent=2))
        return
    if stale:
        click.echo(
            f"warning: {stale} stored document(s) have no signature for the current parameters "
            "and cannot be found as near duplicates: run `seedworker dedup rebuild`",
            err=True,
        )
    for r in reports:
        where = f"{file.name}" + (f" line {r['record']}" if r.get("record") else "")
        click.echo(f"{where}: {r['verdict'].upper()}")
        click.echo(f"  {r['why']}")
        for c in r.get("candidates", []):
            click.echo(
                f"  candidate {c['document_id']}  estimate {c['similarity']:.3f}  "
                f"shared bands {c['shared_bands']}/{r['bands']}  story {c['story_id']}"
            )
        for c in r.get("containment_candidates", []):
            exact = f"  contained {c['containment']:.3f}" if c["containment"] is not None else ""
            click.echo(
                f"  earlier version? {c['document_id']}  estimated containment {c['estimated_containment']:.3f}"
                f"{exact}  story {c['story_id']}"
            )


def _near(store: DocumentStore) -> NearDuplicateIndex:
    if store.near is None:  # pragma: no cover - CliContext.store(near=True) always builds it
        raise RuntimeError("the store has no near-duplicate index")
    return store.near


def _unindexed(store: Any) -> int:
    """Stored documents without a signature of the configured length (made before near
    detection, with it off, or with another DEDUP_NUM_PERM)."""
    from sqlalchemy import func, or_, select

    from worker.store.schema import Document

    size = 4 * store.near.params.num_perm
    with store.session() as s:
        query = select(func.count()).where(or_(Document.minhash.is_(None), func.length(Document.minhash) != size))
        return int(s.scalar(query) or 0)


@dedup.command("rebuild")
@click.option("--batch-size", default=500, show_default=True, help="Documents per transaction.")
@click.pass_obj
def rebuild(obj: CliContext, batch_size: int) -> None:
    """Recompute every stored document's signature and LSH bands (after changing the parameters).

    Idempotent and safe to rerun; each batch is its own transaction.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from sqlalchemy import func, select

    from worker.store.schema import Document

    store = obj.store(near=True)
    near = _near(store)
    with store.session() as s:
        total = int(s.scalar(select(func.count()).select_from(Document)) or 0)
    columns = (TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        job = progress.add_task("rebuild", total=total)
        done = near.rebuild(store.session, batch_size=batch_size, progress=lambda n: progress.advance(job, n))
    if store.writethru is not None:  # from the signatures just written
        store.writethru.rebuild(store.session, batch_size=batch_size)
    bands, rows = near.params.bands
    click.echo(
        f"indexed {done} documents: {bands} bands of {rows} rows, {near.params.num_perm} permutations, "
        f"{near.params.shingle_size}-word shingles"
    )


COMMANDS = (dedup,)
