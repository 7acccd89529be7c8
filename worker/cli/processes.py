"""The long-running processes: ``run`` (all of them), ``worker``, ``watch``, ``publish``,
``flower`` and the embedded Redis (``broker start|stop``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from worker.cli.context import CliContext
from worker.settings import Settings


@click.command()
@click.option("--flower/--no-flower", default=False, help="Also start Flower.")
@click.option("--grace", default=30.0, show_default=True, help="Seconds to finish work on Ctrl-C before killing.")
@click.pass_obj
def run(obj: CliContext, flower: bool, grace: float) -> None:
    """Start everything: embedded Redis (unless SEEDWORKER_BROKER_URL), worker, watcher, publisher."""
    from worker.logs import configure_logging
    from worker.signals import stop_on_signals
    from worker.supervisor import Supervisor

    settings = obj.settings
    configure_logging(settings)
    sup = Supervisor(settings, with_flower=flower, grace=grace)
    try:
        with stop_on_signals(sup.stop_event.set):
            sup.start()
            _banner(settings, sup.broker_url, flower)
            sup.watch_children()
    finally:
        sup.stop()  # also after a failed start: whatever run started, it stops
    if sup.failure:
        from worker.errors import ConfigError

        raise ConfigError(sup.failure)


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


@click.command()
@click.option("--node-name", help="Celery node name (default seedworker@HOST).")
@click.option("--concurrency", type=int, help="Processes (default SEEDWORKER_CONCURRENCY or CPU count).")
@click.option("--queues", help="Comma-separated queues (default SEEDWORKER_QUEUE and SEEDWORKER_TAG_QUEUE).")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True)
@click.option("--banner/--no-banner", default=True, show_default=True, help="Celery's start-up banner.")
@click.pass_obj
def worker(
    obj: CliContext, node_name: str | None, concurrency: int | None, queues: str | None, pool: str, banner: bool
) -> None:
    """Run a Celery worker."""
    from worker.services import run_worker

    run_worker(
        obj.settings,
        node_name=node_name,
        concurrency=concurrency,
        queues=queues.split(",") if queues else None,
        pool=pool,
        banner=banner,
    )


@click.command()
@click.option("--watcher-id", help="Stable id of this watcher (default HOST-hash(inbox)).")
@click.pass_obj
def watch(obj: CliContext, watcher_id: str | None) -> None:
    """Watch the inbox and send its files to the queue."""
    from worker.services import run_watcher

    run_watcher(obj.settings, watcher_id=watcher_id)


@click.command()
@click.pass_obj
def publish(obj: CliContext) -> None:
    """Move events from the outbox to the Redis Stream."""
    from worker.services import run_publisher

    run_publisher(obj.settings)


@click.command()
@click.pass_obj
def flower(obj: CliContext) -> None:
    """Start Flower against the configured (or embedded) broker.

    An embedded Redis that this command had to start is stopped again when Flower stops.
    """
    from worker.broker import EmbeddedRedis
    from worker.flower import run_flower

    settings = obj.settings
    if settings.broker_url:
        sys.exit(run_flower(settings))
    server = EmbeddedRedis(settings.redis_dir, settings.redis_appendfsync)
    owned = not server.is_running()
    url = server.start()
    try:
        code = run_flower(settings.model_copy(update={"broker_url": url}))
    finally:
        if owned:
            server.stop()
    sys.exit(code)


@click.group()
def broker() -> None:
    """The embedded Redis."""


@broker.command("start")
@click.pass_obj
def broker_start(obj: CliContext) -> None:
    """Start the embedded Redis (daemonised) and print its URL."""
    from worker.broker import EmbeddedRedis

    s = obj.settings
    click.echo(EmbeddedRedis(s.redis_dir, s.redis_appendfsync).start())


@broker.command("stop")
@click.pass_obj
def broker_stop(obj: CliContext) -> None:
    """Stop the embedded Redis (flushing its AOF)."""
    from worker.broker import EmbeddedRedis

    s = obj.settings
    EmbeddedRedis(s.redis_dir, s.redis_appendfsync).stop()


COMMANDS = (run, worker, watch, publish, flower, broker)
