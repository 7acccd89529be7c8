"""`seedworker run` exactly as `make run` starts it in a clone: no configuration but the
repository's seedworker.toml, no services, embedded Redis and SQLite under ./data, inbox
./inbox; Ctrl-C (SIGINT) and SIGTERM stop everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from worker.broker import EmbeddedRedis, connect

pytestmark = pytest.mark.e2e


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached; seedworker run said:\n{log.read_text(errors='replace')[-4000:]}")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_run_with_no_configuration_ingests_and_stops_cleanly(tmp_path: Path, stop_signal: int) -> None:
    log = tmp_path / "run.log"
    shutil.copy(Path(__file__).resolve().parents[2] / "seedworker.toml", tmp_path)  # what a clone has
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run", "--grace", "20"],
            cwd=tmp_path,
            env=_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: "drop files into" in log.read_text(errors="replace"), 60, "banner", proc, log)
        banner = log.read_text(errors="replace")
        assert str(tmp_path / "inbox") in banner and "seedworker events tail" in banner

        redis_server = EmbeddedRedis(tmp_path / "data" / "redis")
        assert redis_server.is_running()
        client = connect(redis_server.url)
        shutil.copy(EXAMPLE, tmp_path / "inbox" / "article.txt")

        def stored() -> bool:
            if not client.exists("seedworker:events"):
                return False
            return any(b"document.stored" in f[b"type"] for _, f in client.xrange("seedworker:events"))

        _wait(stored, 90, "document.stored on the stream", proc, log)
        [(_, fields)] = client.xrange("seedworker:events")
        assert json.loads(fields[b"event"])["data"]["dateline_place"] == "Washington"
        _wait((tmp_path / "data" / "archive" / "article.txt").exists, 30, "archived", proc, log)
        assert (tmp_path / "data" / "seedworker.db").exists()
        client.close()
    finally:
        proc.send_signal(stop_signal)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text(errors="replace")[-3000:]
    assert not EmbeddedRedis(tmp_path / "data" / "redis").is_running()
    assert "all stopped" in log.read_text(errors="replace")
