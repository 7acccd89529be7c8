"""Logs a collector can parse: a full ``seedworker run --flower`` in JSON mode (output not a
terminal) ingests a few files, delivers webhooks and stops; every line it wrote, from every
process (supervisor, worker, webhook worker, watcher, publisher, Flower), is one JSON object
with ``logger``, ``process`` and ``level``.  Client side: the standard library only.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import Receiver, free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

PROCESSES = {"supervisor", "worker", "webhooks", "watcher", "publisher", "flower"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _flower_up(url: str, auth: str) -> bool:
    request = urllib.request.Request(
        url, headers={"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_every_line_of_a_full_run_is_a_json_object(
    tmp_path: Path, broker_url: str, receiver: Receiver, example_bytes: bytes
) -> None:
    flower_port, auth = free_port(), "operator:contract-suite-password"
    stack = Stack(
        tmp_path,
        broker_url,
        f"sqlite:///{tmp_path / 'seedworker.db'}",
        extra_env={
            "SEEDWORKER_NER_MODEL": "",
            "SEEDWORKER_LOG_FORMAT": "json",
            "SEEDWORKER_FLOWER_PORT": str(flower_port),
            "SEEDWORKER_FLOWER_BASIC_AUTH": auth,
            "SEEDWORKER_WEBHOOKS": json.dumps([{"url": receiver.url("/hook?token=x"), "secret": "s"}]),
        },
    )
    stack.inbox.mkdir(parents=True)
    try:
        stack.start("run", "run", "--flower", "--grace", "20")
        stack.wait_for_worker(timeout=120)
        stack.drop("article.txt", example_bytes)
        stack.drop("copy.txt", example_bytes)
        stack.drop("empty.txt", b"")
        stack.wait_for(lambda: len(stack.events()) == 3, 120, "three outcomes")
        stack.wait_for(lambda: len(receiver.at("/hook")) >= 3, 60, "three webhook deliveries")
        stack.wait_for(lambda: _flower_up(f"http://127.0.0.1:{flower_port}/api/workers", auth), 60, "Flower")
        log = stack.logs["run"]
        stack.wait_for(lambda: log.read_text().count('"webhook delivered"') >= 3, 60, "deliveries logged")
    finally:
        stack.stop()
    assert stack.procs["run"].returncode == 0, stack.tail("run")

    lines = stack.logs["run"].read_text(errors="replace").splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} of {len(lines)} is not JSON: {line!r}")
        assert isinstance(record, dict), f"line {number} is not an object: {line!r}"
        missing = {"logger", "process", "level", "event"} - set(record)
        assert not missing, f"line {number} lacks {missing}: {line!r}"
        records.append(record)
    processes = Counter(r["process"] for r in records)
    assert set(processes) >= PROCESSES, processes
    loggers = {r["logger"] for r in records}
    assert any(name.startswith("celery") for name in loggers), loggers  # Celery's own lines
    assert any(r["process"] == "flower" and not r["logger"].startswith("seedworker") for r in records), loggers
    assert not any(r["logger"].startswith("httpx") for r in records)  # per-request URLs stay out
    assert any(r["event"] == "webhook delivered" for r in records)
