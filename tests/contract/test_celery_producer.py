"""A plain Celery producer, as the README tells any program to send: a separate ``celery.Celery``
app with nothing but a broker URL (no ``worker.*`` import on the client side), against a real
stack (issue 18 §1).  Such a producer names no queue, so Celery sends to its default queue
``celery``: workers consume it too, and when they are told not to, the waiting message shows in
``status``, ``health`` and ``/metrics`` instead of being lost silently.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import celery
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.contract import redis_client
from tests.support.http import free_port
from tests.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FAST = {"SEEDWORKER_NER_MODEL": "", "SEEDWORKER_KEYWORDS": "false"}
TEXT = (
    "Harbour cranes stood idle on Tuesday as dock workers walked out over pay.\n\n"
    "The strike, the first in a decade, left forty ships waiting offshore, officials said."
)


def _stored_events(broker_url: str, stream: str) -> list[dict[str, object]]:
    client = redis_client(broker_url)
    try:
        entries = client.xrange(stream) if client.exists(stream) else []
        return [e for _, f in entries if (e := json.loads(f[b"event"]))["type"].endswith("document.stored")]
    finally:
        client.close()


def test_readme_producer_gets_its_document_stored(tmp_path: Path, broker_url: str, database_url: str) -> None:
    stack = Stack(tmp_path, broker_url, database_url, extra_env=FAST)
    stack.inbox.mkdir(parents=True)
    try:
        stack.start("worker", "worker", "--concurrency=1", f"--node-name=w1@{tmp_path.name}")
        stack.start("publisher", "publish")
        stack.wait_for_worker(120)
        # The README, verbatim: one keyword argument ``request``, no queue, no routing.
        producer = celery.Celery(broker=broker_url)
        producer.send_task(
            "seedworker.ingest",
            kwargs={"request": {"text": TEXT, "filename": "strike.txt", "source": "contract", "tags": ["ports"]}},
        )
        events = stack.wait_for(lambda: _stored_events(broker_url, stack.stream), 90, what="the document stored")
        assert [e["data"]["filename"] for e in events] == ["strike.txt"]  # type: ignore[index]
        client = redis_client(broker_url)
        assert client.llen("celery") == 0
        client.close()
    finally:
        stack.stop()


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=stack.root,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_message_no_worker_consumes_shows_in_status_health_and_metrics(
    tmp_path: Path, broker_url: str, database_url: str
) -> None:
    port = free_port()
    env = {**FAST, "SEEDWORKER_CONSUME_DEFAULT_QUEUE": "false", "SEEDWORKER_METRICS_PORT": str(port)}
    stack = Stack(tmp_path, broker_url, database_url, extra_env=env)
    stack.inbox.mkdir(parents=True)
    try:
        stack.start("worker", "worker", "--concurrency=1", f"--node-name=w1@{tmp_path.name}")
        stack.wait_for_worker(120)
        celery.Celery(broker=broker_url).send_task("seedworker.ingest", kwargs={"request": {"text": TEXT}})
        time.sleep(1)
        client = redis_client(broker_url)
        assert client.llen("celery") == 1  # waiting: nobody consumes it
        client.close()

        status = _cli(stack, "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["queues"].get("celery") == 1, status.stdout
        assert report["unconsumed_queues"] == {"celery": 1}

        health = _cli(stack, "health")
        assert health.returncode != 0
        assert "no seedworker worker consumes" in health.stdout + health.stderr
        assert "1 in 'celery'" in health.stdout + health.stderr

        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        samples = {
            (s.name, s.labels.get("queue")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("seedworker_queue_depth", "celery")] == 1
        assert samples[("seedworker_unconsumed_queue_depth", "celery")] == 1
    finally:
        stack.stop()
