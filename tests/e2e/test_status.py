"""`seedworker status` and `seedworker health` as an operator runs them: separate processes
against a real stack (worker, publisher, watcher), then with parts missing or unreachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import free_port
from tests.support.paths import REPO
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env(tmp_path: Path, broker_url: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env.update(
        {
            "SEEDWORKER_DATA_DIR": str(tmp_path / "data"),
            "SEEDWORKER_BROKER_URL": broker_url,
            "SEEDWORKER_DATABASE_URL": database_url,
            "PYTHONPATH": str(REPO),
        }
    )
    return env


@pytest.fixture
def stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path, broker_url, database_url, extra_env={"SEEDWORKER_NER_MODEL": ""}).start_all(concurrency=1)
    yield s
    s.stop()


def test_status_and_health_of_a_running_stack(stack: Stack) -> None:
    for n in range(2):
        stack.drop(f"story-{n}.txt", f"Story {n}: the harbour of town {n} reopened after repairs.\n".encode())
    stack.wait_for_events(2, type="org.seedworker.document.stored", timeout=120)
    stack.drop("again.txt", b"Story 0: the harbour of town 0 reopened after repairs.\n")
    stack.drop("nothing.txt", b"")
    stack.wait_for_events(4, timeout=120)

    env = stack.env()
    result = _cli(env, stack.root, "status", "--json", "--timeout", "1.5")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == {}
    [worker] = report["workers"]
    assert (
        worker["name"] == f"w1@{stack.root.name}" and worker["processes"] == 1 and worker["tasks_done"] >= 1
    )  # the watcher may batch files
    expected = {"stored": 2, "duplicate": 1, "failed": 1}
    assert report["documents"]["all_time"] == expected
    assert report["documents"]["last_hour"] == expected
    # Celery's default queue is consumed too; webhook deliveries have a queue of their own.
    assert report["queues"] == {"celery": 0, "seedworker": 0, "seedworker.webhooks": 0}
    assert report["stream"] == {"name": stack.stream, "length": 4}
    assert report["outbox"] == {"unpublished": 0, "held": 0, "oldest_age_seconds": 0.0}

    table = _cli(env, stack.root, "status", "--timeout", "1.5")
    assert table.returncode == 0, table.stderr
    assert f"w1@{stack.root.name}" in table.stdout and "duplicate" in table.stdout

    healthy = _cli(env, stack.root, "health")
    assert healthy.returncode == 0, healthy.stderr
    assert f"worker w1@{stack.root.name} answered" in healthy.stdout

    # the publisher is a separate process: the outbox lag shows in status
    stack.kill("publisher")
    stack.procs.pop("publisher")
    stack.drop("late.txt", b"A late story about the lighthouse.\n")
    lag = stack.wait_for(
        lambda: (r := json.loads(_cli(env, stack.root, "status", "--json").stdout))["outbox"]["unpublished"] and r,
        timeout=120,
        what="an unpublished event in status",
    )
    assert lag["outbox"]["unpublished"] == 1 and lag["outbox"]["oldest_age_seconds"] >= 0


def test_health_without_workers(tmp_path: Path, broker_url: str) -> None:
    env = _env(tmp_path, broker_url, f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = _cli(env, tmp_path, "health", "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["no worker answered a ping within 1s"]
    probe = _cli(env, tmp_path, "health", "--no-workers")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("ok: broker")


def test_health_and_status_with_the_broker_on_a_closed_port(tmp_path: Path) -> None:
    env = _env(tmp_path, f"redis://127.0.0.1:{free_port()}/0", f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = _cli(env, tmp_path, "health")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("broker unreachable:") and "onnection refused" in lines[0]
    assert lines[1] == "workers unknown: the broker is unreachable"
    assert len(lines) == 2  # the database answered
    status = _cli(env, tmp_path, "status", "--json")
    assert status.returncode == 1
    assert "broker" in json.loads(status.stdout)["errors"]


def test_health_with_the_database_unreachable(tmp_path: Path, broker_url: str) -> None:
    env = _env(tmp_path, broker_url, f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    result = _cli(env, tmp_path, "health", "--no-workers", "--timeout", "2")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("database unreachable: OperationalError")
