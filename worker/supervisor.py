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

from worker import datamode
from worker.broker import EmbeddedRedis
from worker.errors import EXIT_CONFIG, ConfigError, StartRefused
from worker.instance import RunLock
from worker.logs import get_logger
from worker.retry import RetryPolicy
from worker.settings import Settings

log = get_logger("seedworker.supervisor")
#: A child that died within 10 s of its start waits 1, 2, 4 ... 30 s before the next start.
RESTART_BACKOFF = RetryPolicy(base=0.5, cap=30.0, jitter=0.0)


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
        log.info("started", child=self.name, pid=self.proc.pid)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)


def webhook_worker_argv(settings: Settings, cli: list[str]) -> list[str]:
    """The worker that consumes only the webhook queue, with threads (deliveries wait on the network)."""
    import socket

    return [
        *cli,
        "worker",
        f"--queues={settings.webhook_queue}",
        "--pool=threads",
        f"--concurrency={settings.webhook_concurrency}",
        f"--node-name=seedworker-webhooks@{socket.gethostname()}",
    ]


@dataclass
class Supervisor:
    settings: Settings
    with_flower: bool = False
    grace: float = 30.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    children: list[Child] = field(default_factory=list)
    broker_url: str = ""
    owns_redis: EmbeddedRedis | None = None
    _redis_retry_at: float = 0.0
    lock: RunLock | None = None
    failure: str = ""  # why watch_children gave up (a child stopped by its configuration)

    def start(self) -> None:
        """Check the configuration, take the data directory's lock (a second ``run``
        refuses), then start everything."""
        datamode.apply(self.settings)  # before anything creates a file; the children inherit it
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
            if self.owns_redis is not None:
                self.owns_redis.mark_supervised()
        self._upgrade_schema()
        for directory in (self.settings.inbox, self.settings.archive_dir, self.settings.failed_dir):
            Path(str(directory)).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SEEDWORKER_BROKER_URL": self.broker_url}
        cli = [sys.executable, "-P", "-m", "worker.cli"]  # -P: the working directory is not on sys.path
        self.children = [
            Child("worker", [*cli, "worker", "--no-banner"], env),  # seedworker run prints its own
            Child("publisher", [*cli, "publish"], env),
            Child("watcher", [*cli, "watch"], env),
        ]
        if self.settings.webhooks:  # deliveries on their own queue and threads: see worker/relay/webhooks.py
            self.children.append(Child("webhooks", webhook_worker_argv(self.settings, cli), env))
        if self.with_flower:
            from worker.flower import flower_command

            argv, fenv = flower_command(self.settings, self.broker_url)
            self.children.append(Child("flower", argv, fenv))
        for child in self.children:
            child.start()

    def _preflight(self) -> None:
        """``seedworker config --check`` in a child, before anything starts: every check any
        process makes at start (taxonomy, NER model, Flower's address, the database), so a
        mistake stops here with one line each instead of a restart loop.  A child of its own,
        for the reason :meth:`_upgrade_schema` gives (and spaCy's import)."""
        argv = [
            sys.executable,
            "-P",
            "-m",
            "worker.cli",
            "config",
            "--check",
            *(["--flower"] if self.with_flower else []),
        ]
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
            [sys.executable, "-P", "-m", "worker.cli", "db", "upgrade"], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ConfigError(f"the database could not be migrated: {done.stderr.strip()[-2000:] or done.stdout}")
        log.debug("schema", result=done.stdout.strip())

    def watch_children(self) -> None:
        """Restart a child that died on its own, with a growing pause if it keeps dying."""
        while not self.stop_event.wait(0.5):
            self._keep_redis_up()
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
                    pause = RESTART_BACKOFF.delay(child.restarts)
                    log.error("process died, restarting", child=child.name, code=code, pause=pause)
                    if self.stop_event.wait(pause):
                        return
                    child.start()

    def _keep_redis_up(self) -> None:
        """Restart the embedded Redis this supervisor started if its process died (kill -9,
        OOM): the AOF brings back the queue, unacknowledged messages, replies and the stream,
        on the same socket (or port), and every child reconnects by itself.  A server that is
        only stopped (SIGSTOP) still has its process and is left alone."""
        server = self.owns_redis
        if server is None or server.process_alive() or time.monotonic() < self._redis_retry_at:
            return
        log.error("embedded Redis died, restarting", pid=server.pid(), directory=str(server.directory))
        try:
            url = server.start()
        except Exception as exc:  # a full disk, a corrupt AOF: say so, try again later
            self._redis_retry_at = time.monotonic() + 5.0
            log.error("embedded Redis did not restart, will retry", error=str(exc)[-500:])
            return
        if url != self.broker_url:  # cannot happen: same socket, or the same port again
            log.error("embedded Redis came back on another address", url=url)
        log.info("embedded Redis restarted", pid=server.pid())

    def stop(self) -> None:
        self.stop_event.set()
        # Watcher first (no new work), then workers and publisher.
        for name in ("watcher", "flower", "worker", "webhooks", "publisher"):
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
                log.warning("did not stop in time, killing", child=child.name)
                child.signal(signal.SIGKILL)
                child.proc.wait()
        started = bool(self.children) or self.owns_redis is not None
        if self.owns_redis is not None:
            self.owns_redis.unmark_supervised()
            self.owns_redis.stop()
        if self.lock is not None:
            self.lock.release()
        if started:
            log.info("all stopped")
