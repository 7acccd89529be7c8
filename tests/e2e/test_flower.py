"""Flower as a real process against the stack's broker: it sees the workers and the tasks,
with short arguments and short results; with basic auth it refuses anonymous API calls."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE
from tests.stack import Stack
from worker.errors import ConfigError
from worker.services import flower_command
from worker.settings import Settings

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, auth: str | None = None) -> Any:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def flower_stack(tmp_path: Path, broker_url: str) -> Iterator[tuple[Stack, str]]:
    port = _free_port()
    stack = Stack(
        tmp_path,
        broker_url,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        extra_env={"SEEDWORKER_FLOWER_PORT": str(port), "SEEDWORKER_FLOWER_BASIC_AUTH": "ops:s3cret-pw"},
    )
    stack.start("flower", "flower")  # before the worker, so Flower sees every task event
    stack.start_all()
    yield stack, f"http://127.0.0.1:{port}"
    stack.stop()


def test_flower_shows_workers_and_short_task_lines(flower_stack: tuple[Stack, str]) -> None:
    stack, base = flower_stack
    deadline = time.monotonic() + 30
    while True:
        try:
            _get(f"{base}/api/workers", auth="ops:s3cret-pw")
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)

    with pytest.raises(urllib.error.HTTPError) as denied:
        _get(f"{base}/api/workers")
    assert denied.value.code == 401

    shutil.copy(EXAMPLE, stack.inbox / "article.txt")
    stack.wait_for_events(1)

    def done_task() -> dict[str, Any] | None:
        tasks = _get(f"{base}/api/tasks", auth="ops:s3cret-pw")
        found = [t for t in tasks.values() if t.get("name") == "seedworker.ingest" and t.get("state") == "SUCCESS"]
        return found[0] if found else None

    task = stack.wait_for(done_task, 30, what="the ingest task in Flower")
    assert task["args"].startswith("article.txt (") and "sha256:" in task["args"]
    assert len(task["args"]) < 80 and "President" not in json.dumps(task)
    assert task["result"].strip("'\"").startswith("stored doc_")

    assert str(task["worker"]).startswith("w1@")  # Flower knows the worker from its task events
    assert "s3cret-pw" not in stack.tail("flower", 400)


def test_flower_refuses_public_address_without_auth(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, flower_address="0.0.0.0")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="without SEEDWORKER_FLOWER_BASIC_AUTH"):
        flower_command(settings, "redis://127.0.0.1:1/0")


def test_flower_secrets_stay_out_of_its_command_line(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, flower_basic_auth="a:b")  # type: ignore[call-arg]
    argv, env = flower_command(settings, "redis://:pw@127.0.0.1:1/0")
    assert "pw" not in " ".join(argv) and "a:b" not in " ".join(argv)
    assert env["FLOWER_BASIC_AUTH"] == "a:b" and env["CELERY_BROKER_URL"].startswith("redis://:pw@")
    assert argv[:3] == [sys.executable, "-m", "celery"]  # the same interpreter as seedworker
