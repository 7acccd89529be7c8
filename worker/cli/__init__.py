"""The ``seedworker`` command: the root group, its one error handler, and the subcommands.

Each subcommand module owns its commands and receives the shared :class:`CliContext`
(``worker/cli/context.py``); none imports this module.
"""

from __future__ import annotations

from typing import Any

import click

from worker.cli.context import CliContext
from worker.errors import ConfigError, SeedworkerError


class _Root(click.Group):
    """The one place an error becomes a message: a seedworker error is one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        except SeedworkerError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """seedworker: watched folder -> Celery on Redis -> normalise, tag, deduplicate, store -> events.

    Every setting is an environment variable SEEDWORKER_<NAME> (or a line in .env);
    `seedworker config` lists them with their effective values.
    """
    obj = ctx.ensure_object(CliContext)
    ctx.call_on_close(obj.close)


def _register() -> None:
    from worker.cli import db, dedup, docs, events, processes, status, submit, tags

    for module in (processes, submit, docs, status, db, tags, events, dedup):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
