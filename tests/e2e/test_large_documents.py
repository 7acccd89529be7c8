"""A pool process that grew past ``WORKER_MAX_MEMORY_PER_CHILD`` is replaced after its task
(issue 19 §9: a 19 MB document left 1.0 GB held by its pool process)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.support.faults import FAST
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def _pool(stack: Stack) -> set[int]:
    return {p.pid for p in psutil.Process(stack.procs["worker"].pid).children() if p.status() != psutil.STATUS_ZOMBIE}


def test_a_pool_process_over_the_memory_limit_is_replaced(tmp_path: Path, broker_url: str) -> None:
    env = {**FAST, "SEEDWORKER_WORKER_MAX_MEMORY_PER_CHILD": "1"}  # 1 KiB: every process is over it
    stack = Stack(tmp_path, broker_url, f"sqlite:///{tmp_path / 'db.sqlite'}", extra_env=env)
    stack.start_all(concurrency=1)
    try:
        first = stack.wait_for(lambda: _pool(stack), 30, what="the pool process")
        stack.drop("one.txt", b"Harbour report\n\nThe ferries left the northern harbour on time today.\n")
        stack.wait_for_events(1, timeout=60)
        second = stack.wait_for(lambda: (p := _pool(stack)) and not p & first and p, 60, what="a new pool process")
        stack.drop("two.txt", b"Council report\n\nThe council met on Tuesday and agreed the budget.\n")
        stack.wait_for_events(2, timeout=60)
        stack.wait_for(lambda: (p := _pool(stack)) and not p & second, 60, what="another new pool process")
        assert sorted(e["data"]["filename"] for e in stack.events()) == ["one.txt", "two.txt"]
    finally:
        stack.stop()
