"""``seedworker db``: the database schema (Alembic revisions)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from worker.cli.context import CliContext


@contextmanager
def _revision_errors() -> Iterator[None]:
    """An unknown or unreachable revision is a usage error (exit 2), not a traceback."""
    from alembic.util.exc import CommandError

    try:
        yield
    except CommandError as exc:
        raise click.BadParameter(
            f"{exc} (see `seedworker db current`; `head` and `base` always work)", param_hint="REVISION"
        ) from exc


@click.group()
def db() -> None:
    """The database schema: Alembic migrations on SQLite and PostgreSQL."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_obj
def db_upgrade(obj: CliContext, revision: str) -> None:
    """Migrate to REVISION (default head); a database made by create_all is stamped first."""
    from worker.settings import mask_url
    from worker.store.migrations import current, upgrade

    url = obj.settings.effective_database_url
    with _revision_errors():
        upgrade(url, revision)
    click.echo(f"{mask_url(url)}: at {', '.join(current(url)) or '<empty>'}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_obj
def db_downgrade(obj: CliContext, revision: str) -> None:
    """Migrate down to REVISION (``base`` drops everything)."""
    from worker.store.migrations import current, downgrade

    url = obj.settings.effective_database_url
    with _revision_errors():
        downgrade(url, revision)
    click.echo(", ".join(current(url)) or "<empty>")


@db.command("current")
@click.pass_obj
def db_current(obj: CliContext) -> None:
    """Print the database's revision (empty when unmanaged)."""
    from worker.store.migrations import current

    click.echo(", ".join(current(obj.settings.effective_database_url)) or "<none>")


@db.command("check")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object (docs/cli.md).")
@click.pass_obj
def db_check(obj: CliContext, as_json: bool) -> None:
    """Exit 0 when the database is at head and matches the models, 1 otherwise."""
    from worker.store.migrations import check

    report = check(obj.settings.effective_database_url)
    ok = report["up_to_date"] and not report["drift"]
    if as_json:
        click.echo(json.dumps({**report, "ok": ok}, indent=2))
    else:
        click.echo(f"current {', '.join(report['current']) or '<none>'}, head {report['head']}")
        for line in report["drift"]:
            click.echo(f"drift: {line}")
        if not report["up_to_date"]:
            click.echo("not at head: run `seedworker db upgrade`")
        elif report["drift"]:
            click.echo("models and migrations differ: run `python -m worker.store.migrations regenerate`")
    sys.exit(0 if ok else 1)


COMMANDS = (db,)
