"""Credentials (Redis and database passwords, Flower basic auth) never appear in
``seedworker config`` or in the logs of a real worker, watcher and Flower (moved from
tests/unit/test_security.py: these start processes)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.http import free_port
from tests.support.redis_servers import password_redis_server
from tests.support.stack import Stack

BROKER_PASSWORD = "brokerPw-7c1e9a"
DB_PASSWORD = "dbPw-52f0d3"
FLOWER_PASSWORD = "flowerPw-a94b11"
SECRETS = (BROKER_PASSWORD, DB_PASSWORD, FLOWER_PASSWORD)
SETTINGS = {
    "SEEDWORKER_FLOWER_BASIC_AUTH": f"admin:{FLOWER_PASSWORD},ops:{FLOWER_PASSWORD}2",
    "SEEDWORKER_NER_MODEL": "",
    "SEEDWORKER_LOG_LEVEL": "DEBUG",
}


@pytest.mark.parametrize("args", [["config"], ["config", "--json"]])
def test_seedworker_config_masks_every_credential(tmp_path: Path, args: list[str]) -> None:
    stack = Stack(
        tmp_path,
        f"redis://seed:{BROKER_PASSWORD}@redis.internal:6379/0",
        f"postgresql://seed:{DB_PASSWORD}@db.internal/seedworker",
        extra_env=SETTINGS,
    )
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=stack.env(),
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    text = out.stdout.decode() + out.stderr.decode()
    # db.internal does not answer: config shows the settings, then says so (exit 1), masked too
    assert out.returncode == 1, text
    assert out.stderr.decode().startswith("error: cannot reach postgresql://seed:****@db.internal/seedworker")
    assert "redis.internal" in text and "db.internal" in text  # the settings are shown...
    for secret in SECRETS:
        assert secret not in text  # ...their secrets are not


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[str]:
    """A real redis-server of the test's own (TCP on a free port) that requires a password."""
    with password_redis_server(tmp_path / "redis", BROKER_PASSWORD) as server:
        yield server.url


def _status(url: str, auth: tuple[str, str] | None = None) -> int:
    try:
        return httpx.get(url, auth=auth, timeout=5).status_code
    except httpx.HTTPError:
        return 0


@pytest.mark.e2e
def test_worker_watcher_and_flower_logs_never_show_credentials(tmp_path: Path, password_redis: str) -> None:
    port = free_port()
    env = {**SETTINGS, "SEEDWORKER_FLOWER_PORT": str(port)}
    stack = Stack(tmp_path, password_redis, f"sqlite:///{tmp_path / 'seedworker.db'}", extra_env=env)
    stack.inbox.mkdir(parents=True)
    api = f"http://127.0.0.1:{port}/api/workers"
    try:
        stack.start("worker", "worker", "--concurrency=1")
        stack.start("watch", "watch", "--watcher-id=sec")
        stack.start("flower", "flower")
        # A document through both, so every log line of a normal run is written.
        stack.drop("story.txt", b"A short story that travels through the whole pipeline once.")
        stack.wait_for((stack.archive / "story.txt").exists, 120, "story.txt archived")
        stack.wait_for(lambda: _status(api) == 401, 120, "Flower answering")
        # Flower is up and guarded by the basic auth it was given (and only that).
        assert _status(api, ("admin", "wrong")) == 401
        assert _status(api, ("admin", FLOWER_PASSWORD)) == 200
    finally:
        try:  # SIGTERM, as an operator stops them: the shutdown's log lines are checked too
            for name in list(stack.procs):
                stack.kill(name, signal.SIGTERM)
        finally:
            stack.stop()
    for name, log in stack.logs.items():
        text = log.read_text(errors="replace")
        assert "127.0.0.1" in text or name != "worker", text[-2000:]  # the broker is named...
        for secret in SECRETS:
            assert secret not in text, f"{secret} in the {name} log"  # ...its password is not
