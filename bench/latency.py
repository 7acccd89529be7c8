"""Latency at light load: one file every 1/rate seconds, from its close to its event.

Each file is written the way users do (a hidden temporary name, closed, then renamed into
the inbox); the clock starts when the write has closed the file and stops at the Redis
timestamp of the file's event on the stream (entry ids carry the server's milliseconds, and
the server runs on this machine, so both clocks are the same).  Files are sent on a fixed
schedule, not after the previous event, so a slow document delays none of the next ones'
start times.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import corpus
from bench.e2e import STREAM, BenchStack


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _event_times(client: Any) -> dict[str, float]:
    """filename -> Redis time (s) of its first event."""
    out: dict[str, float] = {}
    for entry_id, fields in client.xrange(STREAM):
        event = json.loads(fields[b"event"])
        name = (event.get("data") or {}).get("filename")
        if name and name not in out:
            out[name] = int(entry_id.decode().split("-", 1)[0]) / 1000.0
    return out


def measure_latency(
    profile: str,
    workdir: Path,
    *,
    rate: float = 5.0,
    seconds: float = 60.0,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    count = max(1, int(rate * seconds))
    # Distinct articles only: a latency sample is one document's path through every stage.
    files = [f for f in corpus.build(count * 2, seed=11) if f.duplicate_of is None][:count]
    stack = BenchStack(workdir / f"latency-{profile}", profile, extra_env=dict(env or {}))
    stack.start()
    closed: dict[str, float] = {}
    client = stack.redis()
    try:
        # A first document warms every process up (lazy imports, first connections).
        warm = stack.inbox / "warm-up.txt"
        warm.write_bytes(corpus.article(10**6, seed=11))
        deadline = time.monotonic() + timeout
        while client.xlen(STREAM) < 1:
            stack._check(deadline)
            time.sleep(0.05)
        start = time.monotonic() + 0.5
        for i, f in enumerate(files):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tmp = stack.inbox / f".{f.name}.part"
            with tmp.open("wb") as fh:
                fh.write(f.data)
            closed[f.name] = time.time()
            os.rename(tmp, stack.inbox / f.name)
        deadline = time.monotonic() + timeout
        while client.xlen(STREAM) < count + 1:
            stack._check(deadline)
            time.sleep(0.05)
        seen = _event_times(client)
    finally:
        client.close()
        stack.stop()
    latencies = [(seen[name] - t) * 1000 for name, t in closed.items() if name in seen]
    return summary(profile, rate, count, latencies)


def summary(profile: str, rate: float, count: int, latencies: list[float]) -> dict[str, Any]:
    """The ``latency`` part of results.json (docs/benchmarks.md lists its keys)."""
    return {
        "profile": profile,
        "rate_per_second": rate,
        "files": count,
        "measured": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
    }


if __name__ == "__main__":
    import sys
    import tempfile

    profile_arg = sys.argv[1] if len(sys.argv) > 1 else "fast"
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    with tempfile.TemporaryDirectory(prefix="seedworker-bench-") as tmp:
        print(json.dumps(measure_latency(profile_arg, Path(tmp), seconds=secs), indent=2))
