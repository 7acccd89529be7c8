"""The ``seedworker`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from worker.errors import ConfigError, SeedworkerError
from worker.settings import Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SeedworkerError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """seedworker: watched folder -> Celery on Redis -> normalise, tag, deduplicate, store -> events.

    Every setting is an environment variable SEEDWORKER_<NAME> (or a line in .env);
    `seedworker config` lists them with their effective values.
    """


# -- processes -------------------------------------------------------------------------------
@main.command()
@click.option("--flower/--no-flower", default=False, help="Also start Flower.")
@click.option("--grace", default=30.0, show_default=True, help="Seconds to finish work on Ctrl-C before killing.")
def run(flower: bool, grace: float) -> None:
    """Start everything: embedded Redis (unless SEEDWORKER_BROKER_URL), worker, watcher, publisher."""
    from worker.logs import configure_logging
    from worker.services import stop_on_signals
    from worker.supervisor import Supervisor

    settings = _settings()
    configure_logging(settings)
    sup = Supervisor(settings, with_flower=flower, grace=grace)
    with stop_on_signals(sup.stop_event.set):
        sup.start()
        _banner(settings, sup.broker_url, flower)
        sup.watch_children()
    sup.stop()


def _banner(settings: Settings, broker_url: str, flower: bool) -> None:
    from worker.settings import mask_url

    inbox = settings.inbox.resolve()
    lines = [
        "seedworker is running.",
        f"  drop files into   {inbox}",
        f"  processed go to   {Path(str(settings.archive_dir)).resolve()}"
        + ("" if settings.after_success == "archive" else " (deleted: AFTER_SUCCESS=delete)"),
        f"  failed go to      {Path(str(settings.failed_dir)).resolve()} (with <name>.error.json)",
        f"  documents in      {mask_url(settings.effective_database_url)}   (seedworker docs list)",
        f"  events on stream  {settings.event_stream} at {mask_url(broker_url)}   (seedworker events tail)",
        f"  Flower            http://{settings.flower_address}:{settings.flower_port}{settings.flower_url_prefix}"
        + ("" if flower else "   (start it with `seedworker flower` or `make flower`)"),
        "  Ctrl-C stops everything cleanly.",
    ]
    click.echo("\n".join(lines), err=True)


@main.command()
@click.option("--node-name", help="Celery node name (default seedworker@HOST).")
@click.option("--concurrency", type=int, help="Processes (default SEEDWORKER_CONCURRENCY or CPU count).")
@click.option("--queues", help="Comma-separated queues (default SEEDWORKER_QUEUE and SEEDWORKER_TAG_QUEUE).")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True)
def worker(node_name: str | None, concurrency: int | None, queues: str | None, pool: str) -> None:
    """Run a Celery worker."""
    from worker.services import run_worker

    run_worker(
        _settings(),
        node_name=node_name,
        concurrency=concurrency,
        queues=queues.split(",") if queues else None,
        pool=pool,
    )


@main.command()
@click.option("--watcher-id", help="Stable id of this watcher (default HOST-hash(inbox)).")
def watch(watcher_id: str | None) -> None:
    """Watch the inbox and send its files to the queue."""
    from worker.services import run_watcher

    run_watcher(_settings(), watcher_id=watcher_id)


@main.command()
def publish() -> None:
    """Move events from the outbox to the Redis Stream."""
    from worker.services import run_publisher

    run_publisher(_settings())


@main.command()
def flower() -> None:
    """Start Flower against the configured (or embedded) broker."""
    from worker.flower import run_flower

    sys.exit(run_flower(_settings()))


@main.group()
def broker() -> None:
    """The embedded Redis."""


@broker.command("start")
def broker_start() -> None:
    """Start the embedded Redis (daemonised) and print its URL."""
    from worker.broker import EmbeddedRedis

    s = _settings()
    click.echo(EmbeddedRedis(s.redis_dir, s.redis_appendfsync).start())


@broker.command("stop")
def broker_stop() -> None:
    """Stop the embedded Redis (flushing its AOF)."""
    from worker.broker import EmbeddedRedis

    s = _settings()
    EmbeddedRedis(s.redis_dir, s.redis_appendfsync).stop()


# -- producing ---------------------------------------------------------------------------------
@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default="cli", show_default=True, help="Producer name stored with the documents.")
@click.option("--tag", "tags", multiple=True, help="Producer tag (repeatable).")
@click.option("--wait/--no-wait", default=False, help="Wait for every outcome and print it.")
@click.option("--timeout", default=300.0, show_default=True)
def submit(files: tuple[Path, ...], source: str, tags: tuple[str, ...], wait: bool, timeout: float) -> None:
    """Send files to the queue (progress bar for many files)."""
    from rich.progress import Progress

    from worker.client import Producer

    producer = Producer(_settings())
    receipts = []
    with Progress(transient=True, disable=len(files) < 2) as progress:
        job = progress.add_task("submitting", total=len(files))
        for path in files:
            request = producer.build_request(path, source=source, tags=list(tags), wait=wait)
            receipts.append(producer.send(request))
            progress.advance(job)
    if not wait:
        for r in receipts:
            click.echo(json.dumps({"file": r.summary.filename, "task_id": r.task_id, "key": r.key}))
        return
    results = producer.wait(receipts, timeout)
    failed = 0
    for r in receipts:
        result = results[r.key]
        failed += result.status == "failed"
        click.echo(json.dumps({"file": r.summary.filename, "outcome": result.short(), "key": r.key}))
    producer.close()
    sys.exit(1 if failed else 0)


# -- documents -----------------------------------------------------------------------------------
def _store() -> Any:
    from worker.services import ensure_schema
    from worker.store.engine import make_engine
    from worker.store.repository import DocumentStore

    s = _settings()
    ensure_schema(s)
    return DocumentStore(make_engine(s.effective_database_url), event_source=s.event_source)


@main.group()
def docs() -> None:
    """Stored documents."""


@docs.command("list")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def docs_list(limit: int, as_json: bool) -> None:
    """The newest documents."""
    rows = _store().list_documents(limit)
    if as_json:
        for d in rows:
            click.echo(
                json.dumps(
                    {
                        "id": d.id,
                        "filename": d.filename,
                        "date": str(d.date) if d.date else None,
                        "place": d.place,
                        "language": d.language,
                        "words": d.word_count,
                    }
                )
            )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "file", "date", "dateline", "lang", "words", "stored")
    for d in rows:
        table.add_row(
            d.id,
            d.filename,
            str(d.date or ""),
            " ".join(filter(None, [d.place, f"({d.agency})" if d.agency else ""])),
            d.language,
            str(d.word_count),
            d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    Console().print(table)


@docs.command("show")
@click.argument("doc_id")
def docs_show(doc_id: str) -> None:
    """One document with its tags, as JSON."""
    d = _store().get_document(doc_id)
    if d is None:
        raise click.ClickException(f"no document {doc_id}")
    out = {
        "id": d.id,
        "filename": d.filename,
        "source": d.source,
        "format": d.format,
        "title": d.title,
        "date": str(d.date) if d.date else None,
        "date_raw": d.date_raw,
        "dateline": {"place": d.place, "country": d.country, "agency": d.agency, "raw": d.dateline_raw},
        "author": d.author,
        "language": d.language,
        "word_count": d.word_count,
        "canonical_hash": d.canonical_hash,
        "raw_sha256": d.raw_sha256,
        "metadata": d.meta,
        "warnings": d.warnings,
        "tags": [
            {
                "kind": t.kind,
                "name": t.name,
                "label": t.label,
                "source": t.source,
                "score": t.score,
                "count": t.count,
                "country": t.country,
            }
            for t in d.tags
        ],
        "text": d.text,
    }
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))


@docs.command("search")
@click.argument("query")
@click.option("--tag", "tags", multiple=True, help="Only documents with this tag name (repeatable: all of them).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Document date on or after (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Document date on or before (YYYY-MM-DD).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def docs_search(query: str, tags: tuple[str, ...], since: Any, until: Any, limit: int, as_json: bool) -> None:
    """Full-text search, best first: words, "a phrase", OR, -exclude."""
    from worker.store.search import print_hits, search_documents

    store = _store()
    hits = search_documents(
        store.engine, query, tags=tags, since=since and since.date(), until=until and until.date(), limit=limit
    )
    print_hits(hits, as_json=as_json)


# -- operations ------------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--timeout", default=1.0, show_default=True, help="Seconds to wait for workers to answer.")
def status(as_json: bool, timeout: float) -> None:
    """Workers, queue depths, outcomes (last hour, all time), outbox lag, stream length."""
    from worker.status import collect_status, render_status

    report = collect_status(_settings(), ping_timeout=timeout)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        render_status(report)
    sys.exit(1 if report["errors"] else 0)  # a part did not answer (named under "errors")


@main.command()
@click.option(
    "--workers/--no-workers", default=True, help="Also require a worker to answer (skip for watcher/publisher probes)."
)
@click.option("--timeout", default=3.0, show_default=True, help="Seconds per check.")
def health(workers: bool, timeout: float) -> None:
    """Exit 0 when the broker, the database and (unless --no-workers) a worker respond."""
    from worker.status import check_health

    problems, fine = check_health(_settings(), workers=workers, timeout=timeout)
    for line in problems:
        click.echo(line, err=True)
    if problems:
        sys.exit(1)
    click.echo("ok: " + "; ".join(fine))


@main.command()
@click.option("--json", "as_json", is_flag=True)
def config(as_json: bool) -> None:
    """The effective settings (secrets masked) and the variable that sets each."""
    s = _settings()
    values = s.masked()
    if as_json:
        click.echo(json.dumps(values, indent=2, default=str))
        return
    for name, field in Settings.model_fields.items():
        click.echo(f"SEEDWORKER_{name.upper():<24} {values[name]!s:<40} {field.description or ''}")


# Command groups that live beside their domain; each module owns its commands and adds one line here.
# --- registered command groups (keep one line per module) ---
from worker.db_cli import db  # noqa: E402

main.add_command(db)
from worker.tags_cli import tags  # noqa: E402

main.add_command(tags)
from worker.events_cli import events, schema  # noqa: E402

main.add_command(events)
main.add_command(schema)
from worker.dedup_cli import dedup  # noqa: E402

main.add_command(dedup)
# --- end of registered command groups ---


if __name__ == "__main__":
    main()
