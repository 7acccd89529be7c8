"""``seedworker run``: the embedded Redis plus worker, watcher, publisher (and Flower) as
separate processes, restarted if they die, stopped in two stages.

Stage one sends SIGTERM: the watcher stops taking files, Celery finishes its running tasks
(a warm shutdown; unfinished late-ack messages stay in Redis), the publisher finishes its
batch.  After ``grace`` seconds, stage two sends SIGKILL to whatever is left.  Nothing is
lost either way: claimed files stay on disk, messages stay unacknowledged, events stay in
the outbox.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from worker.broker import EmbeddedRedis
from worker.errors import EXIT_CONFIG, ConfigError, StartRefused
from worker.instance import RunLock
from worker.logs import get_logger
from worker.settings import Settings

log = get_logger("seedworker.supervisor")


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0

    def start(self) -> None:
        # A session of its own: a terminal's Ctrl-C reaches only the supervisor, which then
        # stops the children in order.
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started_at = time.monotonic()
        log.info("started", process=self.name, pid=self.proc.pid)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)


@dataclass
class Supervisor:
    settings: Settings
    with_flower: bool = False
    grace: float = 30.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    children: list[Child] = field(default_factory=list)
    broker_url: str = ""
    owns_redis: EmbeddedRedis | None = None
    lock: RunLock | None = None
    failure: str = ""  # why watch_children gave up (a child stopped by its configuration)

    def start(self) -> None:
        """Check the configuration, take the data directory's lock (a second ``run``
        refuses), then start everything."""
        self._preflight()
        self.lock = RunLock(self.settings.data_dir)
        self.lock.acquire()
        if self.settings.broker_url:
            self.broker_url = self.settings.broker_url
        else:
            server = EmbeddedRedis(self.settings.redis_dir, self.settings.redis_appendfsync)
            if not server.is_running():
                self.owns_redis = server
            self.broker_url = server.start()
        self._upgrade_schema()
        for directory in (self.settings.inbox, self.settings.archive_dir, self.settings.failed_dir):
            Path(str(directory)).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SEEDWORKER_BROKER_URL": self.broker_url}
        cli = [sys.executable, "-m", "worker.cli"]
        self.children = [
            Child("worker", [*cli, "worker", "--no-banner"], env),  # seedworker run prints its own
            Child("publisher", [*cli, "publish"], env),
            Child("watcher", [*cli, "watch"], env),
        ]
        if self.with_flower:
            from worker.services import flower_command

            argv, fenv = flower_command(self.settings, self.broker_url)
            self.children.append(Child("flower", argv, fenv))
        for child in self.children:
            child.start()

    def _preflight(self) -> None:
        """``seedworker config --check`` in a child, before anything starts: every check any
        process makes at start (taxonomy, NER model, Flower's address, the database), so a
        mistake stops here with one line each instead of a restart loop.  A child of its own,
        for the reason :meth:`_upgrade_schema` gives (and spaCy's import)."""
        argv = [sys.executable, "-m", "worker.cli", "config", "--check", *(["--flower"] if self.with_flower else [])]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = [line.removeprefix("error: ") for line in done.stderr.strip().splitlines()]
            message = "\n".join(lines[-20:]) or f"`seedworker config --check` exited with {done.returncode}"
            raise ConfigError(message) if done.returncode == EXIT_CONFIG else StartRefused(message)

    def _upgrade_schema(self) -> None:
        """``seedworker db upgrade`` in a child process, before anything else starts.

        Run in a process of its own so that the supervisor, which lives as long as the
        stack, never imports SQLAlchemy and Alembic (about 40 MB it would keep for nothing).
        """
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", "db", "upgrade"], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ConfigError(f"the database could not be migrated: {done.stderr.strip()[-2000:] or done.stdout}")
        log.debug("schema", result=done.stdout.strip())

    def watch_children(self) -> None:
        """Restart a child that died on its own, with a growing pause if it keeps dying."""
        while not self.stop_event.wait(0.5):
            for child in self.children:
                if child.proc is not None and child.proc.poll() is not None and not self.stop_event.is_set():
                    code = child.proc.returncode
                    if code == EXIT_CONFIG:  # restarting cannot help: the same settings, the same refusal
                        self.failure = f"the {child.name} stopped on a configuration error (its message is above)"
                        log.error("configuration error, stopping everything", process=child.name, code=code)
                        self.stop_event.set()
                        return
                    quick = time.monotonic() - child.started_at < 10
                    child.restarts = child.restarts + 1 if quick else 1
                    pause = min(30.0, 0.5 * 2 ** min(child.restarts, 6))
                    log.error("process died, restarting", process=child.name, code=code, pause=pause)
                    if self.stop_event.wait(pause):
                        return
                    child.start()

    def stop(self) -> None:
        self.stop_event.set()
        # Watcher first (no new work), then workers and publisher.
        for name in ("watcher", "flower", "worker", "publisher"):
            for child in self.children:
                if child.name == name:
                    child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("did not stop in time, killing", process=child.name)
                child.signal(signal.SIGKILL)
                child.proc.wait()
        started = bool(self.children) or self.owns_redis is not None
        if self.owns_redis is not None:
            self.owns_redis.stop()
        if self.lock is not None:
            self.lock.release()
        if started:
            log.info("all stopped")
