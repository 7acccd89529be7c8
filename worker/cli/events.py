"""``seedworker events …`` (tail, replay, dead letters) and ``seedworker schema events``."""

from __future__ import annotations

import json
import re
import sys
import threading

import click

from worker.cli.context import CliContext
from worker.errors import ConfigError


@click.group()
def events() -> None:
    """The event stream: tail it, replay history, inspect dead letters."""


_STREAM_ID = re.compile(r"\$|0|\d+(-\d+)?")


def _stream_id(_: click.Context, __: click.Parameter, value: str) -> str:
    if not _STREAM_ID.fullmatch(value):
        raise click.BadParameter(
            f"{value!r} is not a stream position: use 0 (from the start), $ (only new events) "
            "or a stream id such as 1767225600000-0"
        )
    return value


@events.command("tail")
@click.option("--group", help="Consumer group: durable position, acknowledged after printing.")
@click.option("--consumer", help="Consumer name inside the group (default HOST-PID).")
@click.option(
    "--from",
    "start",
    default="$",
    show_default=True,
    callback=_stream_id,
    help="0 replays from the start; $ only new; or a stream id.",
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
    """Print events as JSON lines, one per line, on stdout (logs go to stderr): pipe into jq.

    Ctrl-C stops quietly (exit 130).  If the broker goes away while following, tail waits
    for it and resumes after the last event it printed.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from worker.consumer import read_events
    from worker.errors import BrokerUnavailable
    from worker.logs import get_logger
    from worker.signals import stop_on_signals

    log = get_logger("seedworker.events")
    name = stream or obj.settings.event_stream
    obj.redis().ping()  # a broker that is down at the start is an error, not something to wait for
    stop = threading.Event()
    stopped_by: list[int] = []
    last: str | None = None  # the last id printed: where a reconnect resumes
    seen = 0
    pause = 0.5
    with stop_on_signals(stop.set, received=stopped_by, announce=False):
        while not stop.is_set():
            try:
                for entry_id, event in read_events(
                    obj.redis(),
                    name,
                    start=last if last is not None and not group else start,
                    group=group,
                    consumer=consumer,
                    stop=stop,
                    follow=follow,
                ):
                    if group and last is not None and _id_key(entry_id) <= _id_key(last):
                        continue  # printed before the connection broke, not yet acknowledged
                    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
                    sys.stdout.flush()
                    last, seen, pause = entry_id, seen + 1, 0.5
                    if count is not None and seen >= count:
                        return
                break  # --no-follow reached the end, or a signal
            except (RedisConnectionError, RedisTimeoutError, BrokerUnavailable) as exc:
                if not follow:
                    raise
                log.warning("broker unreachable, reconnecting", error=str(exc), retry_in=pause, last_id=last)
                obj.reconnect_redis()
                stop.wait(pause)
                pause = min(pause * 2, 10.0)
    if stopped_by:
        sys.exit(128 + stopped_by[0])


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@events.command("replay")
@click.option("--since", required=True, help="A duration ago (90s, 15m, 2h, 7d, 1w) or an ISO date/datetime (UTC).")
@click.option("--type", "types", multiple=True, help="Only this type (document.stored or full); repeatable.")
@click.option("--to-stream", help="Append to this stream instead of EVENT_STREAM (a new consumer's own stream).")
@click.pass_obj
def events_replay(obj: CliContext, since: str, types: tuple[str, ...], to_stream: str | None) -> None:
    """Re-publish history from the outbox, with the same event ids, in commit order."""
    from worker.relay.replay import parse_since, replay

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
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the only form; accepted for scripts).")
@click.pass_obj
def events_dead(obj: CliContext, stream: str | None, count: int, as_json: bool) -> None:
    """Print parked events with their error, oldest first, as JSON lines."""
    from worker.consumer import dead_letter_stream_for

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
