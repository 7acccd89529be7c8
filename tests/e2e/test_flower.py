"""Flower as a real process against the stack's broker, behind a URL prefix and basic auth:
it lists the workers (from inspect replies and from task events) and the tasks, with short
arguments and short results; anonymous API calls are refused; its state persists in the
data directory.  (The command it is started with: tests/unit/test_flower_command.py.)
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import free_port
from tests.support.paths import EXAMPLE
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def _get(url: str, auth: str | None = None) -> Any:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


PREFIX = "ops/flower"
AUTH = "ops:s3cret-pw"


@pytest.fixture
def flower_stack(tmp_path: Path, broker_url: str) -> Iterator[tuple[Stack, str]]:
    port = free_port()
    stack = Stack(
        tmp_path,
        broker_url,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        extra_env={
            "SEEDWORKER_FLOWER_PORT": str(port),
            "SEEDWORKER_FLOWER_BASIC_AUTH": AUTH,
            "SEEDWORKER_FLOWER_URL_PREFIX": PREFIX,
        },
    )
    stack.start("flower", "flower")  # before the worker, so Flower sees every task event
    stack.start_all()
    yield stack, f"http://127.0.0.1:{port}/{PREFIX}"
    if stack.procs["flower"].poll() is None:
        stack.kill("flower", signal.SIGTERM)  # Flower saves its state on SIGTERM
    stack.stop()


def _wait_until_up(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _get(f"{base}/api/workers?status=1", auth=AUTH)
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_flower_shows_workers_and_short_task_lines(flower_stack: tuple[Stack, str]) -> None:
    stack, base = flower_stack
    _wait_until_up(base)

    with pytest.raises(urllib.error.HTTPError) as denied:
        _get(f"{base}/api/workers")
    assert denied.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as elsewhere:  # only under the prefix
        _get(base.replace(f"/{PREFIX}", "") + "/api/workers", auth=AUTH)
    assert elsewhere.value.code == 404

    shutil.copy(EXAMPLE, stack.inbox / "article.txt")
    stack.wait_for_events(1)

    def done_task() -> dict[str, Any] | None:
        tasks = _get(f"{base}/api/tasks", auth="ops:s3cret-pw")
        found = [t for t in tasks.values() if t.get("name") == "seedworker.ingest" and t.get("state") == "SUCCESS"]
        return found[0] if found else None

    task = stack.wait_for(done_task, 30, what="the ingest task in Flower")
    assert task["args"].startswith("article.txt (") and "sha256:" in task["args"]
    assert len(task["args"]) < 80 and "President" not in json.dumps(task)
    assert task["result"].strip("'\"").startswith("article.txt: stored doc_")

    assert str(task["worker"]).startswith("w1@")  # Flower knows the worker from its task events
    node = str(task["worker"])

    # /api/workers answers from Flower's inspect cache, which is empty until a refresh when the
    # worker started after Flower; ?refresh=1 asks the workers (broadcast over Redis) first
    # (mher/flower#1139: "Zero workers in GET /api/workers response").
    workers = stack.wait_for(
        lambda: _get(f"{base}/api/workers?refresh=1", auth=AUTH).get(node), 60, what="the worker in /api/workers"
    )
    assert workers["stats"]["pool"]["max-concurrency"] == 2
    assert [q["name"] for q in workers["active_queues"]] == ["celery", "seedworker"]  # and Celery's default queue
    assert "seedworker.ingest" in workers["registered"]
    assert _get(f"{base}/api/workers?status=1", auth=AUTH)[node] is True  # alive, from heartbeats
    with urllib.request.urlopen(f"{base}/healthcheck", timeout=10) as resp:  # no auth, for probes
        assert resp.read() == b"OK"

    stack.kill("flower", signal.SIGTERM)
    assert stack.procs["flower"].returncode == 0
    assert list((stack.root / "data").glob("flower.db*")), "Flower kept no state in the data directory"
    assert "s3cret-pw" not in stack.tail("flower", 400)


BODY_MARK = "Zebraquartz"  # a word in every body below: Flower must never show it
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00" + BODY_MARK.encode() + b"\x00" * 40


def _text(n: int) -> bytes:
    return (
        f"Harbour report {n}\n\n{BODY_MARK} ferries left the northern harbour on time number {n}. "
        "The council said the new timetable would hold through the winter season.\n"
    ).encode()


def test_flower_names_every_file_and_counts_failed_documents(flower_stack: tuple[Stack, str]) -> None:
    """Issue 18 §7: an operator finds any file by name in Flower (alone or inside a batch),
    sees its outcome and reason, failed documents are failed tasks (the Failed counter
    counts them), no body is ever shown, and nothing is redelivered or recorded twice."""
    import httpx

    from tests.support.stack import count_rows, files_under
    from worker.store.schema import Ingestion

    stack, base = flower_stack
    _wait_until_up(base)
    auth = tuple(AUTH.split(":", 1))

    def tasks(**params: str) -> dict[str, Any]:
        answer = httpx.get(f"{base}/api/tasks", params=params, auth=auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def finished(search: str) -> dict[str, Any] | None:
        found = [t for t in tasks(search=search).values() if t["state"] in ("SUCCESS", "FAILURE")]
        return found[0] if len(found) == 1 else None

    stack.drop("solo-good.txt", _text(1))
    stack.wait_for(lambda: finished("solo-good.txt"), 60, what="solo-good.txt in Flower")
    stack.drop("solo-bad.txt", BINARY)
    stack.wait_for(lambda: finished("solo-bad.txt"), 60, what="solo-bad.txt in Flower")
    batch = {"batch-a.txt": _text(2), "batch-b.txt": _text(3), "batch-bin.txt": BINARY + b"2", "batch-c.txt": _text(4)}
    staging = stack.root / "staging" / "burst"
    staging.mkdir(parents=True)
    for name, data in batch.items():
        (staging / name).write_bytes(data)
    # One folder renamed in: the watcher finds its files together and sends them as one batch.
    staging.rename(stack.inbox / "burst")
    stack.wait_for_events(6, timeout=60)
    found = {name: stack.wait_for(partial(finished, name), 60, what=f"{name} in Flower") for name in batch}

    good = finished("solo-good.txt")
    assert good is not None and good["state"] == "SUCCESS"
    assert good["result"].strip("'\"").startswith("solo-good.txt: stored doc_")
    bad = finished("solo-bad.txt")
    assert bad is not None and bad["state"] == "FAILURE", bad
    assert "solo-bad.txt: failed: binary" in bad["exception"] and bad["args"].startswith("solo-bad.txt (")

    in_batch = found["batch-bin.txt"]
    assert in_batch["name"] == "seedworker.ingest_batch" and in_batch["state"] == "FAILURE"
    assert "batch-bin.txt: failed: binary" in in_batch["exception"]
    together = [name for name, task in found.items() if task == in_batch]
    assert len(together) >= 2, found  # a batch, found by each of its files
    for name in together:
        assert name in in_batch["args"]
        if name != "batch-bin.txt":  # its neighbours' outcomes too
            assert f"{name}: stored doc_" in in_batch["exception"], name
    others = {task["uuid"]: task for name, task in found.items() if name not in together}
    assert all(t["state"] == "SUCCESS" for t in others.values())

    info = httpx.get(f"{base}/api/task/info/{in_batch['uuid']}", auth=auth, timeout=10).json()
    assert info["state"] == "FAILURE" and "batch-bin.txt" in info["exception"]
    assert tasks(state="FAILURE").keys() == {bad["uuid"], in_batch["uuid"]}
    everything = json.dumps(tasks()) + json.dumps(info)
    assert BODY_MARK.lower() not in everything.lower(), "Flower shows a document body"
    assert not [n for n, d in batch.items() if base64.b64encode(d)[:24].decode() in everything], "body in base64"

    dashboard = httpx.get(f"{base}/workers", params={"json": "1"}, auth=auth, timeout=10).json()["data"]
    assert sum(w.get("task-failed", 0) for w in dashboard) == 2, dashboard  # the Failed column
    assert sum(w.get("task-succeeded", 0) for w in dashboard) == 1 + len(others), dashboard

    # Failed tasks are acknowledged, not redelivered, and nothing was recorded twice.
    time.sleep(3)
    assert count_rows(stack.database_url, Ingestion) == 6
    client = stack.redis()
    try:
        assert client.hlen("unacked") == 0 and client.llen("seedworker") == 0
    finally:
        client.close()
    assert "raised unexpected" not in stack.tail("worker", 5000)
    failed = sorted(p.name for p in files_under(stack.failed) if not p.name.endswith(".error.json"))
    assert failed == ["batch-bin.txt", "solo-bad.txt"]


def test_flower_shows_no_body_in_chain_mode(tmp_path: Path, broker_url: str) -> None:
    """SEEDWORKER_PIPELINE=chain: the stages pass the document from task to task; Flower shows
    each stage's file summary as its arguments and nothing of the document as its result."""
    import httpx

    port = free_port()
    env = {"SEEDWORKER_FLOWER_PORT": str(port), "SEEDWORKER_FLOWER_BASIC_AUTH": AUTH, "SEEDWORKER_PIPELINE": "chain"}
    stack = Stack(tmp_path, broker_url, f"sqlite:///{tmp_path / 'db.sqlite'}", extra_env=env)
    stack.start("flower", "flower")
    stack.start_all()
    try:
        base = f"http://127.0.0.1:{port}"
        auth = tuple(AUTH.split(":", 1))
        body = _text(7)
        stack.drop("chained.txt", body)
        stack.wait_for_events(1, timeout=90)

        def stages() -> dict[str, Any] | None:
            found = httpx.get(f"{base}/api/tasks", auth=auth, timeout=10).json()
            names = {t["name"] for t in found.values() if t["state"] == "SUCCESS"}
            return found if {"seedworker.normalise", "seedworker.tag", "seedworker.store"} <= names else None

        found = stack.wait_for(stages, 60, what="the chain's stages in Flower")
        shown = json.dumps(found)
        assert BODY_MARK.lower() not in shown.lower(), "Flower shows the document body"
        assert base64.b64encode(body)[:24].decode() not in shown, "Flower shows the body, in base64"
        for task in found.values():
            if task["name"] in ("seedworker.normalise", "seedworker.tag", "seedworker.store"):
                assert task["args"].startswith("chained.txt ("), task
    finally:
        if stack.procs["flower"].poll() is None:
            stack.kill("flower", signal.SIGTERM)
        stack.stop()
