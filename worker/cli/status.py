"""``seedworker status``, ``health`` and ``config``: how the instance is doing and how it is set."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from worker.cli.context import CliContext
from worker.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--timeout", default=1.0, show_default=True, help="Seconds to wait for workers to answer.")
@click.pass_obj
def status(obj: CliContext, as_json: bool, timeout: float) -> None:
    """Workers, queue depths, outcomes (last hour, all time), outbox lag, stream length."""
    from worker.status import collect_status

    report = collect_status(obj.settings, ping_timeout=timeout)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        render_status(report)
    sys.exit(1 if report["errors"] else 0)  # a part did not answer (named under "errors")


def render_status(report: dict[str, Any]) -> None:
    """The human view of ``collect_status``: a few small tables."""
    from rich.console import Console
    from rich.table import Table

    from worker.status import OUTCOMES

    console = Console()
    workers = Table("worker", "pid", "processes", "tasks done", "up", title="workers")
    for w in report.get("workers", []):
        up = w.get("uptime_seconds")
        workers.add_row(
            w["name"], str(w.get("pid") or ""), str(w.get("processes")), str(w.get("tasks_done")), f"{up or 0:.0f}s"
        )
    if "workers" in report and not report["workers"]:
        workers.add_row("(none answered)", "", "", "", "")
    console.print(workers)

    overview = Table("what", "last hour", "all time", title="documents")
    docs = report.get("documents") or {}
    for outcome in OUTCOMES:
        overview.add_row(
            outcome,
            str((docs.get("last_hour") or {}).get(outcome, "?")),
            str((docs.get("all_time") or {}).get(outcome, "?")),
        )
    console.print(overview)

    system = Table("what", "value", title="pipeline", show_header=False)
    for queue, depth in (report.get("queues") or {}).items():
        system.add_row(f"queue {queue}", str(depth))
    if "unacked" in report:
        system.add_row("unacknowledged messages", str(report["unacked"]))
    if "outbox" in report:
        system.add_row("outbox unpublished", str(report["outbox"]["unpublished"]))
        system.add_row("outbox oldest unpublished", f"{report['outbox']['oldest_age_seconds']:.1f}s")
    if "stream" in report:
        system.add_row(f"stream {report['stream']['name']}", f"{report['stream']['length']} entries")
    if "webhooks" in report:
        for endpoint, counts in sorted(report["webhooks"].items()):
            system.add_row(f"webhook {endpoint}", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    console.print(system)
    for part, error in (report.get("errors") or {}).items():
        console.print(f"[red]{part} unreachable:[/red] {error}", markup=True, highlight=False)


@click.command()
@click.option(
    "--workers/--no-workers", default=True, help="Also require a worker to answer (skip for watcher/publisher probes)."
)
@click.option("--timeout", default=3.0, show_default=True, help="Seconds per check.")
@click.pass_obj
def health(obj: CliContext, workers: bool, timeout: float) -> None:
    """Exit 0 when the broker, the database and (unless --no-workers) a worker respond."""
    from worker.status import check_health

    problems, fine = check_health(obj.settings, workers=workers, timeout=timeout)
    for line in problems:
        click.echo(line, err=True)
    if problems:
        sys.exit(1)
    click.echo("ok: " + "; ".join(fine))


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def config(obj: CliContext, as_json: bool) -> None:
    """The effective settings (secrets masked) and the variable that sets each."""
    values = obj.settings.masked()
    if as_json:
        click.echo(json.dumps(values, indent=2, default=str))
        return
    for name, field in Settings.model_fields.items():
        click.echo(f"SEEDWORKER_{name.upper():<24} {values[name]!s:<40} {field.description or ''}")


COMMANDS = (status, health, config)
