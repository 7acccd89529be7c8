"""A redis-server of a test's own that is not the embedded one: TCP on a port, a password,
maybe TLS, started from the same binary the embedded one uses."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis

from tests.support.http import free_port
from worker.broker import connect, redis_server_binary


@dataclass
class ExternalRedis:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_redis_server(
    binary: str, directory: Path, extra: list[str], url: str, *, password: str, **client_kw: object
) -> ExternalRedis:
    """Start it in ``directory`` with ``password`` and the ``extra`` arguments (``--port``, TLS
    options) and wait until ``url`` answers a ping."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    cmd = [binary, "--dir", str(directory), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
    cmd += ["--requirepass", password, "--logfile", str(log), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = ExternalRedis(proc, url, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {log.read_text(errors='replace')[-1500:]}")
        with contextlib.suppress(redis.RedisError, OSError):
            client = connect(url, socket_connect_timeout=1, **client_kw)
            try:
                if client.ping():
                    return server
            finally:
                client.close()
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"redis-server did not answer: {log.read_text(errors='replace')[-1500:]}")


@contextlib.contextmanager
def password_redis_server(directory: Path, password: str) -> Iterator[ExternalRedis]:
    """A redis-server on a free TCP port of 127.0.0.1 that requires ``password`` (percent-encoded
    in its URL), stopped when the block ends."""
    port = free_port()
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    server = start_redis_server(redis_server_binary(), directory, ["--port", str(port)], url, password=password)
    try:
        yield server
    finally:
        server.stop()
