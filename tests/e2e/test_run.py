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

from tests.support.paths import EXAMPLE
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


CELERY_TUTORIAL_TASKS = """\
# Celery's first-steps tutorial layout: a user's own tasks.py and worker.py in the folder
# seedworker is started from.  Importing either one instead of our packages is the bug.
raise SystemExit("seedworker imported the user's {name} from the working directory")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_from_a_folder_holding_tasks_py_and_worker_py(tmp_path: Path) -> None:
    """Every child (db upgrade, worker and its pool, publisher, watcher, Flower) imports our
    ``worker``/``tasks`` packages, never the working directory's ``tasks.py``/``worker.py``."""
    for name in ("tasks.py", "worker.py"):
        (tmp_path / name).write_text(CELERY_TUTORIAL_TASKS.format(name=name))
    shutil.copy(Path(__file__).resolve().parents[2] / "seedworker.toml", tmp_path)  # data/ and inbox/ here
    env = _env()
    env["SEEDWORKER_FLOWER_PORT"] = str(_free_port())
    log = tmp_path / "run.log"
    seedworker = Path(sys.executable).parent / "seedworker"  # the installed entry point, as `make run`
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [seedworker, "run", "--flower", "--grace", "20"], cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    try:
        _wait(lambda: "drop files into" in log.read_text(errors="replace"), 90, "banner", proc, log)
        client = connect(EmbeddedRedis(tmp_path / "data" / "redis").url)
        shutil.copy(EXAMPLE, tmp_path / "inbox" / "article.txt")

        def stored() -> bool:
            events = client.xrange("seedworker:events") if client.exists("seedworker:events") else []
            return any(b"document.stored" in f[b"type"] for _, f in events)

        _wait(stored, 120, "document.stored on the stream", proc, log)

        def flower_answers() -> bool:
            import urllib.request

            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{env['SEEDWORKER_FLOWER_PORT']}/healthcheck", timeout=2):
                    return True
            except OSError:
                return False

        _wait(flower_answers, 90, "Flower's /healthcheck", proc, log)
        client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        server = EmbeddedRedis(tmp_path / "data" / "redis")
        if server.is_running():  # a failed start leaves it behind; never leak it into the machine
            server.stop()
    text = log.read_text(errors="replace")
    assert "from the working directory" not in text and "is not a package" not in text, text[-3000:]
    assert code == 0, text[-3000:]


def test_worker_alone_from_a_folder_holding_tasks_py_and_worker_py(tmp_path: Path) -> None:
    """`seedworker worker` started by hand (the installed entry point, no -P): Celery's own
    task-module import must not pick up the working directory's tasks.py either."""
    for name in ("tasks.py", "worker.py"):
        (tmp_path / name).write_text(CELERY_TUTORIAL_TASKS.format(name=name))
    server = EmbeddedRedis(tmp_path / "redis")
    env = {**_env(), "SEEDWORKER_BROKER_URL": server.start()}
    log = tmp_path / "worker.log"
    seedworker = Path(sys.executable).parent / "seedworker"
    try:
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [seedworker, "worker", "--pool=solo", "--node-name=cwd@test"],
                cwd=tmp_path,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait(lambda: "cwd@test ready" in log.read_text(errors="replace"), 90, "worker ready", proc, log)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    finally:
        server.stop()
    assert "from the working directory" not in log.read_text(errors="replace")
