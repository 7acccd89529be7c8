"""``seedworker status``, ``health`` and ``config``: how the instance is doing and how it is set."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from worker.cli.context import CliContext, Failure, sqlite_file
from worker.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object (docs/cli.md).")
@click.option("--timeout", default=1.0, show_default=True, help="Seconds to wait for workers to answer.")
@click.pass_obj
def status(obj: CliContext, as_json: bool, timeout: float) -> None:
    """Workers, queue depths, outcomes (last hour, all time), outbox lag, stream length."""
    from worker.status import collect_status

    obj.require_database()
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
    unconsumed = report.get("unconsumed_queues") or {}
    for queue, depth in (report.get("queues") or {}).items():
        shown = f"{depth} (no seedworker worker consumes it)" if queue in unconsumed else str(depth)
        system.add_row(f"queue {queue}", shown)
    if "unacked" in report:
        system.add_row("unacknowledged messages", str(report["unacked"]))
    if "outbox" in report:
        system.add_row("outbox unpublished", str(report["outbox"]["unpublished"]))
        if report["outbox"].get("held"):
            system.add_row("outbox held (embargo)", str(report["outbox"]["held"]))
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
@click.option("--json", "as_json", is_flag=True, help="The settings as one JSON object (the same names, lower-case).")
@click.option("--check", is_flag=True, help="Print nothing but problems; exit 2 if there are any.")
@click.option("--flower", is_flag=True, help="Also check what Flower needs (as `run --flower` does).")
@click.pass_obj
def config(obj: CliContext, as_json: bool, check: bool, flower: bool) -> None:
    """The effective settings (secrets masked) and the variable that sets each, then a check of
    everything any process will check at start: taxonomy, NER model, webhooks, folder-tag
    map, broker URL, Flower's address, the database.  One line per problem on stderr; exit 2
    when something must be changed, 1 when the database does not answer or no instance
    exists yet (`seedworker run` creates it)."""
    settings = obj.settings  # invalid values, bad JSON, a broker URL of another scheme stop here
    if not check:
        values = settings.masked()
        if as_json:
            click.echo(json.dumps(values, indent=2, default=str))
        else:
            for name, field in Settings.model_fields.items():
                click.echo(f"SEEDWORKER_{name.upper():<24} {values[name]!s:<40} {field.description or ''}")
    problems = configuration_problems(settings, flower=flower)
    if problems:
        from worker.errors import ConfigError

        raise ConfigError("\n".join(problems))
    reach = database_problem(settings)
    if reach:
        raise Failure(reach)
    if not check:
        obj.require_database()  # `run` creates the instance; `config` only says it is not there


def configuration_problems(settings: Settings, *, flower: bool = False) -> list[str]:
    """What a process would refuse at start, beyond the settings' own validation: one line each."""
    from worker.errors import ConfigError

    problems: list[str] = []
    try:  # the taxonomy file and the NER model, as the worker checks them before forking
        from worker.pipeline.tag import Tagger

        Tagger.check_settings(settings)
    except ConfigError as exc:
        problems.extend(str(exc).splitlines())
    if flower:
        try:
            from worker.flower import flower_command

            flower_command(settings, settings.broker_url or "redis://127.0.0.1:1/0")
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def database_problem(settings: Settings, timeout: float = 5.0) -> str | None:
    """Why the configured database does not answer, or None.  A SQLite file that does not
    exist yet is not opened (nothing is created here)."""
    from worker.settings import mask_url

    if not settings.database_url:
        return None
    path = sqlite_file(settings)
    if path is not None and not path.is_file():
        return None  # `run` creates it; `config` reports the missing instance itself
    from sqlalchemy import text

    from worker import probes

    try:
        engine = probes.engine(settings, connect_timeout=timeout)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # any driver error: the message is what the user needs
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"cannot reach {mask_url(settings.database_url)}: {first[0] if first else type(exc).__name__}"
    return None


COMMANDS = (status, health, config)
