"""Flower is no way in (issue 19 §3): it never shows a secret from the configuration, it
refuses anonymous callers even on loopback, and it sends no task for anyone.  Each test drives
a real Flower over HTTP with httpx, next to a real worker (empty credentials are refused before
Flower starts: tests/unit/test_flower_command.py).
"""

from __future__ import annotations

import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.http import free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

DB_PASSWORD = "db-Pa55word-never-shown"  # PostgreSQL here trusts local clients: any password works


@pytest.fixture
def flower_on_loopback(tmp_path: Path, broker_url: str, postgres_url: str) -> Iterator[tuple[Stack, str]]:
    """Flower with no SEEDWORKER_FLOWER_BASIC_AUTH on 127.0.0.1, a worker whose database URL
    carries a password."""
    port = free_port()
    database_url = make_url(postgres_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    stack = Stack(tmp_path, broker_url, database_url, extra_env={"SEEDWORKER_FLOWER_PORT": str(port)})
    stack.start("flower", "flower")
    stack.start_all()
    base = f"http://127.0.0.1:{port}"
    stack.wait_for(lambda: _answers(f"{base}/healthcheck"), 60, what="Flower up")
    yield stack, base
    if stack.procs["flower"].poll() is None:
        stack.kill("flower", signal.SIGTERM)
    stack.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _login(stack: Stack) -> tuple[str, str]:
    path = stack.root / "data" / "flower-credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the generated password is readable by others"
    user, _, password = path.read_text().strip().partition(":")
    assert user and len(password) >= 20
    return user, password


def test_flower_without_configured_auth_still_requires_a_login(flower_on_loopback: tuple[Stack, str]) -> None:
    stack, base = flower_on_loopback
    assert httpx.get(f"{base}/api/workers", timeout=10).status_code == 401
    assert httpx.get(f"{base}/api/tasks", timeout=10).status_code == 401
    assert httpx.get(f"{base}/", timeout=10).status_code == 401  # the pages too, not only the API
    assert httpx.get(f"{base}/api/workers", auth=("seedworker", "guess"), timeout=10).status_code == 401
    assert httpx.get(f"{base}/api/workers", auth=_login(stack), timeout=10).status_code == 200
    assert "flower-credentials" in stack.tail("flower", 400)  # the operator is told where the password is


def test_flower_shows_no_secret_of_the_configuration(flower_on_loopback: tuple[Stack, str]) -> None:
    stack, base = flower_on_loopback
    auth = _login(stack)

    def workers() -> dict[str, Any] | None:
        found = httpx.get(f"{base}/api/workers?refresh=1", auth=auth, timeout=30).json()
        return found if any(w.get("conf") for w in found.values()) else None

    answer = stack.wait_for(workers, 90, what="the worker's configuration in Flower")
    node = next(name for name, w in answer.items() if w.get("conf"))
    page = httpx.get(f"{base}/worker/{node}", auth=auth, timeout=30)
    assert page.status_code == 200
    for text in (httpx.get(f"{base}/api/workers?refresh=1", auth=auth, timeout=30).text, page.text):
        assert DB_PASSWORD not in text
        assert "seedworker_settings" not in text and "database_url" not in text


def test_flower_sends_no_task_and_controls_nothing(flower_on_loopback: tuple[Stack, str]) -> None:
    stack, base = flower_on_loopback
    body = {"kwargs": {"request": {"text": "injected through Flower", "filename": "x.txt"}}}
    anonymous = httpx.post(f"{base}/api/task/async-apply/seedworker.ingest", json=body, timeout=10)
    assert anonymous.status_code == 401
    auth = _login(stack)
    for path in ("/api/task/async-apply/seedworker.ingest", "/api/task/send-task/seedworker.ingest"):
        assert httpx.post(f"{base}{path}", json=body, auth=auth, timeout=10).status_code == 403
    node = f"w1@{stack.root.name}"
    assert httpx.post(f"{base}/api/worker/pool/restart/{node}", auth=auth, timeout=10).status_code == 403
    assert httpx.post(f"{base}/api/worker/shutdown/{node}", auth=auth, timeout=10).status_code == 403
    assert stack.procs["worker"].poll() is None
    assert not stack.events(), "a document came in through Flower"
