"""``seedworker submit``: send files to the queue, as a producer program would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from worker.cli.context import CliContext


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default="cli", show_default=True, help="Producer name stored with the documents.")
@click.option("--tag", "tags", multiple=True, help="Producer tag (repeatable).")
@click.option("--wait/--no-wait", default=False, help="Wait for every outcome and print it.")
@click.option("--timeout", default=300.0, show_default=True)
@click.pass_obj
def submit(
    obj: CliContext, files: tuple[Path, ...], source: str, tags: tuple[str, ...], wait: bool, timeout: float
) -> None:
    """Send files to the queue (progress bar for many files)."""
    from rich.progress import Progress

    from worker.client import Producer

    producer = Producer(obj.settings, broker_url=obj.broker_url())
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


COMMANDS = (submit,)
