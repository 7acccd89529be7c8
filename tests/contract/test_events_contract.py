"""What a third party sees of a running seedworker, checked with third-party clients only:
the CloudEvents SDK parses every event, ``jsonschema`` validates every event's ``data``
against the schema its ``dataschema`` names (looked up in ``seedworker schema events``), the
README's consumer-group walkthrough works verbatim with redis-py, webhook deliveries verify
with the ``standardwebhooks`` package, and ``/metrics`` parses with ``prometheus_client``'s
parser (and ``promtool check metrics`` where promtool is installed).

One real stack (worker, webhook worker, publisher, watcher; SQLite) serves the whole module.
Nothing on the client side imports ``worker``.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.http import from_dict, from_http, from_json
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.contract import redis_client, seedworker
from tests.support.http import Receiver, free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "articles" / "000_fd88bd66912dc591.txt"
WHSEC = "whsec_" + base64.b64encode(b"contract-suite-key-0123456789abcdef").decode()
LEGACY_SECRET = "a-legacy-secret"
AUTHORIZATION = "Bearer contract-header-value"
TOKENS = ("PATHT0KEN", "QUERYT0KEN", "DEADT0KEN")
TYPES = {"stored", "duplicate", "failed"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, embedded_redis: Any, receiver: Receiver, example_bytes: bytes
) -> Iterator[Stack]:
    if not embedded_redis.is_running():
        embedded_redis.start()
    client = redis_client(embedded_redis.url)
    client.flushall()
    root = tmp_path_factory.mktemp("contract")
    endpoints = [
        {"url": receiver.url("/named"), "secret": WHSEC, "name": "named", "headers": {"Authorization": AUTHORIZATION}},
        {"url": receiver.url("/legacy/PATHT0KEN?token=QUERYT0KEN"), "secret": LEGACY_SECRET},
        {"url": f"http://127.0.0.1:{free_port()}/DEADT0KEN?token=DEADT0KEN", "secret": WHSEC, "timeout": 2},
    ]
    metrics_port = free_port()
    s = Stack(
        root,
        embedded_redis.url,
        f"sqlite:///{root / 'seedworker.db'}",
        extra_env={
            "SEEDWORKER_NER_MODEL": "",
            "SEEDWORKER_WEBHOOKS": json.dumps(endpoints),
            "SEEDWORKER_WEBHOOK_MAX_ATTEMPTS": "2",
            "SEEDWORKER_WEBHOOK_BACKOFF": "0.2",
            "SEEDWORKER_WEBHOOK_BACKOFF_CAP": "0.5",
            "SEEDWORKER_METRICS_PORT": str(metrics_port),
            "SEEDWORKER_LOG_LEVEL": "DEBUG",
        },
    )
    s.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # type: ignore[attr-defined]
    try:
        s.start_all(concurrency=2)
        s.start("webhooks", "worker", "--queues=seedworker.webhooks", "--pool=threads", f"--node-name=wh@{root.name}")
        s.drop("article.txt", example_bytes)
        s.wait_for_events(1, timeout=120, type="org.seedworker.document.stored")
        s.drop("copy.txt", example_bytes)
        s.drop("binary.txt", b"\x00\x01\x02 not text \x00")
        s.wait_for(lambda: {e["type"].rsplit(".", 1)[1] for e in s.events()} >= TYPES, 120, "all three outcomes")
        yield s
    finally:
        s.stop()
        client.flushall()
        client.close()


def _events(stack: Stack) -> list[tuple[bytes, dict[bytes, bytes]]]:
    client = redis_client(stack.broker_url)
    try:
        return list(client.xrange(stack.stream))
    finally:
        client.close()


# -- CloudEvents --------------------------------------------------------------------------------------
def test_every_event_parses_with_the_cloudevents_sdk(stack: Stack) -> None:
    entries = _events(stack)
    assert len(entries) >= 3
    for _, fields in entries:
        raw = fields[b"event"]
        event = from_json(raw)
        assert event["specversion"] == "1.0"
        assert event["id"] == fields[b"id"].decode() and event["type"] == fields[b"type"].decode()
        assert event["subject"] == fields[b"subject"].decode()
        assert event.data == json.loads(raw)["data"]
        assert from_dict(json.loads(raw))["id"] == event["id"]
        core = JSONFormat().read(None, raw)  # the SDK's 2.x core API
        assert core.get_id() == event["id"] and core.get_dataschema() == event["dataschema"]


def test_every_data_validates_against_the_schema_its_dataschema_names(stack: Stack) -> None:
    schemas: dict[str, Any] = json.loads(seedworker("schema", "events", env=stack.env()))
    by_uri = {schema["$id"]: schema for schema in schemas.values()}
    checker = jsonschema.FormatChecker()
    seen = set()
    for _, fields in _events(stack):
        event = json.loads(fields[b"event"])
        schema = by_uri.get(event["dataschema"])
        assert schema is not None, f"no schema has $id {event['dataschema']}"
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.Draft202012Validator(schema, format_checker=checker).validate(event["data"])
        seen.add(event["type"])
    assert {t.rsplit(".", 1)[1] for t in seen} >= TYPES
    # every type the schemas describe, emitted here or not, has a data schema that is valid
    for name, schema in schemas.items():
        if "specversion" in schema.get("properties", {}):
            data_uri = schema["properties"]["dataschema"]["description"]
            assert ".data" in data_uri, name
            [data_schema] = [s for s in by_uri.values() if s["$id"].endswith(f":{name}.data")]
            jsonschema.Draft202012Validator.check_schema(data_schema)


# -- the README's consumer-group walkthrough, verbatim, with redis-py -----------------------------------
def _readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("### Consuming events from another language", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [shlex.split(line)[1:] for line in section.splitlines() if line.startswith("redis-cli ")]


def test_the_readme_consumer_group_walkthrough_works_with_redis_py(stack: Stack) -> None:
    commands = _readme_commands()
    assert [c[0] for c in commands] == ["XGROUP", "XREADGROUP", "XACK", "XAUTOCLAIM", "XPENDING"]
    client = redis_client(stack.broker_url)
    client.response_callbacks.clear()  # raw replies, as redis-cli prints them
    try:
        client.execute_command(*commands[0])  # XGROUP CREATE seedworker:events billing 0 MKSTREAM
        [(stream, entries)] = client.execute_command(*commands[1])  # XREADGROUP ... STREAMS seedworker:events '>'

        assert stream == b"seedworker:events" and len(entries) == len(_events(stack))
        handled: set[str] = set()
        example_id = commands[2][-1]
        for entry_id, flat in entries:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            assert set(fields) == {b"id", b"type", b"subject", b"event"}
            event = json.loads(fields[b"event"])
            assert event["id"] == fields[b"id"].decode() and event["id"] not in handled
            handled.add(event["id"])
            ack = [entry_id.decode() if a == example_id else a for a in commands[2]]
            assert client.execute_command(*ack) == 1  # XACK seedworker:events billing <id>
        claimed = client.execute_command(*commands[3])  # XAUTOCLAIM ... 60000 0-0 COUNT 10
        assert claimed[1] == []  # nothing left pending
        assert client.execute_command(*commands[4]) == []  # XPENDING: everything acknowledged
        again = client.execute_command(*[a if a != "5000" else "100" for a in commands[1]])
        assert not again  # no new entries for the group
    finally:
        client.close()


# -- Standard Webhooks ------------------------------------------------------------------------------------
def test_webhook_deliveries_verify_with_the_standardwebhooks_package(stack: Stack, receiver: Receiver) -> None:
    expected = {json.loads(f[b"event"])["id"] for _, f in _events(stack)}
    stack.wait_for(lambda: {d.headers["webhook-id"] for d in receiver.at("/named")} >= expected, 60, "/named")
    stack.wait_for(lambda: {d.headers["webhook-id"] for d in receiver.at("/legacy")} >= expected, 60, "/legacy")
    for delivery in receiver.at("/named"):
        event = Webhook(WHSEC).verify(delivery.body, delivery.headers)
        assert event["id"] == delivery.headers["webhook-id"]
        assert delivery.headers["Authorization"] == AUTHORIZATION  # the endpoint's own header
        assert from_http(delivery.headers, delivery.body)["id"] == event["id"]  # structured CloudEvent
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(b"another-key-0123456789abcdef").decode()).verify(
                delivery.body, delivery.headers
            )
        with pytest.raises(WebhookVerificationError):
            Webhook(WHSEC).verify(delivery.body + b" ", delivery.headers)
    for delivery in receiver.at("/legacy"):  # a secret without whsec_: its UTF-8 bytes are the key
        assert Webhook(LEGACY_SECRET.encode()).verify(delivery.body, delivery.headers)["id"]
        assert "Authorization" not in delivery.headers


def test_no_webhook_url_token_is_shown_anywhere(stack: Stack, receiver: Receiver) -> None:
    """Nor a secret or header value: not in any process's log, `seedworker config` or `status`, the metrics."""
    stack.wait_for(lambda: receiver.at("/legacy"), 60, "a delivery to /legacy")
    stack.wait_for(lambda: b"failures_total" in _scrape(stack).encode(), 60, "metrics")
    shown = {
        "config": seedworker("config", env=stack.env()),
        "status": seedworker("status", "--json", env=stack.env()),
        "metrics": _scrape(stack),
        **{f"{name} log": path.read_text(errors="replace") for name, path in stack.logs.items()},
    }
    for where, text in shown.items():
        for token in (*TOKENS, AUTHORIZATION.split()[1], WHSEC.removeprefix("whsec_"), LEGACY_SECRET):
            assert token not in text, f"{token} shown in {where}"
    endpoints = json.loads(shown["status"])["webhooks"]
    assert "named" in endpoints and len([e for e in endpoints if re.fullmatch(r"127\.0\.0\.1:\d+-[0-9a-f]{8}", e)]) == 2
    assert "webhook delivered" in shown["webhooks log"]


# -- Prometheus -----------------------------------------------------------------------------------------
def _scrape(stack: Stack) -> str:
    with urllib.request.urlopen(stack.metrics_url, timeout=10) as response:  # type: ignore[attr-defined]
        return str(response.read().decode())


def test_metrics_parse_and_carry_process_build_and_zeroed_series(stack: Stack) -> None:
    text = _scrape(stack)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds",
        "process_open_fds",
        "python_info",
        "python_gc_objects_collected",
        "seedworker_build_info",
        "seedworker_documents",
        "seedworker_webhook_failures",
    ):
        assert name in families, f"{name} missing from /metrics"
    [pool] = families["seedworker_pool_processes"].samples
    assert pool.value == 2  # --concurrency=2
    [pool_rss] = families["seedworker_pool_resident_memory_bytes"].samples
    assert pool_rss.value > 10_000_000
    [build] = families["seedworker_build_info"].samples
    assert build.value == 1 and re.fullmatch(r"\d+\.\d+\.\d+.*", build.labels["version"])
    failures = {s.labels["endpoint"]: s.value for s in families["seedworker_webhook_failures"].samples}
    assert failures["named"] == 0  # a configured endpoint before its first failure
    assert all("://" not in endpoint and "/" not in endpoint for endpoint in failures)
    documents = {(s.labels["outcome"], s.labels["reason"]) for s in families["seedworker_documents"].samples}
    assert ("failed", "too_large") in documents  # zero before the first too-large file


def test_metrics_pass_promtool_check_metrics(stack: Stack) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=_scrape(stack), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_failed_deliveries_are_counted_for_the_dead_endpoint(stack: Stack) -> None:
    def dead_failures() -> float:
        for family in text_string_to_metric_families(_scrape(stack)):
            if family.name == "seedworker_webhook_failures":
                return sum(s.value for s in family.samples if s.labels["endpoint"] not in ("named",))
        return 0.0

    assert stack.wait_for(lambda: dead_failures() >= 3, 120, "three failed deliveries to the dead endpoint")
