"""Many processes on one machine, the way several machines would run them: two watchers on
one inbox (different watcher ids), three worker processes with different node names, one
publisher, PostgreSQL.  2,000 generated files (distinct articles, exact copies of some of
them, and files that must fail) are each stored, deduplicated or failed exactly once, and
every outcome is published exactly once per event id.

NER is off (the fast profile) so the run stays within a few minutes on a loaded 2-core box.
``TEST_SCALE_FILES`` makes a smaller run for a quick check (the default is the issue's 2,000).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.corpus import generate
from tests.support.stack import Stack, count_rows, files_under
from worker.store.engine import make_engine
from worker.store.schema import Document, Duplicate, Failure, Ingestion, OutboxRow

pytestmark = pytest.mark.e2e

FILES = int(os.environ.get("TEST_SCALE_FILES", "2000"))
WORKERS = ("w1", "w2", "w3")
WATCHERS = ("watcher-a", "watcher-b")


def _unpublished(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None))
            return int(conn.scalar(query) or 0)
    finally:
        engine.dispose()


@pytest.fixture
def scale_stack(tmp_path: Path, broker_url: str, postgres_url: str) -> Iterator[Stack]:
    stack = Stack(
        tmp_path,
        broker_url,
        postgres_url,
        extra_env={"SEEDWORKER_NER_MODEL": "", "SEEDWORKER_KEYWORDS": "false", "SEEDWORKER_CONCURRENCY": "1"},
    )
    stack.inbox.mkdir(parents=True)
    try:
        for name in WORKERS:
            stack.start(name, "worker", f"--node-name={name}@scale", "--concurrency=1")
        stack.start("publisher", "publish")
        for name in WATCHERS:
            stack.start(name, "watch", f"--watcher-id={name}")
        stack.wait_for(lambda: _pinged(stack) == set(WORKERS), 120, what="three workers answering a ping")
        yield stack
    finally:
        stack.stop()


def _pinged(stack: Stack) -> set[str]:
    from worker.app import create_app
    from worker.settings import Settings

    app = create_app(Settings(_env_file=None), stack.broker_url)  # type: ignore[call-arg]
    replies = app.control.ping(timeout=1.0) or []
    return {name.split("@")[0] for reply in replies for name in reply}


def _stream_events(stack: Stack) -> list[dict[str, object]]:
    client = stack.redis()
    try:
        return [json.loads(fields[b"event"]) for _, fields in client.xrange(stack.stream)]
    finally:
        client.close()


@pytest.mark.timeout(900)
def test_two_watchers_three_workers_one_publisher_each_file_once(
    scale_stack: Stack, postgres_url: str, tmp_path: Path
) -> None:
    stack = scale_stack
    files, expected = generate(FILES)
    staging = tmp_path / "staging"
    staging.mkdir()
    for name, data in files.items():
        (staging / name).write_bytes(data)
    started = time.monotonic()
    for name in sorted(files, key=lambda n: random.Random(n).random()):  # copies interleave with originals
        os.rename(staging / name, stack.inbox / name)

    client = stack.redis()

    def all_published() -> bool:
        return client.exists(stack.stream) and int(client.xlen(stack.stream)) >= FILES

    stack.wait_for(all_published, 600, what=f"{FILES} events on the stream")
    elapsed = time.monotonic() - started
    settled = stack.wait_for(
        lambda: not files_under(stack.inbox),
        120,
        what="inbox and processing folders empty",
    )
    assert settled
    time.sleep(2)  # nothing more may arrive: a late duplicate delivery would show up now
    client.close()

    events = _stream_events(stack)
    ids = Counter(str(e["id"]) for e in events)
    assert len(events) == FILES, f"{len(events)} stream entries for {FILES} files"
    assert not [i for i, n in ids.items() if n > 1], "an event id was published twice"
    by_file = Counter(str(e["data"]["filename"]) for e in events)  # type: ignore[index]
    assert set(by_file) == set(files) and set(by_file.values()) == {1}
    kinds = Counter(str(e["type"]).rsplit(".", 1)[-1] for e in events)
    assert kinds == expected

    assert count_rows(postgres_url, Document) == expected["stored"]
    assert count_rows(postgres_url, Duplicate) == expected["duplicate"]
    assert count_rows(postgres_url, Failure) == expected["failed"]
    assert count_rows(postgres_url, Ingestion) == FILES
    assert count_rows(postgres_url, OutboxRow) == FILES
    assert _unpublished(postgres_url) == 0

    archived = [p for p in stack.archive.rglob("*") if p.is_file()]
    failed = [p for p in stack.failed.rglob("*") if p.is_file() and not p.name.endswith(".error.json")]
    assert len(archived) == expected["stored"] + expected["duplicate"]
    assert len(failed) == expected["failed"]
    assert {p.name for p in archived} | {p.name for p in failed} == set(files)

    # The work really was shared: every worker and both watchers took part.
    workers = Counter(_log_lines(stack, "outcome", WORKERS))
    assert set(workers) == set(WORKERS), f"outcomes per worker: {dict(workers)}"
    print(
        f"\n{FILES} files in {elapsed:.1f}s ({FILES / elapsed:.1f} files/s): {dict(kinds)}; "
        f"outcomes per worker {dict(workers)}"
    )
    for proc in stack.procs.values():
        assert proc.poll() is None


def _log_lines(stack: Stack, event: str, names: tuple[str, ...]) -> Iterator[str]:
    for name in names:
        for line in stack.logs[name].read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                if json.loads(line).get("event") == event:
                    yield name


def test_generated_files_are_what_the_scale_test_counts() -> None:
    files, expected = generate(200)
    assert len(files) == 200 and sum(expected.values()) == 200
    originals = {data for name, data in files.items() if name.startswith("article-")}
    assert len(originals) == expected["stored"]  # distinct bodies
    copies = [data for name, data in files.items() if name.startswith("copy-")]
    assert all(c in originals for c in copies)


def test_a_worker_on_another_machine_needs_no_shared_disk(tmp_path: Path, broker_url: str) -> None:
    """Watcher and publisher on "machine A", the worker on "machine B" with its own data
    directory and an inbox path that does not exist there: the file's bytes travel in the
    message and the outcome comes back through Redis."""
    database = f"sqlite:///{tmp_path / 'shared.db'}"  # the one shared service besides Redis
    machine_a = Stack(tmp_path / "a", broker_url, database)
    machine_b = Stack(tmp_path / "b", broker_url, database, extra_env={"SEEDWORKER_NER_MODEL": ""})
    machine_a.inbox.mkdir(parents=True)
    machine_b.root.mkdir(parents=True)
    try:
        machine_b.start("worker", "worker", "--concurrency=1", "--node-name=b@machine-b")
        machine_a.start("publisher", "publish")
        machine_a.start("watcher", "watch", "--watcher-id=machine-a")
        machine_b.wait_for_worker(120)
        files, _ = generate(40)
        machine_a.drop("remote.txt", files["article-00000.txt"])
        machine_a.drop("remote-copy.txt", files["article-00000.txt"])
        events = machine_a.wait_for_events(2, 120)
        assert sorted(str(e["type"]).rsplit(".", 1)[-1] for e in events) == ["duplicate", "stored"]
        machine_a.wait_for(lambda: len(list(machine_a.archive.rglob("*.txt"))) == 2, 60, what="both archived on A")
    finally:
        machine_a.stop()
        machine_b.stop()
    assert not machine_b.inbox.exists(), "the worker looked for an inbox"
    on_b = [p.relative_to(machine_b.root) for p in machine_b.root.rglob("*") if p.is_file()]
    assert all(p.suffix == ".log" or p.parts[0] != "inbox" for p in on_b)
    assert not [p for p in on_b if p.name.endswith(".txt")], f"document files on the worker's machine: {on_b}"
