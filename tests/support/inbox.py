"""Helpers for tests of the watched folder: a watcher running in a thread, the messages it
put on the queue, and replies as a worker would push them."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import redis

from worker.app import create_app
from worker.models import Outcome
from worker.settings import Settings
from worker.watcher import InboxWatcher


def inbox_settings(tmp_path: Path, **kw: Any) -> Settings:
    fields: dict[str, Any] = {"stable_seconds": 0.3, "poll_interval": 0.1, "max_file_bytes": 100_000, **kw}
    return Settings(_env_file=None, data_dir=tmp_path / "data", inbox=tmp_path / "inbox", **fields)  # type: ignore[call-arg]


def make_inbox_watcher(
    tmp_path: Path, broker_url: str, client: redis.Redis, watcher_id: str = "w1", **kw: Any
) -> InboxWatcher:
    settings = inbox_settings(tmp_path, **kw)
    return InboxWatcher(settings=settings, app=create_app(settings, broker_url), redis=client, watcher_id=watcher_id)


class Running:
    """``with Running(watcher):`` runs its loop in a thread until the block ends."""

    def __init__(self, watcher: InboxWatcher) -> None:
        self.watcher = watcher
        self.thread = threading.Thread(target=watcher.run, daemon=True)

    def __enter__(self) -> InboxWatcher:
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.watcher.observer is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.watcher

    def __exit__(self, *_: object) -> None:
        self.watcher.stop_event.set()
        self.thread.join(10)


def queued(client: redis.Redis, queue: str = "seedworker") -> list[dict[str, Any]]:
    """The Celery messages waiting in the queue (oldest first), one entry per file: a batch
    message counts as one ``seedworker.ingest`` per request in it (its ``argsrepr`` the
    request's file name)."""
    out = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        msg = json.loads(raw)
        _args, kwargs, _ = json.loads(base64.b64decode(msg["body"]))
        if msg["headers"]["task"] == "seedworker.ingest_batch":
            for request in kwargs["requests"]:
                entry = {"task": "seedworker.ingest", "argsrepr": request["filename"], "kwargs": {"request": request}}
                out.append(entry)
            continue
        out.append({"task": msg["headers"]["task"], "argsrepr": msg["headers"]["argsrepr"], "kwargs": kwargs})
    return out


def wait_queued(client: redis.Redis, n: int, timeout: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msgs = queued(client)
        if len(msgs) >= n:
            return msgs
        time.sleep(0.05)
    raise AssertionError(f"expected {n} queued messages, got {queued(client)}")


def content(msg: dict[str, Any]) -> bytes:
    request = msg["kwargs"].get("request")
    return base64.b64decode(request["content_b64"]) if request else b""


def reply(client: redis.Redis, reply_key: str, outcome: Outcome) -> None:
    client.lpush(reply_key, json.dumps({"filename": outcome.filename, "outcomes": [outcome.model_dump(mode="json")]}))


def wait_idle(watcher: InboxWatcher, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while watcher.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watcher.in_flight == 0, f"{watcher.in_flight} claims still in flight"
