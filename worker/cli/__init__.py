"""The ``seedworker`` command: the root group, its one error handler, and the subcommands.

Each subcommand module owns its commands and receives the shared :class:`CliContext`
(``worker/cli/context.py``); none imports this module.
"""

from __future__ import annotations

from typing import Any

import click

from worker.cli.context import CliContext, Failure, Mistake
from worker.errors import ConfigError, SeedworkerError


class Misuse(click.UsageError):
    """A usage error in one line (click prints three: usage, a hint, the error)."""

    def __init__(self, original: click.UsageError) -> None:
        super().__init__(original.format_message(), original.ctx)

    def show(self, file: Any = None) -> None:
        where = f" (see `{self.ctx.command_path} --help`)" if self.ctx is not None else ""
        click.echo(f"error: {self.format_message()}{where}", err=True)


class _Root(click.Group):
    """The one place an error becomes a message: what is wrong and what to do, no traceback.
    Errors that are not the user's (a bug) keep their traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None  # Ctrl-C: quiet, as a shell expects
        except click.UsageError as exc:
            raise Misuse(exc) from exc
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            failure = explain(exc, ctx.find_object(CliContext))
            if failure is None:
                raise
            raise failure from exc


def explain(exc: BaseException, obj: CliContext | None) -> Failure | None:
    """The one-line message and exit code for an error a user can act on; None for a bug."""
    from worker.errors import AlreadyRunning, BrokerUnavailable, InstanceNotFound, StartRefused, StoreUnavailable
    from worker.settings import mask_url

    settings = obj.loaded_settings if obj is not None else None
    if isinstance(exc, ConfigError):
        return Mistake(str(exc))
    if isinstance(exc, BrokerUnavailable | InstanceNotFound | AlreadyRunning | StartRefused):
        return Failure(_first_line(exc))
    if isinstance(exc, StoreUnavailable):
        return Failure(f"{_first_line(exc)}: check SEEDWORKER_DATABASE_URL")
    if isinstance(exc, SeedworkerError):
        return Failure(f"{type(exc).__name__}: {_first_line(exc)}")
    if isinstance(exc, TimeoutError):
        return Failure(f"{_first_line(exc)}: is a worker running? (`seedworker status`)")
    if _is_instance(exc, "redis.exceptions", "ConnectionError", "TimeoutError") or _is_instance(
        exc, "kombu.exceptions", "OperationalError"
    ):
        where = mask_url(settings.broker_url) if settings is not None and settings.broker_url else "the broker"
        return Failure(f"cannot reach {where}: {_first_line(exc)} (is Redis running? SEEDWORKER_BROKER_URL)")
    if _is_instance(exc, "sqlalchemy.exc", "OperationalError", "InterfaceError"):
        where = mask_url(settings.effective_database_url) if settings is not None else "the database"
        return Failure(f"cannot reach {where}: {_first_line(getattr(exc, 'orig', None) or exc)}")
    return None


def _is_instance(exc: BaseException, module: str, *names: str) -> bool:
    """isinstance against a library's exception without importing the library for every command."""
    import sys

    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, tuple(getattr(loaded, n) for n in names))


def _first_line(exc: object) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seedworker", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context) -> None:
    """seedworker: watched folder -> Celery on Redis -> normalise, tag, deduplicate, store -> events.

    Every setting is an environment variable SEEDWORKER_<NAME> (or a line in .env, or a
    key in the nearest seedworker.toml); `seedworker config` lists them with their effective
    values.  Read commands take --json (docs/cli.md describes each shape).
    """
    obj = ctx.ensure_object(CliContext)
    ctx.call_on_close(obj.close)


def _register() -> None:
    from worker.cli import db, dedup, docs, events, processes, status, submit, tags

    for module in (processes, submit, docs, status, db, tags, events, dedup):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
