"""Client-side helpers of the contract suite: third-party libraries and the standard library
only, never ``worker.*`` (the stack itself is started with ``tests/support/stack.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis

#: The ``seedworker`` command of this environment, as an operator runs it.
SEEDWORKER = str(Path(sys.executable).with_name("seedworker"))


def seedworker(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run([SEEDWORKER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"seedworker {' '.join(args)}: {done.returncode}\n{done.stderr[-3000:]}"
    return done.stdout


def redis_client(broker_url: str) -> redis.Redis:
    """redis-py for a broker URL; kombu's ``redis+socket://`` (the embedded Redis) is ``unix://``."""
    if broker_url.startswith("redis+socket://"):
        broker_url = "unix://" + broker_url.removeprefix("redis+socket://")
    return redis.Redis.from_url(broker_url)
