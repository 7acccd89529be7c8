"""The chaos suite: real processes, real faults, and after each one the same question
(``account_for``): is every input file exactly once in the store, every outcome on the
stream, nothing stuck, and does the stack still work without a hand on it?

The fault matrix (fault -> mechanism that saves the document -> test) is docs/chaos.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.support.databases import IN_CI, POSTGRES_URL
from tests.support.faults import (
    FAST,
    Input,
    account_for,
    article,
    claim_keys_on_disk,
    count_ingestions,
    database_locked,
    drop_all,
    expected_counts,
    files_sent,
    kill_worker_children,
    make_inputs,
    postgres_table_locked,
    postgres_unavailable,
    private_redis,
    processing_files,
    read_store,
    redis_ping,
    restart,
    stream_ids,
    supervised,
    unacked,
    worker_children,
)
from tests.support.stack import Stack

# Each test is bounded: account_for waits at most its timeout (then fails with the processes'
# logs), and pytest-timeout stops anything else that hangs.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(tmp_path: Path, database_url: str) -> Iterator[StackFactory]:
    """Start a stack (fast profile unless told otherwise) on the test's database."""
    started: list[Stack] = []

    def start(broker_url: str, *, env: dict[str, str] | None = None, processes: str = "all") -> Stack:
        stack = Stack(tmp_path, broker_url, database_url, extra_env={**FAST, **(env or {})})
        started.append(stack)
        if processes == "all":
            return stack.start_all()
        stack.inbox.mkdir(parents=True, exist_ok=True)
        for name in processes.split(","):
            restart(stack, name)
        return stack

    yield start
    for stack in started:
        stack.stop()


def _sqlite_only(database_url: str, why: str) -> None:
    """Faults of the broker, the watcher or the folder: the database plays no part, SQLite is enough."""
    if not database_url.startswith("sqlite"):
        pytest.skip(why)


def _wait_ingested(stack: Stack, at_least: int, timeout: float = 90.0) -> int:
    return int(
        stack.wait_for(
            lambda: (n := count_ingestions(stack.database_url)) >= at_least and n,
            timeout=timeout,
            what=f"{at_least} ingestions",
        )
    )


# -- the worker -------------------------------------------------------------------------------------
def test_worker_children_killed_mid_task_redeliver(make_stack: StackFactory, broker_url: str) -> None:
    """SIGKILL both pool processes while each runs a task (held inside its store transaction by a
    database lock, so the kill lands mid-task for certain): reject_on_worker_lost requeues both."""
    stack = make_stack(broker_url)
    inputs = make_inputs(40, prefix="kid")
    with database_locked(stack.database_url):
        drop_all(stack, inputs)
        stack.wait_for(lambda: unacked(stack) >= 2, timeout=60, what="both children holding a task")
        before = {p.pid for p in worker_children(stack)}
        killed = kill_worker_children(stack)
    assert set(killed) == before and len(killed) == 2
    result = account_for(stack, inputs, timeout=150)
    assert not before & {p.pid for p in worker_children(stack)}, "the pool replaced its killed children"
    assert "WorkerLostError" in stack.tail("worker", 2000)
    assert result.counts == expected_counts(inputs)


def test_worker_killed_holding_tasks_visibility_timeout_returns_them(
    make_stack: StackFactory, broker_url: str, database_url: str
) -> None:
    """SIGKILL the whole worker (main process and pool) while it holds unacknowledged tasks;
    a restarted worker restores them from kombu's ``unacked`` hash once the (short) visibility
    timeout has passed."""
    _sqlite_only(database_url, "the broker, not the database, brings the messages back")
    stack = make_stack(broker_url, env={"SEEDWORKER_VISIBILITY_TIMEOUT": "5"})
    inputs = make_inputs(40, prefix="held")
    with database_locked(stack.database_url):
        drop_all(stack, inputs)
        stack.wait_for(lambda: unacked(stack) >= 2, timeout=60, what="the worker holding tasks")
        stack.kill("worker")
    assert unacked(stack) >= 2, "the killed worker's messages must still be unacknowledged"
    restart(stack, "worker")
    result = account_for(stack, inputs, timeout=180)
    assert unacked(stack) == 0
    assert result.counts == expected_counts(inputs)


def test_worker_stopped_with_sigterm_hands_its_tasks_back(
    make_stack: StackFactory, broker_url: str, database_url: str
) -> None:
    """SIGTERM the worker's main process (as systemd's KillMode=mixed, docker stop and
    Kubernetes send it) while both pool processes are stuck in a task on a locked database.
    SIGTERM is Celery's warm shutdown: the worker takes nothing new and waits for the running
    tasks, which end when their SQLite busy timeout (30 s) expires, as a retry (a new message
    on the queue, the old one acknowledged).  So the worker exits holding nothing, and a
    restarted worker finishes every file (the one-hour visibility timeout plays no part)."""
    _sqlite_only(database_url, "the broker, not the database, brings the messages back")
    stack = make_stack(broker_url)
    inputs = make_inputs(40, prefix="term")
    with database_locked(stack.database_url):
        drop_all(stack, inputs)
        stack.wait_for(lambda: unacked(stack) >= 2, timeout=60, what="both children holding a task")
        started = time.monotonic()
        stack.kill("worker", signal.SIGTERM, timeout=90, group=False)  # systemd's TimeoutStopSec for the worker unit
        print(f"worker stopped {time.monotonic() - started:.1f} s after SIGTERM")
        assert unacked(stack) == 0, "a stopping worker hands back what it holds"
    restart(stack, "worker")
    result = account_for(stack, inputs, timeout=150)
    assert result.counts == expected_counts(inputs)


def test_task_outliving_visibility_timeout_runs_twice_stores_once(
    make_stack: StackFactory, broker_url: str, database_url: str
) -> None:
    """Tasks blocked longer than a 2 s visibility timeout are handed out again while the first
    delivery still runs (faults.md: kombu 337, Celery 4400); the later deliveries find the
    ingestion rows and write nothing.  On PostgreSQL both copies may race for the same key."""
    stack = make_stack(broker_url, env={"SEEDWORKER_VISIBILITY_TIMEOUT": "2"})
    inputs = make_inputs(40, prefix="vis", duplicate_every=0, failed_every=0)
    client = stack.redis()
    with database_locked(database_url):
        drop_all(stack, inputs)
        # Every file sent (not only claimed), so the queue grows after this only by kombu's restore.
        stack.wait_for(
            lambda: unacked(stack) >= 2 and files_sent(stack) >= len(inputs), timeout=60, what="all sent, 2 held"
        )
        queued = client.llen("seedworker")
        # kombu's restore scan (every 10 s) puts the held messages back on the queue.
        stack.wait_for(lambda: client.llen("seedworker") > queued, timeout=60, what="a redelivery")
    client.close()
    result = account_for(stack, inputs, timeout=150)
    # The documents are all stored once the first deliveries finish; the copies put back on the
    # queue run after that (on a slow machine, after account_for returns): wait for them.
    stack.wait_for(lambda: '"replayed": true' in stack.tail("worker", 5000), timeout=60, what="a replayed delivery")
    replays = stack.tail("worker", 5000).count('"replayed": true')
    print(f"{replays} replayed deliveries")
    assert replays >= 1, "some message must have been delivered twice"
    assert result.counts == expected_counts(inputs) and result.events == len(inputs)


# -- the watcher ------------------------------------------------------------------------------------
def test_watcher_killed_between_claim_and_enqueue_resends_same_key(make_stack: StackFactory, database_url: str) -> None:
    """With the broker down the watcher claims nothing (the files wait in the inbox, issue 19
    §4).  Once it answers, SIGKILL the watcher while claims are on disk, some perhaps not yet
    sent: the restarted watcher finds them and sends them with the keys they were claimed
    under (so a claim that had been sent is never stored twice)."""
    _sqlite_only(database_url, "a watcher fault")
    with private_redis() as server:
        stack = make_stack(server.url)
        inputs = make_inputs(120, prefix="claim", duplicate_every=0, failed_every=0)
        server.stop()
        drop_all(stack, inputs)
        time.sleep(3.0)
        assert not claim_keys_on_disk(stack), "nothing is claimed while the broker is down"
        server.start()
        stack.wait_for(lambda: len(claim_keys_on_disk(stack)) >= 2, timeout=120, what="claims once the broker is back")
        stack.kill("watcher")
        keys = claim_keys_on_disk(stack)
        assert len(keys) >= 2
        restart(stack, "watcher")
        account_for(stack, inputs, timeout=180)
        # The watcher's keys are claim:<claim id>.<token> (docs/delivery.md): compare the claims.
        ingested = {row["key"].rsplit(".", 1)[0] for row in read_store(stack.database_url).ingestions}
        assert keys <= ingested, "recovered claims must keep their idempotency keys"


def test_watcher_killed_repeatedly_during_a_burst(make_stack: StackFactory, broker_url: str, database_url: str) -> None:
    """SIGKILL the watcher three times while it claims and sends a burst of 300 files."""
    _sqlite_only(database_url, "a watcher fault")
    stack = make_stack(broker_url)
    inputs = make_inputs(300, prefix="burst")
    left_behind = []
    for round_ in range(3):
        if round_ == 0:
            drop_all(stack, inputs)
        stack.wait_for(lambda: processing_files(stack), timeout=60, what="the watcher claiming")
        time.sleep(0.1 * round_)  # land each kill at a different point of the burst
        stack.kill("watcher")
        left_behind.append(len(claim_keys_on_disk(stack)))
        restart(stack, "watcher")
    assert any(left_behind), f"no kill left a claim behind: {left_behind}"
    result = account_for(stack, inputs, timeout=180)
    assert result.stored + result.duplicate + result.failed == 300


# -- the publisher ----------------------------------------------------------------------------------
def test_publisher_killed_mid_batch_republishes_same_ids(
    make_stack: StackFactory, broker_url: str, database_url: str
) -> None:
    """SIGKILL the publisher after it XADDed a batch and before it marked the rows published.

    PostgreSQL: a lock on ``outbox`` lets the publisher read and XADD but blocks its UPDATE, so
    the kill lands exactly in that window and the restart must repeat events with the same ids.
    SQLite: the kill lands as soon as the first entries reach the stream."""
    postgres = not database_url.startswith("sqlite")
    batch = 25 if postgres else 10
    stack = make_stack(broker_url, env={"SEEDWORKER_PUBLISH_BATCH": str(batch)}, processes="worker,watcher")
    inputs = make_inputs(80 if postgres else 300, prefix="pub")
    drop_all(stack, inputs)
    _wait_ingested(stack, len(inputs), timeout=120)
    lock = postgres_table_locked(database_url, "outbox", "EXCLUSIVE") if postgres else contextlib.nullcontext()
    client = stack.redis()
    with lock:
        restart(stack, "publisher")
        deadline = time.monotonic() + 60
        while not client.xlen(stack.stream) and time.monotonic() < deadline:
            time.sleep(0.002)
        stack.kill("publisher")
    client.close()
    on_stream = len(set(stream_ids(stack)))
    unpublished = sum(1 for done in read_store(stack.database_url).outbox.values() if not done)
    assert unpublished > 0, "the kill must land before the outbox was drained"
    if postgres:
        assert unpublished == len(inputs) and on_stream == batch, (unpublished, on_stream)
    restart(stack, "publisher")
    result = account_for(stack, inputs, timeout=120)
    print(
        f"publisher killed with {on_stream} events on the stream, {unpublished} rows unpublished; "
        f"{result.repeats} repeated entries after the restart"
    )
    if postgres:
        assert result.repeats >= batch, "the unmarked batch is published again, with the same ids"


# -- the broker -------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
def test_redis_restarted_mid_ingest(make_stack: StackFactory, database_url: str, how: str) -> None:
    """Stop the embedded Redis (SHUTDOWN, or SIGKILL with ``appendfsync always``) while files are
    being processed, start it again on the same socket: the AOF kept the queue, the unacked
    messages, the reply lists and the stream, and every process reconnects by itself."""
    if how == "sigkill":
        _sqlite_only(database_url, "the broker fault does not depend on the database")
    appendfsync = "always" if how == "sigkill" else "everysec"
    with private_redis(appendfsync) as server:
        # A message a worker had taken (BRPOP) but not yet recorded as unacknowledged when Redis
        # stopped is in neither place: only the watcher's re-send brings it back (a CI run lost
        # one batch of 16 this way and waited for the 10-minute default).
        env = {"SEEDWORKER_VISIBILITY_TIMEOUT": "10", "SEEDWORKER_WATCH_RESEND_SECONDS": "30"}
        stack = make_stack(server.url, env=env)
        # Enough files that Redis stops mid-ingest, at the first outcome: the pipeline stores
        # 150 files in about the time one poll takes to see the first ten.
        inputs = make_inputs(300, prefix=f"redis{how}")
        drop_all(stack, inputs)
        done_before = _wait_ingested(stack, 1)
        if how == "shutdown":
            server.stop()
        else:
            server.kill()
        assert not redis_ping(stack.broker_url)
        time.sleep(2.0)  # an outage, not a blip
        server.start()
        result = account_for(stack, inputs, timeout=180)
        assert done_before < len(inputs), "the restart must land mid-ingest"
        assert result.stored + result.duplicate + result.failed == len(inputs)


# -- the database -----------------------------------------------------------------------------------
def test_database_unavailable_for_seconds(make_stack: StackFactory, broker_url: str, database_url: str) -> None:
    """SQLite: another process holds an exclusive lock for 6 s.  PostgreSQL: the database refuses
    connections and its open ones are terminated for 6 s.  Tasks wait or retry (StoreUnavailable),
    the publisher waits, and every file ends stored."""
    stack = make_stack(broker_url)
    inputs = make_inputs(60, prefix="db")
    # A third goes in before the outage and the rest during it, so the outage lands mid-ingest
    # however fast the stack is (all 60 were once stored before a poll saw the fifth).
    before, during = inputs[:20], inputs[20:]
    drop_all(stack, before)
    done_before = _wait_ingested(stack, 5)
    outage = (
        database_locked(database_url)
        if database_url.startswith("sqlite")
        else postgres_unavailable(database_url, POSTGRES_URL)
    )
    with outage:
        drop_all(stack, during)
        time.sleep(6.0)
    result = account_for(stack, inputs, timeout=150)
    assert done_before < len(inputs), "the outage must land mid-ingest"
    assert result.counts == expected_counts(inputs)


# -- floods -------------------------------------------------------------------------------------------
# 10,000 in CI; fewer on a developer machine shared with other work (CHAOS_FLOOD_FILES overrides;
# not a SEEDWORKER_ variable, which conftest removes).
FLOOD_FILES = int(os.environ.get("CHAOS_FLOOD_FILES", "10000" if IN_CI else "1000"))
FLOOD_SECONDS = max(150.0, FLOOD_FILES * 0.1)  # a bound, not a target: `make bench` measures speed


@pytest.mark.timeout(int(FLOOD_SECONDS) + 120)
def test_inbox_flooded_with_files_at_once(make_stack: StackFactory, broker_url: str, database_url: str) -> None:
    """FLOOD_FILES (10,000 in CI) files renamed into the inbox at once, fast profile. The
    watcher's back-pressure holds: never more than WATCH_MAX_IN_FLIGHT files claimed at once
    (the rest wait in the inbox), and yet everything is accounted for."""
    # The flood tests the watcher, the claims and the queue; PostgreSQL under load is the
    # 2,000-file multi-process test (tests/e2e/test_scale.py).
    _sqlite_only(database_url, "the flood is about the folder and the queue, not the database")
    max_in_flight = 300
    stack = make_stack(broker_url, env={"SEEDWORKER_WATCH_MAX_IN_FLIGHT": str(max_in_flight)})
    inputs = make_inputs(FLOOD_FILES, prefix="flood")
    claimed: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            claimed.append(len(claim_keys_on_disk(stack)))

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    drop_all(stack, inputs)
    sampler.start()
    try:
        result = account_for(stack, inputs, timeout=FLOOD_SECONDS)
    finally:
        done.set()
        sampler.join(timeout=10)
    elapsed = time.monotonic() - started
    print(
        f"flood: {FLOOD_FILES} files accounted for in {elapsed:.1f}s ({FLOOD_FILES / elapsed:.0f} files/s);"
        f" at most {max(claimed, default=0)} claimed at once"
    )
    assert result.counts == expected_counts(inputs)
    assert 0 < max(claimed) <= max_in_flight


# -- the watched folder -------------------------------------------------------------------------------
def test_files_renamed_and_deleted_while_watched(make_stack: StackFactory, broker_url: str, database_url: str) -> None:
    """Within the settle window files are renamed inside the inbox, moved out of it, deleted,
    replaced and appended to; afterwards exactly the files that remain are ingested, once,
    with their final names and contents."""
    _sqlite_only(database_url, "a watched-folder fault")
    stack = make_stack(broker_url, env={"SEEDWORKER_SETTLE_SECONDS": "1.5", "SEEDWORKER_STABLE_SECONDS": "1.5"})
    import random

    rng = random.Random(88)
    outside = stack.root / "outside"
    outside.mkdir()
    text = {name: article(rng, i) for i, name in enumerate("abcdefghijk")}
    inbox = stack.inbox

    stack.drop("a.txt", text["a"])
    os.rename(inbox / "a.txt", inbox / "a-renamed.txt")  # renamed inside the inbox
    stack.drop("b.txt", text["b"])
    os.remove(inbox / "b.txt")  # deleted
    stack.drop("c.txt", text["c"])
    os.rename(inbox / "c.txt", outside / "c.txt")  # moved out of the inbox
    stack.drop("d.txt", text["d"])
    stack.drop("e.txt", text["e"])
    os.replace(inbox / "e.txt", inbox / "d.txt")  # renamed over another file
    with (inbox / "f.txt").open("wb") as fh:  # written in chunks, slowly
        for chunk in (text["f"][:50], text["f"][50:120], text["f"][120:]):
            fh.write(chunk)
            fh.flush()
            time.sleep(0.3)
    (outside / "g.txt").write_bytes(text["g"])
    os.rename(outside / "g.txt", inbox / "g.txt")  # moved in from outside
    stack.drop("h.txt", text["h"])
    os.rename(inbox / "h.txt", inbox / "h-1.txt")  # renamed twice
    os.rename(inbox / "h-1.txt", inbox / "h-2.txt")
    stack.drop("i.txt", text["i"])
    os.rename(inbox / "i.txt", outside / "i.txt")  # out and back in under a new name
    os.rename(outside / "i.txt", inbox / "i-back.txt")
    stack.drop("j.txt", text["j"])
    os.remove(inbox / "j.txt")  # deleted and written again with other content
    stack.drop("j.txt", text["k"])

    inputs = [
        Input("a-renamed.txt", text["a"], "document", group="a"),
        Input("d.txt", text["e"], "document", group="e"),
        Input("f.txt", text["f"], "document", group="f"),
        Input("g.txt", text["g"], "document", group="g"),
        Input("h-2.txt", text["h"], "document", group="h"),
        Input("i-back.txt", text["i"], "document", group="i"),
        Input("j.txt", text["k"], "document", group="k"),
    ]
    account_for(stack, inputs, timeout=120)
    assert (outside / "c.txt").read_bytes() == text["c"], "a file moved out is left alone"
    events = {e["data"]["filename"] for e in stack.events()}
    assert not events & {"a.txt", "b.txt", "c.txt", "e.txt", "h.txt", "h-1.txt", "i.txt"}


# -- all of it, under the supervisor -----------------------------------------------------------------
def test_supervised_stack_heals_every_kill(tmp_path: Path, broker_url: str, database_url: str) -> None:
    """`seedworker run` as operators start it; SIGKILL its watcher, publisher and worker in turn
    during a burst.  Nobody restarts anything by hand: the supervisor does, and every file is
    accounted for."""
    _sqlite_only(database_url, "a process fault")
    stack = Stack(tmp_path, broker_url, database_url, extra_env={**FAST, "SEEDWORKER_VISIBILITY_TIMEOUT": "5"})
    stack.inbox.mkdir(parents=True, exist_ok=True)
    run = stack.start("run", "run", "--grace", "20")
    try:
        stack.wait_for_worker(timeout=120)
        inputs = make_inputs(200, prefix="sup")
        drop_all(stack, inputs)
        for name, command in (("watcher", "watch"), ("publisher", "publish"), ("worker", "worker")):
            child = stack.wait_for(partial(supervised, run.pid, command), timeout=60, what=f"a running {name}")
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            stack.wait_for(
                partial(supervised, run.pid, command, other_than=child.pid),
                timeout=60,
                what=f"the supervisor restarting the {name}",
            )
        result = account_for(stack, inputs, timeout=180)
        assert result.counts == expected_counts(inputs)
        assert stack.tail("run", 5000).count("process died, restarting") == 3
    finally:
        stack.kill("run", signal.SIGTERM)
