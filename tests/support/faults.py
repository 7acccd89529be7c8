"""What every chaos test shares: inputs with known expected outcomes, the faults themselves
(locked or unreachable databases, a private Redis that can be stopped), and ``account_for``,
the one check that every input file ended exactly once in the store, every outcome reached
the stream, nothing is stuck in the processing area and the processes still work.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.support.stack import STORED, Stack, count_rows, files_under
from worker.broker import EmbeddedRedis, connect
from worker.store.engine import make_engine
from worker.store.schema import Document, Duplicate, Failure, Ingestion, OutboxRow

FAST = {"SEEDWORKER_NER_MODEL": "", "SEEDWORKER_KEYWORDS": "false"}  # delivery, not tagging: no NER, no YAKE
PROCESSING = ".seedworker-processing"

_SYLLABLES = [
    "ka", "lo", "mi", "ren", "tas", "vo", "pel", "dri", "sun", "mor", "quel", "zan", "bri", "tor",
    "ish", "na", "gul", "fen", "ster", "ap", "ric", "hol", "ven", "dal", "ost", "pri", "cel", "um",
]  # fmt: skip


# -- inputs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """One file a test drops, and what it must become."""

    name: str
    data: bytes
    expect: Literal["document", "failed"]  # document: stored, or a duplicate of its group
    group: str = ""  # inputs with the same group have the same text: one stored, the rest duplicates
    reason: str | None = None  # the failure reason of a failed input


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(n)]


def article(rng: random.Random, serial: int) -> bytes:
    """A short, unique news-like text (random words: never a near-duplicate of another)."""
    title = " ".join(_words(rng, 6)).capitalize()
    paragraphs = [" ".join(_words(rng, rng.randint(40, 70))).capitalize() + "." for _ in range(2)]
    body = "\n\n".join(paragraphs)
    return f"{title} number {serial}\n\nVELMORA (Chaos Wire) - {body}\n".encode()


def make_inputs(
    count: int, *, prefix: str = "doc", seed: int = 8, duplicate_every: int = 10, failed_every: int = 25
) -> list[Input]:
    """``count`` files: mostly distinct articles, every ``duplicate_every``-th an exact copy of
    an earlier one, every ``failed_every``-th binary (fails with reason ``binary``)."""
    rng = random.Random(seed)
    inputs: list[Input] = []
    originals: list[Input] = []
    for i in range(count):
        name = f"{prefix}-{i:05d}.txt"
        if failed_every and i % failed_every == failed_every - 1:
            data = b"\x89PNG\r\n\x1a\n\x00\x00" + rng.randbytes(64) + f"{prefix}{i}".encode()
            inputs.append(Input(name, data, "failed", reason="binary"))
        elif duplicate_every and originals and i % duplicate_every == duplicate_every - 1:
            original = rng.choice(originals)
            inputs.append(Input(name, original.data, "document", group=original.group))
        else:
            doc = Input(name, article(rng, i), "document", group=f"{prefix}-g{i}")
            originals.append(doc)
            inputs.append(doc)
    return inputs


def expected_counts(inputs: list[Input]) -> tuple[int, int, int]:
    """(stored, duplicate, failed) the inputs must end as."""
    groups = {i.group for i in inputs if i.expect == "document"}
    failed = sum(1 for i in inputs if i.expect == "failed")
    return len(groups), len(inputs) - failed - len(groups), failed


def drop_all(stack: Stack, inputs: list[Input]) -> None:
    """Write every input outside the inbox, then rename them all in at once."""
    staging = stack.root / ".staging"
    staging.mkdir(exist_ok=True)
    for item in inputs:
        (staging / item.name).write_bytes(item.data)
    stack.inbox.mkdir(parents=True, exist_ok=True)
    for item in inputs:
        os.rename(staging / item.name, stack.inbox / item.name)


# -- observing the store --------------------------------------------------------------------------
@dataclass
class StoreView:
    ingestions: list[dict[str, Any]]
    documents: dict[str, str]  # id -> filename
    duplicates: dict[str, tuple[str, str]]  # id -> (filename, document_id)
    failures: dict[str, tuple[str, str]]  # id -> (filename, reason)
    outbox: dict[str, bool]  # event id -> published


def read_store(database_url: str) -> StoreView:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return StoreView(
                ingestions=[
                    {**dict(outcome), "key": key, "status": status}
                    for key, status, outcome in conn.execute(select(Ingestion.key, Ingestion.status, Ingestion.outcome))
                ],
                documents=dict(conn.execute(select(Document.id, Document.filename)).tuples().all()),
                duplicates={
                    i: (f, d)
                    for i, f, d in conn.execute(select(Duplicate.id, Duplicate.filename, Duplicate.document_id))
                },
                failures={i: (f, r) for i, f, r in conn.execute(select(Failure.id, Failure.filename, Failure.reason))},
                outbox={e: p is not None for e, p in conn.execute(select(OutboxRow.event_id, OutboxRow.published_at))},
            )
    finally:
        engine.dispose()


def count_ingestions(database_url: str) -> int:
    return count_rows(database_url, Ingestion)


def stream_ids(stack: Stack) -> list[str]:
    """Every entry's event id on the stream, repeats included."""
    client = stack.redis()
    try:
        return [f[b"id"].decode() for _, f in client.xrange(stack.stream)]
    finally:
        client.close()


def processing_files(stack: Stack) -> list[Path]:
    return files_under(stack.inbox / PROCESSING)


def claim_keys_on_disk(stack: Stack) -> set[str]:
    """``claim:<id>`` of every claim holding a file (what a restarted watcher re-sends): an entry
    ``<watcher>/<id>_<inbox path>``, or a file in a nested claim folder ``<watcher>/<id>/…``."""
    folder = stack.inbox / PROCESSING
    return {f"claim:{p.relative_to(folder).parts[1].partition('_')[0]}" for p in processing_files(stack)}


def inbox_files(stack: Stack) -> list[Path]:
    return [p for p in files_under(stack.inbox) if PROCESSING not in p.relative_to(stack.inbox).parts]


# -- the one check ---------------------------------------------------------------------------------
@dataclass
class Accounting:
    stored: int
    duplicate: int
    failed: int
    events: int  # distinct event ids on the stream
    stream_entries: int  # entries, repeats included
    seconds: float  # from the call until everything was accounted for
    notes: list[str] = field(default_factory=list)

    @property
    def repeats(self) -> int:
        return self.stream_entries - self.events

    @property
    def counts(self) -> tuple[int, int, int]:
        return self.stored, self.duplicate, self.failed


def _files(root: Path) -> list[Path]:
    return files_under(root)


def _progress(stack: Stack, inputs: list[Input]) -> str | None:
    """None when everything is accounted for, else what is still missing (cheapest checks first)."""
    ingestions = count_ingestions(stack.database_url)
    if ingestions < len(inputs):
        return f"{ingestions}/{len(inputs)} ingestions"
    in_processing = len(processing_files(stack))
    if in_processing:
        return f"{in_processing} files in the processing area"
    finished = _files(stack.archive)
    failed_dir = [p for p in _files(stack.failed) if not p.name.endswith(".error.json")]
    expected_failed = sum(1 for i in inputs if i.expect == "failed")
    if len(failed_dir) < expected_failed or len(finished) < len(inputs) - expected_failed:
        return f"{len(finished)} archived, {len(failed_dir)} failed files"
    view = read_store(stack.database_url)
    unpublished = sum(1 for published in view.outbox.values() if not published)
    if unpublished:
        return f"{unpublished} outbox rows unpublished"
    if not set(view.outbox) <= set(stream_ids(stack)):
        return "outbox events missing from the stream"
    return None


def account_for(stack: Stack, inputs: list[Input], *, timeout: float = 120.0, probe: bool = True) -> Accounting:
    """Wait until every input is accounted for, then check it exactly.

    * the store: one ``ingestions`` row per input file, with the expected outcome; per group of
      identical texts one document and the rest duplicates of it; failures with their reason;
      no document, duplicate or failure row without its ingestion, none twice;
    * the events: one outbox row per outcome, all published, every one on the stream (at least
      once), nothing on the stream that is not in the outbox;
    * the files: the processing area empty, nothing left in the inbox, every document in the
      archive with its bytes, every failure in failed/ with its ``.error.json``;
    * the processes: all alive, and (``probe``) a new file afterwards is stored and announced.
    """
    started = time.monotonic()
    deadline = started + timeout
    missing = _progress(stack, inputs)
    while missing is not None:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not accounted for within {timeout}s: {missing}\n"
                + "\n".join(f"--- {name}\n{stack.tail(name, 30)}" for name in stack.procs)
            )
        stack.check_alive()
        time.sleep(0.25 if len(inputs) < 1000 else 1.0)
        missing = _progress(stack, inputs)
    seconds = time.monotonic() - started

    by_name = {i.name: i for i in inputs}
    assert len(by_name) == len(inputs), "input names must be unique"
    view = read_store(stack.database_url)
    ids = stream_ids(stack)

    # The store: exactly one outcome per input file.
    per_file = Counter(row["filename"] for row in view.ingestions)
    twice = {name: n for name, n in per_file.items() if n > 1}
    assert not twice, f"files with more than one outcome: {twice}"
    assert set(per_file) == set(by_name), (
        f"unexpected outcomes {sorted(set(per_file) - set(by_name))[:5]}, "
        f"missing {sorted(set(by_name) - set(per_file))[:5]}"
    )
    assert all(row["key"].startswith("claim:") for row in view.ingestions)
    stored_of_group: dict[str, str] = {}
    for row in view.ingestions:
        item = by_name[row["filename"]]
        if item.expect == "failed":
            assert row["status"] == "failed" and row["reason"] == item.reason, (item.name, row)
            assert view.failures[row["document_id"]] == (item.name, item.reason)
        else:
            assert row["status"] in ("stored", "duplicate"), (item.name, row)
            if row["status"] == "stored":
                assert item.group not in stored_of_group, f"group {item.group} stored twice"
                stored_of_group[item.group] = row["document_id"]
                assert view.documents[row["document_id"]] == item.name
    for row in view.ingestions:
        item = by_name[row["filename"]]
        if row["status"] == "duplicate":
            assert row["duplicate_of"] == stored_of_group[item.group], (item.name, row)
            assert view.duplicates[row["document_id"]] == (item.name, row["duplicate_of"])
    groups = {i.group for i in inputs if i.expect == "document"}
    assert set(stored_of_group) == groups
    statuses = Counter(row["status"] for row in view.ingestions)
    assert len(view.documents) == statuses["stored"] == len(groups)
    assert len(view.duplicates) == statuses["duplicate"]
    assert len(view.failures) == statuses["failed"] == sum(1 for i in inputs if i.expect == "failed")

    # No task ended in failure: a failed task's message is acknowledged and its file waits for
    # the watcher's re-send (10 min), so "raised unexpected" means a delivery was dropped.
    failed_tasks = [line for line in stack.tail("worker", 100_000).splitlines() if "raised unexpected" in line]
    assert not failed_tasks, failed_tasks[:3]

    # The events: one per outcome, each on the stream at least once.
    assert len(view.outbox) == len(view.ingestions)
    assert all(view.outbox.values())
    assert set(ids) == set(view.outbox), "the stream and the outbox disagree"

    # The files.
    assert not processing_files(stack)
    assert not inbox_files(stack), [p.name for p in inbox_files(stack)][:5]
    for item in inputs:
        if item.expect == "failed":
            kept = stack.failed / item.name
            assert kept.read_bytes() == item.data
            report = json.loads((stack.failed / f"{item.name}.error.json").read_text())
            assert report["reason"] == item.reason
        else:
            assert (stack.archive / item.name).read_bytes() == item.data, item.name
    archived = _files(stack.archive)
    assert len(archived) == sum(1 for i in inputs if i.expect == "document"), "stray files in the archive"

    result = Accounting(
        stored=statuses["stored"],
        duplicate=statuses["duplicate"],
        failed=statuses["failed"],
        events=len(set(ids)),
        stream_entries=len(ids),
        seconds=seconds,
    )
    print(
        f"accounted for {len(inputs)} inputs in {seconds:.1f}s: {result.counts} stored/duplicate/failed, "
        f"{result.events} events, {result.repeats} repeated stream entries"
    )
    stack.check_alive()
    if probe:
        assert_recovers(stack)
    return result


def assert_recovers(stack: Stack, timeout: float = 60.0) -> None:
    """The processes are alive and a new file is stored, announced and archived."""
    stack.check_alive()
    name = f"probe-{uuid.uuid4().hex[:8]}.txt"
    stack.drop(name, article(random.Random(name), 0))
    stack.wait_for_events(1, timeout=timeout, type=STORED, data__filename=name)
    stack.wait_for((stack.archive / name).exists, timeout=timeout, what=f"{name} archived")


# -- processes ------------------------------------------------------------------------------------
def worker_children(stack: Stack) -> list[psutil.Process]:
    """The prefork pool processes of the stack's worker."""
    return list(psutil.Process(stack.procs["worker"].pid).children())


def kill_worker_children(stack: Stack) -> list[int]:
    pids = []
    for child in worker_children(stack):
        with contextlib.suppress(psutil.NoSuchProcess):
            child.send_signal(signal.SIGKILL)
            pids.append(child.pid)
    return pids


def supervised(supervisor_pid: int, command: str, *, other_than: int = 0) -> psutil.Process | None:
    """The child of ``seedworker run`` running ``worker.cli <command>``, if it runs (and is
    not the process ``other_than``)."""
    for child in psutil.Process(supervisor_pid).children():
        with contextlib.suppress(psutil.Error):
            argv = child.cmdline()
            alive = child.status() != psutil.STATUS_ZOMBIE and child.pid != other_than
            at = argv.index("worker.cli") if "worker.cli" in argv else -1  # python [-P] -m worker.cli <command>
            if at > 0 and argv[at - 1] == "-m" and argv[at + 1 : at + 2] == [command] and alive:
                return child
    return None


def restart(stack: Stack, name: str) -> None:
    args = {
        "worker": ("worker", "--concurrency=2", f"--node-name=w1@{stack.root.name}"),
        "publisher": ("publish",),
        "watcher": ("watch", "--watcher-id=test-watcher"),
    }[name]
    stack.start(name, *args)
    if name == "worker":
        stack.wait_for_worker(timeout=120)


def unacked(stack: Stack) -> int:
    """Messages a worker took and has not acknowledged (kombu's ``unacked`` hash)."""
    client = stack.redis()
    try:
        return int(client.hlen("unacked"))
    finally:
        client.close()


def files_sent(stack: Stack) -> int:
    """Files the watcher has sent to the broker, by its ``sent`` log lines (one file for
    ``seedworker.ingest``, ``files`` for a batch).  Claimed is not sent: the watcher claims a
    batch of files, emptying the inbox, before it sends them."""
    sent = 0
    for line in stack.tail("watcher", 1_000_000).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "sent":
            sent += int(record.get("files", 1))
    return sent


# -- a Redis of the test's own ----------------------------------------------------------------------
@contextlib.contextmanager
def private_redis(appendfsync: str = "everysec") -> Iterator[EmbeddedRedis]:
    """An embedded Redis only this test uses (so stopping it hurts no other test), on a unix
    socket in a short directory: the URL stays the same across restarts."""
    directory = Path(tempfile.mkdtemp(prefix="swchaos", dir="/tmp"))
    server = EmbeddedRedis(directory, appendfsync)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def redis_ping(url: str) -> bool:
    try:
        client = connect(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


# -- an unavailable database -----------------------------------------------------------------------
_SQLITE_LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    """
)


@contextlib.contextmanager
def database_locked(database_url: str) -> Iterator[None]:
    """Every store transaction blocks while the block runs.

    SQLite: another process holds ``BEGIN EXCLUSIVE`` (workers wait in their ``BEGIN
    IMMEDIATE``, up to the busy timeout, then retry).  PostgreSQL: a transaction holds
    ``ACCESS EXCLUSIVE`` locks on ``ingestions`` and ``outbox``, which every write reads first.
    """
    if make_url(database_url).get_backend_name() != "sqlite":
        with postgres_table_locked(database_url, "ingestions, outbox", "ACCESS EXCLUSIVE"):
            yield
        return
    path = make_url(database_url).database
    assert path
    proc = subprocess.Popen(
        [sys.executable, "-c", _SQLITE_LOCKER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "locked"
        yield
        proc.stdin.write("release\n")
        proc.stdin.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def postgres_unavailable(database_url: str, admin_url: str) -> Iterator[None]:
    """The test's PostgreSQL database refuses connections and every open one is terminated;
    connections are allowed again when the block ends."""
    import psycopg

    name = make_url(database_url).database
    admin = psycopg.connect(admin_url, autocommit=True)
    try:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        yield
    finally:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()


@contextlib.contextmanager
def postgres_table_locked(database_url: str, table: str, mode: str) -> Iterator[None]:
    """Hold ``LOCK TABLE <table> IN <mode> MODE`` in an open transaction for the block."""
    import psycopg

    conn = psycopg.connect(make_url(database_url).render_as_string(hide_password=False))
    try:
        conn.execute(f"LOCK TABLE {table} IN {mode} MODE")
        yield
    finally:
        conn.rollback()
        conn.close()
