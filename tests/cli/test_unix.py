"""Issue 17 §5: streams and terminals behave like Unix tools.  ``events tail`` writes only
events to stdout, stops quietly on Ctrl-C (130) and on a closed pipe, and follows a broker
restart; ``flower`` stops what it started; ids are whole and prefixes work; ``--version``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cli import SEEDWORKER, one_line_error, seedworker, user_env
from worker.broker import EmbeddedRedis, connect


def _publish(url: str, stream: str, n: int, start: int = 0) -> None:
    client = connect(url)
    try:
        for i in range(start, start + n):
            event = {"specversion": "1.0", "id": f"e{i}", "type": "org.seedworker.document.stored", "subject": f"d{i}"}
            client.xadd(stream, {"id": f"e{i}", "type": event["type"], "subject": f"d{i}", "event": json.dumps(event)})
    finally:
        client.close()


def _read_lines(proc: subprocess.Popen[str], n: int, timeout: float = 60) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    return lines


def _tail(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SEEDWORKER), "events", "tail", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )


def test_tail_prints_only_events_and_ctrl_c_exits_quietly_with_130(tmp_path: Path, broker_url: str) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), broker_url=broker_url, log_level="DEBUG")
    _publish(broker_url, "seedworker:events", 3)
    proc = _tail(env, tmp_path, "--from", "0")
    try:
        lines = _read_lines(proc, 3)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [json.loads(line)["id"] for line in lines] == ["e0", "e1", "e2"]
    assert out == ""  # nothing but events on stdout, not even the "stopping" log line
    assert proc.returncode == 130 and "Traceback" not in err


def test_tail_into_a_closed_pipe_exits_quietly(tmp_path: Path, broker_url: str) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), broker_url=broker_url)
    _publish(broker_url, "seedworker:events", 5000)
    done = subprocess.run(
        f"'{SEEDWORKER}' events tail --from 0 --no-follow | head -n 1",
        shell=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(done.stdout)["id"] == "e0"
    assert done.stderr == "", done.stderr


def test_tail_follows_a_broker_restart_and_resumes_after_the_last_event(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data" / "redis")
    url = server.start()
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"))  # the embedded broker, found through the data dir
    proc = _tail(env, tmp_path, "--from", "0")
    try:
        _publish(url, "seedworker:events", 2)
        first = _read_lines(proc, 2)
        server.stop()
        time.sleep(2)  # the tail notices and waits
        url = server.start()
        _publish(url, "seedworker:events", 2, start=2)
        rest = _read_lines(proc, 2)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    ids = [json.loads(line)["id"] for line in first + rest + out.splitlines()]
    assert ids == ["e0", "e1", "e2", "e3"], err  # each once: resumed after e1, not from 0
    assert "reconnecting" in err and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
def test_flower_alone_stops_the_redis_it_started_and_ctrl_c_is_quiet(tmp_path: Path) -> None:
    port = _free_port()
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), flower_port=str(port))
    proc = subprocess.Popen(
        [str(SEEDWORKER), "flower"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.3)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        server = EmbeddedRedis(tmp_path / "data" / "redis")
        assert server.is_running()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)  # Flower itself may take its 30 s grace on a busy host
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Exception ignored" not in err and "Traceback" not in err, err
    assert not server.is_running()


def _add_documents(database_url: str, *docs: tuple[str, str, str]) -> None:
    """Rows as the store writes them: (id, filename, text)."""
    import datetime as dt
    import uuid

    from sqlalchemy.orm import Session

    from worker.store.engine import make_engine
    from worker.store.migrations import upgrade
    from worker.store.schema import Document

    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as s, s.begin():
            for doc_id, filename, text in docs:
                s.add(
                    Document(
                        id=doc_id,
                        canonical_hash=uuid.uuid4().hex,
                        ingest_key=f"k-{doc_id}",
                        filename=filename,
                        source="test",
                        format="txt",
                        encoding="utf-8",
                        language="en",
                        word_count=len(text.split()),
                        text=text,
                        meta={},
                        warnings=[],
                        created_at=dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC),
                    )
                )
    finally:
        engine.dispose()


A = "doc_3f2a9c0e41b84d6fa1c2d3e4f5a6b7c8"
B = "doc_3f2a9c0e41b84d6fb9e8d7c6b5a4f3e2"
C = "doc_77e1c0ffee5e4b2c9d8e7f6a5b4c3d2e"


@pytest.fixture
def docs_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    long_name = "a-rather-long-file-name-from-the-newswire-feed-2025-01-15.txt"
    _add_documents(
        database_url,
        (A, long_name, "Rain delays the vote in the valley."),
        (B, long_name, "The war in the north ended; rain followed."),
        (C, "c.txt", "Harvest festival in the rain."),
    )
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), database_url=database_url)
    env["COLUMNS"] = "80"
    return env


def test_docs_list_shows_whole_ids_in_80_columns(tmp_path: Path, docs_env: dict[str, str]) -> None:
    done = seedworker("docs", "list", cwd=tmp_path, env=docs_env)
    assert done.returncode == 0, done.stderr
    assert all(doc_id in done.stdout for doc_id in (A, B, C)), done.stdout


def test_docs_show_and_tags_explain_take_a_unique_prefix(tmp_path: Path, docs_env: dict[str, str]) -> None:
    shown = seedworker("docs", "show", "77e1c0", cwd=tmp_path, env=docs_env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == C, shown.stderr
    assert json.loads(seedworker("docs", "show", "doc_3f2a9c0e41b84d6fa", cwd=tmp_path, env=docs_env).stdout)["id"] == A
    explained = seedworker("tags", "explain", "77e1", "--json", cwd=tmp_path, env=docs_env)
    assert explained.returncode == 0 and json.loads(explained.stdout)["id"] == C, explained.stderr
    line = one_line_error(seedworker("docs", "show", "3f2a", cwd=tmp_path, env=docs_env), 2)
    assert "matches several documents" in line and A in line and B in line
    assert "no document 0000" in one_line_error(seedworker("docs", "show", "0000", cwd=tmp_path, env=docs_env), 1)


def test_docs_search_takes_an_exclusion_without_quotes_or_after_a_double_dash(
    tmp_path: Path, docs_env: dict[str, str]
) -> None:
    plain = seedworker("docs", "search", "rain", "-war", "--json", cwd=tmp_path, env=docs_env)
    assert plain.returncode == 0, plain.stderr
    assert sorted(json.loads(line)["id"] for line in plain.stdout.splitlines()) == sorted([A, C])
    dashed = seedworker("docs", "search", "--json", "--", "rain", "-war", cwd=tmp_path, env=docs_env)
    assert dashed.stdout == plain.stdout, dashed.stderr
    assert "--" in seedworker("docs", "search", "--help", cwd=tmp_path, env=docs_env).stdout


def test_version(tmp_path: Path) -> None:
    done = seedworker("--version", cwd=tmp_path, env=user_env(tmp_path))
    assert done.returncode == 0 and done.stdout.startswith("seedworker ") and done.stdout.split()[1][0].isdigit()


READ_COMMANDS = [
    ("docs", "list"),
    ("docs", "show"),
    ("docs", "search"),
    ("status",),
    ("config",),
    ("tags", "models"),
    ("tags", "explain"),
    ("tags", "train"),
    ("dedup", "check"),
    ("events", "dead"),
    ("db", "check"),
]


@pytest.mark.parametrize("path", READ_COMMANDS, ids=" ".join)
def test_every_read_command_takes_json_and_says_so(path: tuple[str, ...]) -> None:
    import click

    from worker.cli import main

    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, path
        command = found
    option = next((p for p in command.params if "--json" in getattr(p, "opts", [])), None)
    assert option is not None and getattr(option, "help", ""), f"{' '.join(path)} has no documented --json"


def _outbox(database_url: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from worker.store.engine import make_engine
    from worker.store.schema import OutboxRow

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return [(row.type, row.subject) for row in conn.execute(select(OutboxRow.type, OutboxRow.subject))]
    finally:
        engine.dispose()


def test_docs_delete_takes_a_prefix_emits_the_event_and_reports_what_it_did_not_find(
    tmp_path: Path, docs_env: dict[str, str], database_url: str
) -> None:
    done = seedworker(
        "docs", "delete", "77e1c0", "doc_0000", "--json", "--reason", "withdrawn", cwd=tmp_path, env=docs_env
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [d["id"] for d in out["deleted"]] == [C] and out["missing"] == ["doc_0000"]
    assert ("org.seedworker.document.deleted", C) in _outbox(database_url)
    assert "no document" in one_line_error(seedworker("docs", "show", C, cwd=tmp_path, env=docs_env), 1)
    again = seedworker("docs", "delete", C, cwd=tmp_path, env=docs_env)  # twice: nothing to do, said so
    assert again.returncode == 1 and f"no document {C}" in again.stderr
    assert [s for t, s in _outbox(database_url) if t == "org.seedworker.document.deleted"] == [C]
    listed = seedworker("docs", "list", cwd=tmp_path, env=docs_env).stdout
    assert A in listed and B in listed and C not in listed
