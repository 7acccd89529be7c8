"""Security properties that are cheap to lose by accident:

* no pickle anywhere: the Celery app (and so Flower, which is given the same app) accepts and
  writes JSON only, a pickled message is refused before it is decoded, and no module of the
  project imports a code-executing deserializer or loads YAML with an unsafe loader;
* credentials (Redis and database passwords, Flower basic auth) never appear in
  ``seedworker config`` or in a real worker's and watcher's logs.

(A symbolic link never makes the worker read outside the inbox: tests/chaos/test_hostile.py
and tests/integration/test_watcher.py.)
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kombu.exceptions import ContentDisallowed
from kombu.serialization import loads, prepare_accept_content

from tests.support.paths import REPO
from worker.app import create_app
from worker.broker import connect, redis_server_binary
from worker.settings import Settings

SOURCE_DIRS = ("worker", "tasks", "bench", "tests")
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle", "joblib"}
UNSAFE_YAML = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "load_all"}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _python_files() -> list[Path]:
    files = [p for d in SOURCE_DIRS if (REPO / d).is_dir() for p in (REPO / d).rglob("*.py")]
    assert len(files) > 20
    return sorted(files)


def _settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


# -- no pickle -----------------------------------------------------------------------------------


def test_celery_accepts_and_writes_json_only() -> None:
    app = create_app(_settings(), "redis://127.0.0.1:1/0")
    conf = app.conf
    assert list(conf.accept_content) == ["json"]
    assert conf.result_accept_content in (None, ["json"])  # None: the same as accept_content
    assert (conf.task_serializer, conf.result_serializer, conf.event_serializer) == ("json", "json", "json")


def test_a_pickled_message_is_refused_before_it_is_decoded() -> None:
    app = create_app(_settings(), "redis://127.0.0.1:1/0")
    accept = prepare_accept_content(app.conf.accept_content)  # what the worker's consumer is given
    pickled_none = b"\x80\x04N."  # the pickle of None, written out so that nothing here imports pickle
    with pytest.raises(ContentDisallowed):
        loads(pickled_none, "application/x-python-serialize", "binary", accept=accept)
    assert loads(b'{"ok": true}', "application/json", "utf-8", accept=accept) == {"ok": True}


def test_no_module_imports_a_code_executing_deserializer() -> None:
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
    assert not found


def test_yaml_is_only_loaded_with_safe_loaders_and_numpy_never_unpickles() -> None:
    problems = []
    for path in _python_files():
        tree = ast.parse(path.read_bytes(), filename=str(path))
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    problems.append(f"{where}: allow_pickle is not False")
            is_yaml = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "yaml"
            if not is_yaml:
                continue
            if name in UNSAFE_YAML:
                problems.append(f"{where}: yaml.{name}")
            if name == "load":
                loader = next((kw.value for kw in node.keywords if kw.arg == "Loader"), None)
                if loader is None and len(node.args) > 1:
                    loader = node.args[1]
                if not _is_safe_loader(loader, module):
                    problems.append(f"{where}: yaml.load with {ast.unparse(loader) if loader else 'no Loader'}")
    assert not problems


def _is_safe_loader(node: ast.expr | None, module: str) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in SAFE_LOADERS:
        return True
    if isinstance(node, ast.Name):
        if node.id in SAFE_LOADERS:
            return True
        loader = getattr(importlib.import_module(module), node.id, None)
        return isinstance(loader, type) and issubclass(loader, yaml.SafeLoader)
    return False


# -- credentials stay out of output and logs -----------------------------------------------------

BROKER_PASSWORD = "brokerPw-7c1e9a"
DB_PASSWORD = "dbPw-52f0d3"
FLOWER_PASSWORD = "flowerPw-a94b11"
SECRETS = (BROKER_PASSWORD, DB_PASSWORD, FLOWER_PASSWORD)


def _cli_env(tmp_path: Path, broker_url: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env.update(
        {
            "SEEDWORKER_DATA_DIR": str(tmp_path / "data"),
            "SEEDWORKER_INBOX": str(tmp_path / "inbox"),
            "SEEDWORKER_BROKER_URL": broker_url,
            "SEEDWORKER_DATABASE_URL": database_url,
            "SEEDWORKER_FLOWER_BASIC_AUTH": f"admin:{FLOWER_PASSWORD},ops:{FLOWER_PASSWORD}2",
            "SEEDWORKER_NER_MODEL": "",
            "SEEDWORKER_LOG_FORMAT": "json",
            "SEEDWORKER_LOG_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.mark.parametrize("args", [["config"], ["config", "--json"]])
def test_seedworker_config_masks_every_credential(tmp_path: Path, args: list[str]) -> None:
    env = _cli_env(
        tmp_path,
        f"redis://seed:{BROKER_PASSWORD}@redis.internal:6379/0",
        f"postgresql://seed:{DB_PASSWORD}@db.internal/seedworker",
    )
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env,
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
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            *(redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", BROKER_PASSWORD),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{BROKER_PASSWORD}@127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    while True:
        try:
            client = connect(url, socket_connect_timeout=0.5)
            client.ping()
            client.close()
            break
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


def _status(url: str, auth: tuple[str, str] | None = None) -> int:
    import httpx

    try:
        return httpx.get(url, auth=auth, timeout=5).status_code
    except httpx.HTTPError:
        return 0


@pytest.mark.e2e
def test_worker_watcher_and_flower_logs_never_show_credentials(tmp_path: Path, password_redis: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _cli_env(tmp_path, password_redis, f"sqlite:///{tmp_path / 'seedworker.db'}")
    env["SEEDWORKER_FLOWER_PORT"] = str(port)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "watch", "flower")}
    commands = {"worker": ["worker", "--concurrency=1"], "watch": ["watch", "--watcher-id=sec"], "flower": ["flower"]}
    try:
        for name, args in commands.items():
            with logs[name].open("wb") as fh:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "worker.cli", *args],
                    env=env,
                    cwd=tmp_path,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        # A document through both, so every log line of a normal run is written.
        (tmp_path / "inbox").mkdir(exist_ok=True)
        (tmp_path / "inbox" / "story.txt").write_text("A short story that travels through the whole pipeline once.")
        deadline = time.monotonic() + 120
        api = f"http://127.0.0.1:{port}/api/workers"
        while not list((tmp_path / "data" / "archive").glob("story.txt")) or _status(api) != 401:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited:\n{logs[name].read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, "story.txt not archived:\n" + logs["worker"].read_text()[-3000:]
            time.sleep(0.2)
        # Flower is up and guarded by the basic auth it was given (and only that).
        assert _status(api, ("admin", "wrong")) == 401
        assert _status(api, ("admin", FLOWER_PASSWORD)) == 200
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for name, log in logs.items():
        text = log.read_text(errors="replace")
        assert "127.0.0.1" in text or name != "worker", text[-2000:]  # the broker is named...
        for secret in SECRETS:
            assert secret not in text, f"{secret} in the {name} log"  # ...its password is not
