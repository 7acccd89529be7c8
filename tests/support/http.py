"""A webhook receiver on 127.0.0.1 and free ports, for tests of any kind.  The standard
library only, never ``worker.*``: the contract suite uses it as a third party would."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """An HTTP server that records every POST; ``fail`` decides the answer per request (503
    when it says so, 204 otherwise), ``delay`` makes it a slow receiver."""

    fail: Callable[[str, int], bool] = lambda path, n: False
    delay: float = 0.0  # seconds before each answer
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    n = sum(1 for r in receiver.requests if r.path == self.path)
                    status = 503 if receiver.fail(self.path, n) else 204
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body, status))
                time.sleep(receiver.delay)
                self.send_response(status)
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

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def all(self, path: str) -> list[Received]:
        """Every request to ``path``, answered or failed."""
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def ok(self, path: str) -> list[Received]:
        """The requests to ``path`` that were answered 2xx."""
        with self.lock:
            return [r for r in self.requests if r.path == path and r.status < 300]

    def at(self, prefix: str) -> list[Received]:
        """Every request to a path that starts with ``prefix`` (a path with a query string)."""
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix)]
