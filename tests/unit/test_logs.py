"""Log lines: one JSON object per line from structlog and the standard library alike, with
``logger``, ``process`` and ``level``; no webhook URL (path or query) in any line."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from tests.support.logs import captured_logs
from worker.logs import configure_logging, get_logger
from worker.settings import Settings


@pytest.fixture
def json_stream() -> Iterator[io.StringIO]:
    """configure_logging into a buffer, JSON mode; the process's logging restored afterwards."""
    root = logging.getLogger()
    handlers, level, stderr = root.handlers[:], root.level, sys.stderr
    stream = io.StringIO()
    configure_logging(Settings(_env_file=None, log_format="json", log_level="INFO"), stream=stream, process="worker")  # type: ignore[call-arg]
    yield stream
    structlog.reset_defaults()
    root.handlers, sys.stderr = handlers, stderr
    root.setLevel(level)
    logging.captureWarnings(False)


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_and_standard_library_lines_are_json_with_logger_process_level(json_stream: io.StringIO) -> None:
    get_logger("seedworker.tasks").info("ingested", filename="a.txt")
    logging.getLogger("celery.app.trace").info("Task %s succeeded in %ss", "seedworker.ingest[1]", 0.5)
    logging.getLogger("kombu.connection").warning("reconnecting")
    ours, celery, kombu = _records(json_stream)
    assert ours == {**ours, "event": "ingested", "logger": "seedworker.tasks", "process": "worker", "level": "info"}
    assert celery["event"] == "Task seedworker.ingest[1] succeeded in 0.5s" and celery["logger"] == "celery.app.trace"
    assert celery["process"] == "worker" and celery["level"] == "info"
    assert kombu["level"] == "warning" and "timestamp" in kombu


def test_lines_are_the_same_without_the_records_caller_thread_and_process_fields(json_stream: io.StringIO) -> None:
    """configure_logging turns off the records' caller, thread and process fields (CPU, issue
    21); no line showed them: the same lines come out with them on."""

    def lines() -> list[dict[str, Any]]:
        json_stream.seek(0)
        json_stream.truncate()
        get_logger("seedworker.watcher").info("finished", file="a/b.txt", key="claim:1", status="done")
        logging.getLogger("celery.app.trace").info("Task %s succeeded in %ss", "seedworker.ingest[1]", 0.5)
        try:
            raise ValueError("boom")
        except ValueError:
            get_logger("seedworker.tasks").exception("unexpected error, giving up")
        return [{k: v for k, v in r.items() if k != "timestamp"} for r in _records(json_stream)]

    assert logging._srcfile is None and not logging.logThreads and not logging.logProcesses
    fast = lines()
    saved = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = (
        logging.__file__,
        True,
        True,
        True,
    )
    try:
        full = lines()
    finally:
        logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved
    assert fast == full and len(fast) == 3 and fast[2]["exception"]


def test_httpx_request_lines_are_off_and_url_queries_masked(json_stream: io.StringIO) -> None:
    logging.getLogger("httpx").info('HTTP Request: POST https://h.example/hook?token=SECRET "HTTP/1.1 204"')
    get_logger("x").info("posted", url="https://h.example/hook?token=SECRET")
    logging.getLogger("other").info("POST https://u:pw@h.example/p?key=SECRET")
    text = json_stream.getvalue()
    assert "SECRET" not in text and "pw@" not in text
    assert [r["logger"] for r in _records(json_stream)] == ["x", "other"]


def test_a_webhook_delivery_logs_the_endpoint_name_not_its_url(tmp_path: Path) -> None:
    from worker.relay import webhooks
    from worker.store.engine import make_engine
    from worker.store.migrations import upgrade
    from worker.store.repository import DocumentStore

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/PATHSECRET?token=QUERYSECRET"
    database_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(database_url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, webhooks=[{"url": url, "secret": "k"}], webhook_max_attempts=1
    )
    store = DocumentStore(make_engine(database_url), event_source="urn:test")
    payload = json.dumps({"type": "org.seedworker.document.stored", "id": "ev-1"})
    with captured_logs() as logs:
        result = webhooks.deliver(
            settings, store, event_id="ev-1", endpoint_key=settings.webhooks[0].key, payload=payload
        )
    store.engine.dispose()
    assert result.status == "failed"
    [line] = [entry for entry in logs if entry["event"] == "webhook delivery failed for good"]
    assert line["endpoint"] == settings.webhooks[0].key == f"127.0.0.1:{port}-{line['endpoint'][-8:]}"
    assert "SECRET" not in json.dumps(logs) and "SECRET" not in str(result.error)


def test_captured_logs_sees_a_module_logger_cached_before_and_leaves_its_cache(json_stream: io.StringIO) -> None:
    """A module's ``log`` first used under one configure_logging keeps that configuration's
    processors (cache_logger_on_first_use): after another configure_logging (another test in
    the same process) plain capture_logs misses it; captured_logs does not, and puts the cached
    logger back afterwards."""
    import types

    module = types.ModuleType("worker._captured_logs_probe")
    module.log = get_logger("seedworker.probe")  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        module.log.info("before")  # type: ignore[attr-defined]
        cached = vars(module.log)["bind"]  # type: ignore[attr-defined]
        configure_logging(Settings(_env_file=None, log_format="json"), stream=io.StringIO(), process="worker")  # type: ignore[call-arg]
        with capture_logs() as missed:
            module.log.info("missed")  # type: ignore[attr-defined]
        with captured_logs() as logs:
            module.log.info("seen", n=1)  # type: ignore[attr-defined]
        assert vars(module.log)["bind"] is cached  # type: ignore[attr-defined]
    finally:
        del sys.modules[module.__name__]
    assert missed == []
    assert [(e["event"], e.get("n")) for e in logs] == [("seen", 1)]
