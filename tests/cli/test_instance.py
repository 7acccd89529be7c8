"""Issue 17 §2: every command finds the same instance wherever it is run; a command that only
reads never creates one and says where it looked; a second ``seedworker run`` refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import SEEDWORKER, one_line_error, seedworker, user_env
from tests.support.paths import EXAMPLE
from worker.errors import AlreadyRunning
from worker.instance import RunLock

READ_ONLY = [
    ("docs", "list"),
    ("docs", "show", "doc_x"),
    ("docs", "search", "climate"),
    ("status",),
    ("events", "tail", "--no-follow"),
    ("events", "dead"),
    ("tags", "models"),
    ("tags", "explain", "doc_x"),
    ("dedup", "check", str(EXAMPLE)),
]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:2]))
def test_a_read_only_command_outside_any_instance_creates_nothing(tmp_path: Path, command: tuple[str, ...]) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = user_env(tmp_path)
    before = _tree(tmp_path)
    line = one_line_error(seedworker(*command, cwd=cwd, env=env), 1)
    assert _tree(tmp_path) == before  # no data/, no seedworker.db, no per-user folder
    per_user = tmp_path / "home" / ".local" / "share" / "seedworker"
    assert f"no seedworker instance at {per_user}" in line
    assert "SEEDWORKER_DATA_DIR unset" in line and f"no seedworker.toml in {cwd} or above" in line


def test_health_reports_a_missing_database_without_creating_it(tmp_path: Path, broker_url: str) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), broker_url=broker_url)
    done = seedworker("health", "--no-workers", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"database missing: no {tmp_path / 'data' / 'seedworker.db'}"]
    assert not (tmp_path / "data").exists()


def test_an_explicit_data_dir_without_a_database_is_named(tmp_path: Path) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "nothing"))
    line = one_line_error(seedworker("docs", "list", cwd=tmp_path, env=env), 1)
    assert f"SEEDWORKER_DATA_DIR={tmp_path / 'nothing'}" in line
    assert not (tmp_path / "nothing").exists()


def test_seedworker_toml_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    (project / "seedworker.toml").write_text('data_dir = "state"\n')
    env = user_env(tmp_path)
    assert seedworker("db", "upgrade", cwd=project, env=env).returncode == 0
    assert (project / "state" / "seedworker.db").is_file()
    done = seedworker("config", "--json", cwd=deep, env=env)
    assert f'"data_dir": "{project / "state"}"' in done.stdout
    assert f'"inbox": "{project / "inbox"}"' in done.stdout
    listed = seedworker("docs", "list", "--json", cwd=deep, env=env)
    assert listed.returncode == 0 and listed.stdout == "", listed.stderr


def test_an_unknown_key_in_seedworker_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "seedworker.toml").write_text("brokr_url = 'redis://x'\n")
    line = one_line_error(seedworker("config", cwd=tmp_path, env=user_env(tmp_path)), 2)
    assert "seedworker.toml: unknown setting(s) brokr_url" in line


def test_the_per_user_instance_is_found_from_any_directory(tmp_path: Path) -> None:
    """`seedworker broker start` + `db upgrade` in one folder; `docs list` and a user's own
    program calling submit() in another folder reach the same database and broker."""
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    env = user_env(tmp_path, ner_model="")
    assert seedworker("db", "upgrade", cwd=here, env=env).returncode == 0
    started = seedworker("broker", "start", cwd=here, env=env)
    assert started.returncode == 0, started.stderr
    try:
        assert seedworker("docs", "list", cwd=there, env=env).returncode == 0
        program = (
            "from worker.client import submit\n"
            "receipt = submit('Some text about the harbour.', filename='note.txt')\n"
            "print(receipt.task_id)\n"
        )
        (there / "producer.py").write_text(program)
        done = subprocess.run(
            [sys.executable, "producer.py"], cwd=there, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        from worker.broker import connect

        url = started.stdout.strip()
        client = connect(url)
        try:
            assert client.llen("seedworker") == 1  # the message waits on the per-user instance's queue
        finally:
            client.close()
    finally:
        seedworker("broker", "stop", cwd=here, env=env)
    assert not (there / "data").exists() and not (here / "data").exists()


# -- one `run` per data directory -------------------------------------------------------------------
_HOLD = (
    "import sys, time; from pathlib import Path; from worker.instance import RunLock; "
    "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)"
)


def test_the_lock_names_the_holder_and_dies_with_it(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning, match=f"already running on {tmp_path}, pid {holder.pid}"):
            RunLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)  # no cleanup: the lock file stays behind
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert (tmp_path / "seedworker.lock").exists()
    lock = RunLock(tmp_path)
    lock.acquire()  # a stale lock file does not block
    assert (tmp_path / "seedworker.lock").read_text().strip() == str(os.getpid())
    lock.release()


@pytest.mark.e2e
def test_a_second_run_on_the_same_data_directory_refuses(tmp_path: Path) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), inbox=str(tmp_path / "inbox"), ner_model="")
    env["SEEDWORKER_CONCURRENCY"] = "1"
    # stderr to a file, not a pipe: a pipe nobody reads after the banner fills up with the
    # children's logs, and a worker blocked writing a log line answers no ping
    out, err = (tmp_path / "run.out").open("w"), (tmp_path / "run.err").open("w")
    first = subprocess.Popen([str(SEEDWORKER), "run", "--grace", "20"], cwd=tmp_path, env=env, stdout=out, stderr=err)
    out.close()
    err.close()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if "seedworker is running." in (tmp_path / "run.err").read_text(errors="replace"):
                break
            time.sleep(0.1)
        assert first.poll() is None, "the first run did not start"
        second = seedworker("run", cwd=tmp_path, env=env, timeout=60)
        line = one_line_error(second, 1)
        assert f"already running on {tmp_path / 'data'}, pid {first.pid}" in line
        # and the worker came up without Celery's banner, which pushed run's own off the screen
        ready = seedworker("health", "--timeout", "90", cwd=tmp_path, env=env, timeout=120)
        assert ready.returncode == 0, ready.stderr
        assert "[queues]" not in (tmp_path / "run.out").read_text(), (tmp_path / "run.out").read_text()[-2000:]
    finally:
        first.send_signal(signal.SIGINT)
        try:
            first.wait(timeout=60)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()


def test_a_sqlite_url_to_a_missing_file_is_not_created_by_a_reader(tmp_path: Path) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), database_url=f"sqlite:///{tmp_path / 'gone.db'}")
    line = one_line_error(seedworker("docs", "list", cwd=tmp_path, env=env), 1)
    assert f"no database {tmp_path / 'gone.db'}" in line
    assert not (tmp_path / "gone.db").exists()
