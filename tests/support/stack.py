"""A real seedworker stack for end-to-end and chaos tests: separate OS processes started
exactly as an operator would (`python -m worker.cli worker|watch|publish`), pointed at the
test's embedded Redis, database and directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from worker.broker import connect

#: The commands that run until stopped: a test that starts one is an end-to-end test and must
#: be marked ``e2e`` (``make test-fast`` leaves those out).  tests/conftest.py sets
#: ``running_test_is_e2e`` for each test; None outside pytest.
LONG_RUNNING = frozenset({"worker", "watch", "publish", "run", "flower"})
running_test_is_e2e: bool | None = None

STORED = "org.seedworker.document.stored"
DUPLICATE = "org.seedworker.document.duplicate"
FAILED = "org.seedworker.document.failed"


def files_under(root: Path) -> list[Path]:
    """Every file below ``root``, for folders a running watcher changes: os.walk skips a claim
    folder removed mid-walk, where Path.rglob raises FileNotFoundError."""
    return [Path(folder) / name for folder, _, names in os.walk(root) for name in names]


def count_rows(database_url: str, model: type) -> int:
    """Rows of one table, read with a short-lived engine of its own (the stack owns the data)."""
    from sqlalchemy import func, select

    from worker.store.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


@dataclass
class Stack:
    root: Path
    broker_url: str
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)  # name -> seedworker subcommand
    argv: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> its whole command line
    revived: list[str] = field(default_factory=list)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "data" / "archive"

    @property
    def failed(self) -> Path:
        return self.root / "data" / "failed"

    @property
    def stream(self) -> str:
        return self.env()["SEEDWORKER_EVENT_STREAM"]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
        env.update(
            {
                "SEEDWORKER_DATA_DIR": str(self.root / "data"),
                "SEEDWORKER_INBOX": str(self.inbox),
                "SEEDWORKER_BROKER_URL": self.broker_url,
                "SEEDWORKER_DATABASE_URL": self.database_url,
                "SEEDWORKER_EVENT_STREAM": "seedworker:events",
                "SEEDWORKER_LOG_FORMAT": "json",
                "SEEDWORKER_STABLE_SECONDS": "0.3",
                "SEEDWORKER_POLL_INTERVAL": "0.2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        if args and args[0] in LONG_RUNNING and running_test_is_e2e is False:
            raise RuntimeError(f"`seedworker {args[0]}` runs until stopped: mark this test @pytest.mark.e2e")
        log = self.root / f"{name}.log"
        self.logs[name] = log
        fh = log.open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "worker.cli", *args],
            cwd=self.root,
            env=self.env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        self.procs[name] = proc
        self.commands[name] = args[0] if args else ""
        self.argv[name] = args
        return proc

    def start_all(self, *, concurrency: int = 2) -> Stack:
        """Worker, publisher and watcher, ready.  If any of them fails to start, the others are
        stopped before the error propagates: a fixture that raises gets no teardown, and a
        worker left running on the shared Redis would take the next tests' messages."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        try:
            self.start("worker", "worker", f"--concurrency={concurrency}", f"--node-name=w1@{self.root.name}")
            self.start("publisher", "publish")
            self.start("watcher", "watch", "--watcher-id=test-watcher")
            self.wait_for_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_worker(self, timeout: float = 60.0) -> None:
        """Until a worker answers a ping (its children have loaded their models).  On failure
        (a process died, no answer) every process of the stack is stopped first: fixtures call
        this while starting, and one that raises gets no teardown."""
        from worker.app import create_app
        from worker.settings import Settings

        app = create_app(Settings(_env_file=None), self.broker_url)  # type: ignore[call-arg]
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                if app.control.ping(timeout=0.5, limit=1):  # limit: return on the first reply, not after 0.5 s
                    return
            raise TimeoutError(f"no worker answered within {timeout}s\n{self.tail('worker')}")
        except BaseException:
            self.stop()
            raise
        finally:
            app.close()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def revive(self) -> list[str]:
        """Restart every child that has exited, as ``seedworker run``'s supervisor does, and
        return their names.  For tests that run the processes one by one through a broker
        outage: kombu can end a Celery worker while Redis is down (``restore_unacked`` meets a
        connection that is already gone: ``'NoneType' object has no attribute 'hostname'``,
        celery/kombu#582 and #970), and in production it is the supervisor, not the worker,
        that survives that.  The messages the worker held are unacked in Redis and come back."""
        names = [name for name, proc in self.procs.items() if proc.poll() is not None]
        for name in names:
            self.revived.append(f"{name} (exit {self.procs[name].returncode})")
            self.start(name, *self.argv[name])
        return names

    def tail(self, name: str, lines: int = 60) -> str:
        path = self.logs.get(name)
        if not path or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30.0, *, group: bool = True) -> None:
        """Signal a process and wait for it to exit.  ``group``: the whole process group, as a
        crash of the machine would; otherwise the process alone, as the deployments stop one
        (systemd ``KillMode=mixed``, ``docker stop``, Kubernetes), leaving a Celery worker's
        pool children to it."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(proc.pid, sig)
        proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Teardown.  Watcher first (no new work), then the rest, all at once: none waits 30 s
        for a SIGKILL.  Celery workers get SIGKILL straight away: an idle worker's warm shutdown
        takes 1.3-2 s, a minute or more over the suite, and teardown checks nothing about it (the
        SIGTERM chaos test and test_run do).  Every other process (watcher, publisher, Flower,
        ``seedworker run``, which must stop the Redis it started) gets SIGTERM."""
        first = ("watcher", "worker", "publisher")
        for name in (*first, *(n for n in self.procs if n not in first)):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                sig = signal.SIGKILL if self.commands.get(name) == "worker" else signal.SIGTERM
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    # -- observing ----------------------------------------------------------------------------
    def redis(self) -> redis.Redis:
        return connect(self.broker_url)

    def events(self) -> list[dict[str, Any]]:
        client = self.redis()
        try:
            if not client.exists(self.stream):
                return []
            return [json.loads(f[b"event"]) for _, f in client.xrange(self.stream)]
        finally:
            client.close()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            self.check_alive()
            time.sleep(0.05)
        raise TimeoutError(
            f"{what} not reached within {timeout}s\n"
            + "\n".join(f"--- {name}\n{self.tail(name)}" for name in self.procs)
        )

    def wait_for_events(self, count: int, timeout: float = 30.0, **match: str) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]] | None:
            evs = [e for e in self.events() if all(_get(e, k) == v for k, v in match.items())]
            return evs if len(evs) >= count else None

        return list(self.wait_for(found, timeout, what=f"{count} event(s) matching {match}"))

    def drop(self, name: str, data: bytes) -> Path:
        """Write a file the way users do: into a temp name, then rename into the inbox."""
        dest = self.inbox / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.part"
        tmp.write_bytes(data)
        os.rename(tmp, dest)
        return dest


def _get(event: dict[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value
