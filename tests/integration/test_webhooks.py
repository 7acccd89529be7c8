"""Webhooks with a real HTTP server on 127.0.0.1, the real publisher and real Celery worker
processes: signatures verify, type filters hold, a flaky endpoint receives every event, a dead
one is recorded as failed (and shows in `seedworker status`)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.http import Receiver
from tests.support.stack import Stack
from tests.support.store import batch as _batch
from tests.support.webhooks import SECRET, start_webhook_worker
from worker.models import FileSummary
from worker.relay import webhooks
from worker.relay.publisher import notify_committed
from worker.store.engine import make_engine
from worker.store.repository import DocumentStore
from worker.store.schema import WebhookDelivery


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _endpoint(receiver: Receiver, name: str, **kw: Any) -> dict[str, Any]:
    return {"url": receiver.url(f"/{name}"), "secret": SECRET, "name": name, **kw}


def _stack(tmp_path: Path, broker_url: str, database_url: str, endpoints: list[dict[str, Any]], **env: str) -> Stack:
    stack = Stack(
        tmp_path,
        broker_url,
        database_url,
        extra_env={
            "SEEDWORKER_WEBHOOKS": json.dumps(endpoints),
            "SEEDWORKER_NER_MODEL": "",
            "SEEDWORKER_WEBHOOK_BACKOFF": "0.2",
            "SEEDWORKER_WEBHOOK_BACKOFF_CAP": "1",
            **env,
        },
    )
    stack.start("worker", "worker", "--concurrency=2", f"--node-name=wh@{tmp_path.name}")
    start_webhook_worker(stack)
    stack.start("publisher", "publish")
    stack.wait_for_worker()
    return stack


def _store(database_url: str) -> DocumentStore:
    return DocumentStore(make_engine(database_url), event_source="urn:test")


def _deliveries(store: DocumentStore) -> dict[tuple[str, str], WebhookDelivery]:
    with store.session() as s:
        return {(d.event_id, d.endpoint): d for d in s.scalars(select(WebhookDelivery))}


def _wait(stack: Stack, predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    return stack.wait_for(predicate, timeout=timeout, what=what)


@pytest.mark.e2e
def test_signed_deliveries_respect_type_filters(
    tmp_path: Path, broker_url: str, database_url: str, receiver: Receiver
) -> None:
    endpoints = [_endpoint(receiver, "all"), _endpoint(receiver, "stored", types=["document.stored"])]
    stack = _stack(tmp_path, broker_url, database_url, endpoints)
    try:
        store = _store(database_url)
        store.persist_document(*_batch("first story", "k1"))
        store.persist_document(*_batch("second story", "k2"))
        store.persist_document(*_batch("first story", "k3"))  # duplicate
        store.persist_failure(
            key="k4", summary=FileSummary.of("x.bin", b"\0"), source="t", reason="binary", message="binary content"
        )
        notify_committed(stack.redis(), stack.stream)
        _wait(stack, lambda: len({r.event["id"] for r in receiver.ok("/all")}) == 4, "4 events at /all")
        _wait(stack, lambda: len({r.event["id"] for r in receiver.ok("/stored")}) == 2, "2 events at /stored")
        stream_ids = {e["id"] for e in stack.events()}

        assert {r.event["type"] for r in receiver.all("/stored")} == {"org.seedworker.document.stored"}
        for r in receiver.all("/all") + receiver.all("/stored"):
            h = {k.lower(): v for k, v in r.headers.items()}
            assert h["content-type"] == "application/cloudevents+json"
            assert h["x-seedworker-event-id"] == r.event["id"] and r.event["id"] in stream_ids
            assert webhooks.verify(SECRET, h["x-seedworker-timestamp"], r.body, h["x-seedworker-signature"])
            assert not webhooks.verify("wrong", h["x-seedworker-timestamp"], r.body, h["x-seedworker-signature"])
            assert not webhooks.verify(SECRET, h["x-seedworker-timestamp"], r.body + b" ", h["x-seedworker-signature"])
        _wait(
            stack,
            lambda: [d.status for d in _deliveries(store).values()] == ["delivered"] * 6,
            "six deliveries recorded as delivered",
        )
        store.engine.dispose()
    finally:
        stack.stop()


@pytest.mark.e2e
def test_flaky_endpoint_receives_every_event_after_retries(tmp_path: Path, broker_url: str, receiver: Receiver) -> None:
    receiver.fail = lambda path, n: n < 4  # the first four requests fail, then it recovers
    database_url = f"sqlite:///{tmp_path / 'seedworker.db'}"
    stack = _stack(tmp_path, broker_url, database_url, [_endpoint(receiver, "flaky")])
    try:
        store = _store(database_url)
        for i in range(3):
            store.persist_document(*_batch(f"story {i}", f"k{i}"))
        expected = {e["id"] for e in stack.wait_for_events(3)}
        _wait(stack, lambda: {r.event["id"] for r in receiver.ok("/flaky")} == expected, "every event delivered")
        rows = _deliveries(store)
        _wait(stack, lambda: all(d.status == "delivered" for d in _deliveries(store).values()), "rows delivered")
        rows = _deliveries(store)
        assert sum(d.attempts for d in rows.values()) == len(receiver.all("/flaky")) >= 7
        assert Counter(r.status for r in receiver.all("/flaky"))[503] == 4
        store.engine.dispose()
    finally:
        stack.stop()


@pytest.mark.e2e
def test_dead_endpoint_is_recorded_failed_after_the_last_attempt(
    tmp_path: Path, broker_url: str, receiver: Receiver
) -> None:
    receiver.fail = lambda path, n: path == "/down"
    database_url = f"sqlite:///{tmp_path / 'seedworker.db'}"
    endpoints = [_endpoint(receiver, "down"), _endpoint(receiver, "up")]
    stack = _stack(tmp_path, broker_url, database_url, endpoints, SEEDWORKER_WEBHOOK_MAX_ATTEMPTS="3")
    try:
        store = _store(database_url)
        store.persist_document(*_batch("story", "k1"))
        [event] = stack.wait_for_events(1)
        row = _wait(
            stack,
            lambda: (d := _deliveries(store).get((event["id"], "down"))) and d.status == "failed" and d,
            "the delivery to /down recorded as failed",
        )
        assert row.attempts == 3 and row.last_error.startswith("HTTP 503")
        assert len(receiver.all("/down")) == 3
        assert [r.event["id"] for r in receiver.ok("/up")] == [event["id"]]
        from worker import probes

        with store.engine.connect() as conn:
            counts = probes.webhook_counts(conn)
        assert counts is not None and counts["down"]["failed"] == 1 and counts["up"]["failed"] == 0

        from worker.settings import Settings
        from worker.status import collect_status

        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            broker_url=broker_url,
            database_url=database_url,
            data_dir=tmp_path / "data",
            webhooks=endpoints,
        )
        report = collect_status(settings, ping_timeout=0.5)
        assert report["webhooks"]["down"] == {"pending": 0, "delivered": 0, "failed": 1}
        time.sleep(1.5)  # no further attempt after the last one
        assert len(receiver.all("/down")) == 3
        store.engine.dispose()
    finally:
        stack.stop()


def test_signature_covers_timestamp_and_body() -> None:
    now = str(int(time.time()))
    sig = webhooks.sign("k", now, b"{}")
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert webhooks.verify("k", now, b"{}", sig)
    assert not webhooks.verify("k", str(int(now) + 1), b"{}", sig)
    old = str(int(time.time()) - 3600)
    assert not webhooks.verify("k", old, b"{}", webhooks.sign("k", old, b"{}"))
    assert not webhooks.verify("k", "not-a-number", b"{}", sig)


def test_endpoint_settings_are_validated_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.errors import ConfigError
    from worker.settings import load_settings

    monkeypatch.setenv(
        "SEEDWORKER_WEBHOOKS",
        json.dumps([{"url": "http://127.0.0.1:1/h", "secret": "x", "types": ["document.failed"]}]),
    )
    settings = load_settings(_env_file=None)
    [endpoint] = settings.webhooks
    assert endpoint.wants("org.seedworker.document.failed") and not endpoint.wants("org.seedworker.document.stored")
    assert settings.masked()["webhooks"][0]["secret"] == "********"
    assert "x" not in json.dumps(settings.masked()["webhooks"][0]["secret"])
    monkeypatch.setenv("SEEDWORKER_WEBHOOKS", json.dumps([{"url": "http://h", "secret": "x", "colour": "red"}]))
    with pytest.raises(ConfigError, match="colour"):
        load_settings(_env_file=None)


# -- names, masking and the task's arguments --------------------------------------------------------
TOKEN_URL = "https://hooks.example.com/services/T0KEN-IN-PATH?token=T0KEN-IN-QUERY"


def test_an_unnamed_endpoint_is_known_by_host_and_hash_never_by_its_url() -> None:
    from worker.events.endpoints import WebhookEndpoint

    endpoint = WebhookEndpoint.model_validate({"url": TOKEN_URL, "secret": "x"})
    other = WebhookEndpoint.model_validate({"url": TOKEN_URL.replace("QUERY", "OTHER"), "secret": "x"})
    assert endpoint.key.startswith("hooks.example.com-") and "T0KEN" not in endpoint.key
    assert endpoint.key != other.key  # two URLs on one host stay two endpoints
    named = WebhookEndpoint.model_validate({"url": TOKEN_URL, "secret": "x", "name": "search"})
    assert named.key == "search"
    with pytest.raises(ValueError, match="not a URL"):
        WebhookEndpoint.model_validate({"url": TOKEN_URL, "secret": "x", "name": TOKEN_URL})


def test_webhook_urls_and_headers_are_masked_in_config() -> None:
    from worker.events.endpoints import mask_webhook_url
    from worker.settings import Settings

    assert mask_webhook_url(TOKEN_URL) == "https://hooks.example.com/****"
    assert mask_webhook_url("http://u:pw@127.0.0.1:8080/") == "http://****@127.0.0.1:8080/"
    assert mask_webhook_url("https://h.example") == "https://h.example"
    endpoint = {"url": TOKEN_URL, "secret": "x", "headers": {"Authorization": "Bearer T0KEN-IN-HEADER"}}
    settings = Settings(_env_file=None, webhooks=[endpoint])  # type: ignore[call-arg]
    shown = json.dumps(settings.masked())
    assert "T0KEN" not in shown and "hooks.example.com" in shown
    assert settings.masked()["webhooks"][0]["headers"] == {"Authorization": "********"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("headers", {"webhook-signature": "v1,x"}, "set by seedworker"),
        ("headers", {"Content-Type": "text/plain"}, "set by seedworker"),
        ("headers", {"bad header": "x"}, "not a valid HTTP header name"),
        ("secret", "whsec_not base64!", "base64"),
        ("secret", "", "empty"),
    ],
)
def test_endpoint_settings_refuse_what_would_break_signing(field: str, value: Any, message: str) -> None:
    from worker.events.endpoints import WebhookEndpoint

    with pytest.raises(ValueError, match=message):
        WebhookEndpoint.model_validate({"url": "http://127.0.0.1:1/h", "secret": "x", field: value})


def test_a_delivery_task_carries_the_endpoint_name_not_its_url(tmp_path: Path, broker_url: str) -> None:
    """Flower shows task arguments: the task on the webhook queue names the endpoint."""
    from worker.broker import connect
    from worker.relay.webhooks import WebhookDispatcher
    from worker.settings import Settings
    from worker.store.outbox import OutboxEntry

    database_url = f"sqlite:///{tmp_path / 'seedworker.db'}"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, database_url=database_url, webhooks=[{"url": TOKEN_URL, "secret": "x"}]
    )
    from worker.store.migrations import upgrade

    upgrade(database_url)
    store = _store(database_url)
    dispatcher = WebhookDispatcher.from_settings(settings, store, broker_url)
    entry = OutboxEntry(
        1, "ev-1", "org.seedworker.document.stored", "doc_1", '{"type": "org.seedworker.document.stored"}'
    )
    assert dispatcher.dispatch([entry]) == 1
    client = connect(broker_url)
    [raw] = client.lrange("seedworker.webhooks", 0, -1)
    assert client.llen(settings.queue) == 0  # not on the ingestion queue
    assert b"T0KEN" not in raw and b"hooks.example.com" not in raw.replace(b"hooks.example.com-", b"")
    message = json.loads(raw)
    import base64

    _args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert kwargs["endpoint"] == settings.webhooks[0].key
    client.close()
    dispatcher.app.close()
    store.engine.dispose()


# -- a slow receiver does not hold ingestion ----------------------------------------------------------
@pytest.mark.e2e
def test_a_slow_endpoint_does_not_delay_ingestion(tmp_path: Path, broker_url: str) -> None:
    """Each answer takes 20 s; files dropped one after the other are still stored in seconds
    (deliveries have their own queue and threads; on the ingestion pool two slow deliveries
    held both processes and the next file waited ~20 s)."""
    slow = 20.0
    receiver = Receiver(delay=slow).start()
    database_url = f"sqlite:///{tmp_path / 'seedworker.db'}"
    endpoint = {**_endpoint(receiver, "slow"), "timeout": 60}
    stack = Stack(
        tmp_path,
        broker_url,
        database_url,
        extra_env={
            "SEEDWORKER_WEBHOOKS": json.dumps([endpoint]),
            "SEEDWORKER_NER_MODEL": "",
        },
    )
    try:
        stack.start_all(concurrency=2)
        start_webhook_worker(stack)
        latencies = []
        for n in range(5):
            started = time.monotonic()
            stack.drop(f"story-{n}.txt", f"Story {n}\n\nThe council of town {n} met about bridge {n}.\n".encode())
            stack.wait_for_events(n + 1, timeout=90, type="org.seedworker.document.stored")
            latencies.append(time.monotonic() - started)
        stack.wait_for(lambda: len(receiver.all("/slow")) >= 2, timeout=60, what="slow deliveries under way")
        assert max(latencies) < slow / 2, f"ingestion waited on the slow endpoint: {latencies}"
    finally:
        stack.stop()
        receiver.stop()


def test_status_masks_deliveries_recorded_under_a_url(tmp_path: Path) -> None:
    """Rows written before endpoints had derived names are keyed by URL: shown masked."""
    from worker.settings import Settings
    from worker.status import database_status
    from worker.store.migrations import upgrade

    database_url = f"sqlite:///{tmp_path / 'seedworker.db'}"
    upgrade(database_url)
    store = _store(database_url)
    with store.session() as s:
        s.add(WebhookDelivery(event_id="e1", endpoint=TOKEN_URL, event_type="t", status="failed", attempts=8))
    store.engine.dispose()
    settings = Settings(_env_file=None, database_url=database_url, data_dir=tmp_path)  # type: ignore[call-arg]
    hooks = database_status(settings)["webhooks"]
    assert hooks == {"https://hooks.example.com/****": {"pending": 0, "delivered": 0, "failed": 1}}
