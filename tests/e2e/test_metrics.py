"""Prometheus metrics end to end: a real worker (prefork children) serves /metrics on a free
port; files go through the real watcher; the scrape over HTTP shows the outcomes, stage
latencies, dedup hits, queue depth and outbox lag (which grows while the publisher is down).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.http import free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

STORED = "org.seedworker.document.stored"


def _article(n: int) -> bytes:
    return (
        f"Report {n}\n\nThe council of town number {n} met on Tuesday to discuss the budget "
        f"for the new library, bridge number {n} and the {n}th annual fair.\n"
    ).encode()


@pytest.fixture
def stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    port = free_port()
    s = Stack(
        tmp_path,
        broker_url,
        database_url,
        extra_env={"SEEDWORKER_METRICS_PORT": str(port), "SEEDWORKER_NER_MODEL": ""},
    )
    s.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    s.start_all(concurrency=2)
    yield s
    s.stop()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body = httpx.get(url, timeout=10).text
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_worker_serves_pipeline_and_system_metrics(stack: Stack) -> None:
    url: str = stack.metrics_url  # type: ignore[attr-defined]
    first = scrape(url)
    assert value(first, "seedworker_collector_up", source="redis") == 1.0
    assert value(first, "seedworker_collector_up", source="database") == 1.0
    assert ("seedworker_queue_depth", frozenset({("queue", "seedworker")})) in first

    for n in range(3):
        stack.drop(f"story-{n}.txt", _article(n))
    stack.wait_for_events(3, type=STORED, timeout=120)
    stack.drop("copy.txt", _article(0))
    stack.drop("empty.txt", b"")
    stack.wait_for_events(1, type="org.seedworker.document.duplicate", timeout=120)
    stack.wait_for_events(1, type="org.seedworker.document.failed", timeout=120)

    def counted() -> dict | None:
        s = scrape(url)
        done = (
            value(s, "seedworker_documents_total", outcome="failed", reason="empty") == 1
            and value(s, "seedworker_documents_total", outcome="duplicate", reason="") == 1
            and value(s, "seedworker_documents_total", outcome="stored", reason="") >= 3
        )  # counted just after the commit that the event follows: wait for all of them
        return s if done else None

    samples = stack.wait_for(counted, timeout=60, what="outcomes counted")
    assert value(samples, "seedworker_documents_total", outcome="stored", reason="") == 3
    assert value(samples, "seedworker_documents_total", outcome="duplicate", reason="") == 1
    assert value(samples, "seedworker_dedup_hits_total", kind="exact") == 1
    assert value(samples, "seedworker_stage_duration_seconds_count", stage="normalise") == 5  # once per input
    assert value(samples, "seedworker_stage_duration_seconds_sum", stage="normalise") > 0
    assert value(samples, "seedworker_stage_duration_seconds_bucket", stage="normalise", le="+Inf") == 5
    # once per call: a batch task tags several inputs in one NER pass and stores them in one
    # transaction
    for stage in ("tag", "store"):
        calls = value(samples, "seedworker_stage_duration_seconds_count", stage=stage)
        assert 1 <= calls <= 5, stage
        assert value(samples, "seedworker_stage_duration_seconds_bucket", stage=stage, le="+Inf") == calls
    # the duplicate lookup, once per document that reached the store (not the empty file)
    assert value(samples, "seedworker_stage_duration_seconds_count", stage="dedup") == 4
    assert value(samples, "seedworker_queue_depth", queue="seedworker") == 0
    assert value(samples, "seedworker_stream_length", stream=stack.stream) == 5
    published = stack.wait_for(
        lambda: (s := scrape(url)) and value(s, "seedworker_outbox_unpublished") == 0 and s,
        timeout=60,
        what="outbox drained",
    )
    assert value(published, "seedworker_outbox_oldest_unpublished_age_seconds") == 0
    # each prefork child wrote its own file; the parent merged them
    node_dirs = list((stack.root / "data" / "metrics").iterdir())
    assert len(node_dirs) == 1 and list(node_dirs[0].glob("*.db"))

    # The publisher stops: the outbox lag is visible and grows.
    stack.kill("publisher")
    stack.procs.pop("publisher")  # stopped on purpose: not a crash for check_alive
    stack.drop("late.txt", _article(99))
    lagging = stack.wait_for(
        lambda: (s := scrape(url)) and value(s, "seedworker_outbox_unpublished") >= 1 and s,
        timeout=120,
        what="an unpublished event",
    )
    age = value(lagging, "seedworker_outbox_oldest_unpublished_age_seconds")
    time.sleep(1.2)
    later = scrape(url)
    assert value(later, "seedworker_outbox_oldest_unpublished_age_seconds") >= age + 1.0
    assert value(later, "seedworker_documents_total", outcome="stored", reason="") == 4
