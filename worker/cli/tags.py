"""``seedworker tags``: train the ``auto`` model, explain a document's tags, retag stored documents."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid
from typing import Any

import click

from worker.cli.context import CliContext
from worker.models import Tag
from worker.settings import Settings


def _settings(obj: CliContext) -> Settings:
    """The settings, with logs on the process's stderr: stdout carries only the command's
    output (``--json`` pipes into jq)."""
    from worker.logs import configure_logging

    settings = obj.settings
    configure_logging(settings, stream=sys.__stderr__ or sys.stderr)
    return settings


def _tag_store(obj: CliContext) -> Any:
    from worker.store.tagging import TagStore

    return TagStore(obj.store())


@click.group()
def tags() -> None:
    """Tags: the learned auto model, explanations, retagging."""


# -- train ---------------------------------------------------------------------------------------
@tags.command("train")
@click.option("--json", "as_json", is_flag=True, help="Print the model and its metrics as JSON.")
@click.pass_obj
def train(obj: CliContext, as_json: bool) -> None:
    """Train the auto topic model now, on every stored document with folder or producer tags.

    Metrics come from a held-out 20 % (a model trained on the other 80 %); the stored
    model is then trained on all of them.  Workers use it from their next task.
    """
    from worker.errors import NotEnoughTrainingData

    settings = _settings(obj)
    store = _tag_store(obj)
    try:
        stored, report = store.train(min_docs=settings.auto_train_min_docs, threshold=settings.auto_tag_threshold)
    except NotEnoughTrainingData as exc:
        raise click.ClickException(f"not trained: {exc}") from exc
    if as_json:
        click.echo(json.dumps({"version": stored.version, "trained_on": stored.trained_on, **report.as_json()}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("label", "precision", "recall", "F1", "support", title=f"auto model v{stored.version}")
    for label, m in sorted(report.labels.items()):
        if m.support or m.precision:  # a label absent from the held-out part has no figures
            table.add_row(label, f"{m.precision:.2f}", f"{m.recall:.2f}", f"{m.f1:.2f}", str(m.support))
        else:
            table.add_row(label, "-", "-", "-", "0")
    console = Console()
    console.print(table)
    console.print(
        f"trained on {stored.trained_on} documents; held-out {report.test_docs}: micro-F1 {report.micro_f1:.2f}, "
        f"top-1 accuracy {report.top1_accuracy:.2f}"
        + (f"; labels with too few documents: {', '.join(report.dropped_labels)}" if report.dropped_labels else "")
    )


@tags.command("models")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the only form; accepted for scripts).")
@click.pass_obj
def models(obj: CliContext, as_json: bool) -> None:
    """Stored auto models, newest first, one JSON object per line."""
    _settings(obj)
    for m in _tag_store(obj).models():
        click.echo(
            json.dumps(
                {
                    "version": m.version,
                    "created_at": m.created_at.isoformat(),
                    "labels": m.labels,
                    "trained_on": m.trained_on,
                    "micro_f1": m.metrics.get("micro_f1"),
                }
            )
        )


# -- explain ---------------------------------------------------------------------------------------
def why(
    tag: Tag,
    *,
    rules: dict[str, Any],
    models: dict[int, Any],
    doc_meta: dict[str, Any],
    document: tuple[str | None, str] = (None, ""),
) -> dict[str, Any]:
    """Why ``tag`` was given, as data: the algorithm and the evidence (``document``: its
    title and text, which a rule's evidence is counted in)."""
    out: dict[str, Any] = {}
    if tag.source.startswith("rule:"):
        from worker.pipeline.taxonomy import explain_rule_tag

        out.update(explain_rule_tag(tag, rules.get(tag.name), *document))
    elif tag.source.startswith("auto"):
        version = int(tag.source.split(":v", 1)[1]) if ":v" in tag.source else None
        out.update(model="auto", version=version, score=tag.score)
        info = models.get(version) if version is not None else None
        if info is not None:
            out.update(model_created_at=info.created_at.isoformat(), model_micro_f1=info.metrics.get("micro_f1"))
        out["text"] = f"auto model v{version} gave {tag.name!r} with confidence {tag.score}"
    elif tag.kind == "folder":
        out.update(folder=tag.name, path=doc_meta.get("path"))
        out["text"] = f"the file was in the inbox folder {tag.name!r}" + (
            f" ({doc_meta['path']})" if doc_meta.get("path") else ""
        )
    elif tag.kind == "producer":
        out["text"] = "given by the producer (ingest request tags or the document's front matter)"
    elif tag.kind == "entity":
        model = tag.source.split(":", 1)[1] if ":" in tag.source else tag.source
        out.update(ner_model=model, ner_label=tag.label, mentions=tag.count, first=tag.matched, country=tag.country)
        out["text"] = f"{model} found {tag.label} {tag.matched!r} ({tag.count} mention(s))" + (
            f", gazetteer country {tag.country}" if tag.country else ""
        )
    elif tag.kind == "keyword":
        out.update(algorithm=tag.source, score=tag.score)
        out["text"] = f"{tag.source} keyword, score {tag.score}, {tag.count} occurrence(s)"
    else:
        out["text"] = f"from {tag.source}"
    return out


@tags.command("explain")
@click.argument("doc_id")
@click.option("--json", "as_json", is_flag=True, help="The tags and the evidence as one JSON object.")
@click.pass_obj
def explain(obj: CliContext, doc_id: str, as_json: bool) -> None:
    """Every tag of a document and why it was given."""
    from worker.cli.docs import resolve_id
    from worker.pipeline.taxonomy import load_taxonomy

    settings = _settings(obj)
    store = _tag_store(obj)
    found = store.explain(resolve_id(store.documents, doc_id))
    if found is None:
        raise click.ClickException(f"no document {doc_id}")
    doc, doc_tags = found
    rules = {r.name: r for r in load_taxonomy(settings.taxonomy_path).rules}
    versions = {int(t.source.split(":v", 1)[1]) for t in doc_tags if t.source.startswith("auto:v")}
    models = {v: store.model_info(v) for v in versions}
    rows = [
        {
            **t.model_dump(mode="json"),
            "why": why(t, rules=rules, models=models, doc_meta=dict(doc.meta or {}), document=(doc.title, doc.text)),
        }
        for t in doc_tags
    ]
    if as_json:
        out = {"id": doc.id, "filename": doc.filename, "title": doc.title, "language": doc.language, "tags": rows}
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("kind", "name", "label", "source", "score", "why", title=f"{doc.id}  {doc.filename}")
    for r in rows:
        score = "" if r["score"] is None else f"{r['score']:.2f}"
        table.add_row(r["kind"], r["name"], r["label"] or "", r["source"], score, r["why"]["text"])
    console = Console()
    console.print(table)
    console.print(f"language: {doc.language}")


# -- retag -----------------------------------------------------------------------------------------
def _parse_since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date or date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@tags.command("retag")
@click.option("--since", help="Only documents stored at or after this ISO date/date-time (UTC).")
@click.option("--tag", "only_tag", help="Only add/remove tags with this name (after a change to its rule).")
@click.option("--reason", default="retag", show_default=True, help="Stored in each document.retagged event.")
@click.option("--batch-size", type=int, help="Documents per task (default SEEDWORKER_NER_BATCH_SIZE).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Show progress until every batch is done.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait.")
@click.pass_obj
def retag(
    obj: CliContext,
    since: str | None,
    only_tag: str | None,
    reason: str,
    batch_size: int | None,
    wait: bool,
    timeout: float,
) -> None:
    """Re-run tagging on stored documents (after the taxonomy or the model changed), as
    Celery tasks on the workers; a document.retagged event for each document whose tags changed."""
    from worker.app import create_app
    from worker.broker import connect
    from worker.store.tagging import RETAG_TASK

    settings = _settings(obj)
    ids = _tag_store(obj).select_for_retag(since=_parse_since(since))
    size = batch_size or settings.ner_batch_size
    run_id = uuid.uuid4().hex[:16]
    progress_key = f"seedworker:retag:{run_id}"
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    broker_url = obj.broker_url()
    app = create_app(settings, broker_url)
    for n, chunk in enumerate(batches):
        app.send_task(
            RETAG_TASK,
            kwargs={
                "run_id": run_id,
                "document_ids": chunk,
                "reason": reason,
                "tag": only_tag,
                "progress": progress_key if wait else None,
                "batch": n,
            },
            argsrepr=f"retag {run_id}#{n} ({len(chunk)} documents)",
        )
    summary: dict[str, Any] = {"run_id": run_id, "documents": len(ids), "batches": len(batches)}
    if not wait or not batches:
        click.echo(json.dumps(summary))
        return
    totals = _wait_for_batches(connect(broker_url), progress_key, len(batches), len(ids), timeout)
    summary.update(totals)
    click.echo(json.dumps(summary))
    if totals["batches_done"] < len(batches):
        sys.exit(1)


def _wait_for_batches(client: Any, key: str, batches: int, documents: int, timeout: float) -> dict[str, int]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    seen: set[int] = set()
    totals = {"changed": 0, "rewritten": 0, "unchanged": 0, "missing": 0}
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("retag"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[changed]} changed"),
        TimeRemainingColumn(),
    )
    from rich.console import Console

    with Progress(*columns, console=Console(stderr=True)) as progress:
        job = progress.add_task("retag", total=documents, changed=0)
        while len(seen) < batches and time.monotonic() < deadline:
            item = client.brpop(key, timeout=1)
            if item is None:
                continue
            message = json.loads(item[1])
            if message["batch"] in seen:
                continue  # a redelivered batch reporting twice
            seen.add(message["batch"])
            for name in totals:
                totals[name] += int(message.get(name, 0))
            progress.update(job, advance=message["documents"], changed=totals["changed"])
    client.delete(key)
    return {**totals, "batches_done": len(seen)}


COMMANDS = (tags,)
