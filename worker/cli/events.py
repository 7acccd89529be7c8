"""``seedworker events …`` (tail, replay, dead letters) and ``seedworker schema events``."""

from __future__ import annotations

import json
import sys
import threading

import click

from worker.cli.context import CliContext
from worker.errors import ConfigError


@click.group()
def events() -> None:
    """The event stream: tail it, replay history, inspect dead letters."""


@events.command("tail")
@click.option("--group", help="Consumer group: durable position, acknowledged after printing.")
@click.option("--consumer", help="Consumer name inside the group (default HOST-PID).")
@click.option(
    "--from", "start", default="$", show_default=True, help="0 replays from the start; $ only new; or a stream id."
)
@click.option("--follow/--no-follow", default=True, help="Keep waiting for new events.")
@click.option("--count", type=int, help="Stop after this many events.")
@click.option("--stream", help="Another stream (a replay target, a dead-letter stream); default EVENT_STREAM.")
@click.pass_obj
def events_tail(
    obj: CliContext,
    group: str | None,
    consumer: str | None,
    start: str,
    follow: bool,
    count: int | None,
    stream: str | None,
) -> None:
    """Print events as JSON lines (pipe into jq)."""
    from worker.events.consumer import read_events
    from worker.services import stop_on_signals

    s = obj.settings
    client = obj.redis()
    stop = threading.Event()
    seen = 0
    with stop_on_signals(stop.set):
        for _, event in read_events(
            client, stream or s.event_stream, start=start, group=group, consumer=consumer, stop=stop, follow=follow
        ):
            sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                break


@events.command("replay")
@click.option("--since", required=True, help="A duration ago (90s, 15m, 2h, 7d, 1w) or an ISO date/datetime (UTC).")
@click.option("--type", "types", multiple=True, help="Only this type (document.stored or full); repeatable.")
@click.option("--to-stream", help="Append to this stream instead of EVENT_STREAM (a new consumer's own stream).")
@click.pass_obj
def events_replay(obj: CliContext, since: str, types: tuple[str, ...], to_stream: str | None) -> None:
    """Re-publish history from the outbox, with the same event ids, in commit order."""
    from worker.events.replay import parse_since, replay

    try:
        when = parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    s = obj.settings
    store = obj.store()
    target = to_stream or s.event_stream
    n = replay(store, obj.redis(), target, since=when, types=types, batch=s.publish_batch, maxlen=s.stream_maxlen)
    click.echo(json.dumps({"replayed": n, "stream": target, "since": when.isoformat()}))


@events.command("dead")
@click.option("--stream", help="Dead-letter stream (default EVENT_STREAM:dead).")
@click.option("--count", default=100, show_default=True)
@click.pass_obj
def events_dead(obj: CliContext, stream: str | None, count: int) -> None:
    """Print parked events with their error, oldest first, as JSON lines."""
    from worker.events.consumer import dead_letter_stream_for

    client = obj.redis()
    name = stream or dead_letter_stream_for(obj.settings.event_stream)
    for entry_id, fields in client.xrange(name, count=count):
        row = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
        row["event"] = json.loads(row["event"]) if row.get("event", "").startswith("{") else row.get("event")
        click.echo(json.dumps({"dead_letter_id": entry_id.decode(), **row}, ensure_ascii=False))


@click.group()
def schema() -> None:
    """Published contracts."""


@schema.command("events")
@click.option("--type", "name", help="One event type (document.stored); default all, keyed by type.")
@click.option("--write", is_flag=True, help="Regenerate worker/events/schemas/*.json (refuses breaking changes).")
def schema_events(name: str | None, write: bool) -> None:
    """The JSON Schema of each event type, generated from the models."""
    from worker.events import contract

    if write:
        try:
            written = contract.write()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{len(written)} schema file(s) updated in {contract.schema_dir()}", err=True)
        for path in written:
            click.echo(str(path))
        return
    schemas = contract.generate()
    if name:
        key = name.removeprefix("org.seedworker.")
        key = key if key in schemas else f"document.{key}"
        if key not in schemas:
            raise click.BadParameter(f"unknown type; one of {', '.join(schemas)}", param_hint="--type")
        click.echo(contract.render(schemas[key]), nl=False)
        return
    click.echo(json.dumps(schemas, indent=2, ensure_ascii=False))


COMMANDS = (events, schema)
