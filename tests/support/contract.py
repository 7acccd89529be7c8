"""Client-side helpers of the contract suite: third-party libraries and the standard library
only, never ``worker.*`` (the stack itself is started with ``tests/support/stack.py``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

#: The ``seedworker`` command of this environment, as an operator runs it.
SEEDWORKER = str(Path(sys.executable).with_name("seedworker"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seedworker(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run([SEEDWORKER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"seedworker {' '.join(args)}: {done.returncode}\n{done.stderr[-3000:]}"
    return done.stdout


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1 that answers 204 and records every POST."""

    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, prefix: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path.startswith(prefix)]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def redis_client(broker_url: str) -> redis.Redis:
    """redis-py for a broker URL; kombu's ``redis+socket://`` (the embedded Redis) is ``unix://``."""
    if broker_url.startswith("redis+socket://"):
        broker_url = "unix://" + broker_url.removeprefix("redis+socket://")
    return redis.Redis.from_url(broker_url)
