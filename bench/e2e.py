"""End-to-end throughput: a burst of files into the inbox → the last event on the stream.

The stack is ``seedworker run`` itself (``python -m worker.cli run``: the embedded Redis,
the Celery worker, the publisher and the watcher as separate processes, SQLite in the data
directory), configured only through ``SEEDWORKER_*`` variables.  The corpus is written to a
staging folder beside the inbox first; the clock starts when the first file is renamed into
the inbox and stops at the Redis timestamp of the stream entry that completes the count.
Before the burst, the stack processes ``WARM_UP_FILES`` other articles (not counted) so
that CPU per document is the steady state's, as in the ceiling.  Peak RSS and CPU of every
process of the stack (the supervisor, its children and theirs, and the daemonised
redis-server) are sampled with psutil throughout; CPU counts from the burst on.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import corpus
from bench.ceiling import NER_MODEL

STREAM = "seedworker:events"
REPO = Path(__file__).resolve().parents[1]


def _role(proc: psutil.Process) -> str:
    """A short stable name for a process of the stack (``worker-child-2``, ``publisher``…)."""
    try:
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"pid-{proc.pid}"
    joined = " ".join(cmd)
    if "redis-server" in joined:
        return "redis-server"
    for name in ("publish", "watch", "flower"):
        if name in cmd:
            return {"publish": "publisher", "watch": "watcher", "flower": "flower"}[name]
    if "worker" in cmd:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            parent = proc.parent()
            if parent is not None and "worker" in parent.cmdline():
                return "worker-child"  # a prefork child has its parent's command line
        return "worker-main"
    if "run" in cmd:
        return "supervisor"
    return cmd[0].rsplit("/", 1)[-1] if cmd else f"pid-{proc.pid}"


@dataclass
class RssSampler:
    """Peak resident memory of each process of the stack and of their sum, sampled."""

    root_pid: int
    redis_pidfile: Path
    interval: float = 0.5
    peaks: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds, last seen
    cpu_base: dict[str, float] = field(default_factory=dict)  # at mark(): start-up excluded
    peak_total: int = 0
    peak_pss_total: int = 0  # proportional set size: shared pages counted once in the sum
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _processes(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        with contextlib.suppress(OSError, ValueError, psutil.NoSuchProcess):
            procs.append(psutil.Process(int(self.redis_pidfile.read_text().strip())))
        return procs

    def sample(self) -> None:
        total = pss_total = 0
        names: Counter[str] = Counter()
        for proc in self._processes():
            try:
                mem = proc.memory_full_info()
                rss = mem.rss
                pss_total += getattr(mem, "pss", rss)
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            role = _role(proc)
            names[role] += 1
            if role == "worker-child":
                role = f"worker-child-{names[role]}"
            total += rss
            self.peaks[role] = max(self.peaks.get(role, 0), rss)
            self.cpu[role] = times.user + times.system
        self.peak_total = max(self.peak_total, total)
        self.peak_pss_total = max(self.peak_pss_total, pss_total)
        self.samples += 1

    def mark(self) -> None:
        """From now on, CPU time counts (imports and model loading before this do not)."""
        self.sample()
        self.cpu_base = dict(self.cpu)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()

    def as_dict(self) -> dict[str, Any]:
        mb = 1024 * 1024
        return {
            "per_process_mb": {k: round(v / mb, 1) for k, v in sorted(self.peaks.items())},
            "sum_of_peaks_mb": round(sum(self.peaks.values()) / mb, 1),
            "peak_total_mb": round(self.peak_total / mb, 1),
            "peak_pss_total_mb": round(self.peak_pss_total / mb, 1),
            "samples": self.samples,
            "cpu_seconds": {k: round(v - self.cpu_base.get(k, 0.0), 2) for k, v in sorted(self.cpu.items())},
        }


class RunChild:
    """A ``seedworker run`` child writing ``stack.log`` in ``root``: whether it is still up, and
    the tail of its log, and stopping it (the bench's stacks and ``bench/watcher_cost.py``'s)."""

    root: Path
    proc: subprocess.Popen[bytes] | None

    def _check(self, deadline: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"seedworker run exited with {self.proc.returncode}:\n{self.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack not ready\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        path = self.root / "stack.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM (the two-stage shutdown), SIGKILL to the group after a minute."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class BenchStack(RunChild):
    """``seedworker run`` in a directory of its own, for one profile."""

    root: Path
    profile: str
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    broker_url: str = ""

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
        env.update(
            {
                "SEEDWORKER_DATA_DIR": str(self.data_dir),
                "SEEDWORKER_INBOX": str(self.inbox),
                "SEEDWORKER_NER_MODEL": NER_MODEL if self.profile == "full" else "",
                "SEEDWORKER_LOG_FORMAT": "json",
                "PYTHONPATH": str(REPO),
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 120.0) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        log = (self.root / "stack.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "worker.cli", "run", "--grace", "20"],
            cwd=self.root,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        from worker.app import create_app
        from worker.settings import Settings

        deadline = time.monotonic() + timeout
        url_file = self.data_dir / "redis" / "url"
        while not url_file.exists():
            self._check(deadline)
            time.sleep(0.1)
        self.broker_url = url_file.read_text().strip()
        app = create_app(Settings(_env_file=None), self.broker_url)
        while not app.control.ping(timeout=0.5):
            self._check(deadline)
        # The worker answers before the watcher has scanned; give it its own moment.
        while not (self.root / "inbox" / ".seedworker-processing").exists():
            self._check(deadline)
            time.sleep(0.05)

    def redis(self) -> Any:
        from worker.broker import connect

        return connect(self.broker_url)

    def rss_sampler(self) -> RssSampler:
        assert self.proc is not None
        return RssSampler(self.proc.pid, self.data_dir / "redis" / "redis.pid")


#: Files a stack processes before the burst (not counted): lazy loads in every worker child
#: (language model, keyword extractor, spaCy's first batch) happen then, as the ceiling's
#: warm-up batch does, so both measure the steady state.
WARM_UP_FILES = 64


def warm_up(stack: BenchStack, client: Any, timeout: float) -> None:
    """Distinct articles outside the corpus, dropped at once (several batches, so every worker
    child is likely to get one), then wait for their events."""
    for i in range(WARM_UP_FILES):
        (stack.inbox / f"warm-up-{i:03d}.txt").write_bytes(corpus.article(2 * 10**6 + i, seed=99))
    wait_for_stream(client, WARM_UP_FILES, timeout, stack)


def wait_for_stream(client: Any, count: int, timeout: float, stack: BenchStack) -> None:
    deadline = time.monotonic() + timeout
    while client.xlen(STREAM) < count:
        stack._check(deadline)
        time.sleep(0.1)


def event_counts(client: Any, *, skip: int = 0) -> tuple[Counter[str], float]:
    """Event types on the stream after the first ``skip`` entries (``stored``, ``duplicate``…,
    and ``duplicate_exact`` / ``duplicate_near`` by the event's ``kind``) and the Redis time (s)
    of the last entry."""
    types: Counter[str] = Counter()
    last = ""
    start = "-"
    while True:
        chunk = client.xrange(STREAM, min=start, max="+", count=5000)
        if not chunk:
            break
        for entry_id, fields in chunk:
            last = entry_id.decode()
            if skip > 0:
                skip -= 1
                continue
            kind = fields[b"type"].decode().rsplit(".", 1)[-1]
            types[kind] += 1
            if kind == "duplicate":
                data = json.loads(fields[b"event"]).get("data") or {}
                types[f"duplicate_{data.get('kind', 'unknown')}"] += 1
        start = "(" + last
    last_ms = int(last.split("-", 1)[0]) if last else 0
    return types, last_ms / 1000.0


def expected_outcomes(files: list[corpus.CorpusFile], env: dict[str, str] | None = None) -> corpus.Expected:
    """:func:`bench.corpus.expected` under the stacks' ``SEEDWORKER_*`` settings (``--set``)."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        return corpus.expected(files)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def counts_match(types: Counter[str] | dict[str, int], expected: corpus.Expected) -> bool:
    """Stored, exact and near outcomes on the stream are the ones the corpus should give."""
    return (
        types.get("stored", 0) == expected.stored
        and types.get("duplicate_exact", 0) == expected.exact
        and types.get("duplicate_near", 0) == expected.near
        and types.get("failed", 0) == 0
    )


def measure_burst(
    profile: str, count: int, workdir: Path, *, timeout: float = 900.0, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Drop ``count`` corpus files into a running stack at once; docs/s to the last event."""
    root = workdir / f"e2e-{profile}"
    files = corpus.build(count)
    expected = expected_outcomes(files, env)
    staging = root / "staging"
    staged = corpus.write(files, staging)
    stack = BenchStack(root, profile, extra_env=dict(env or {}))
    stack.start()
    sampler = stack.rss_sampler()
    sampler.start()
    client = stack.redis()
    try:
        warm_up(stack, client, timeout)
        sampler.mark()
        started = time.time()
        corpus.burst(staged, stack.inbox)
        renamed = time.time()
        wait_for_stream(client, WARM_UP_FILES + count, timeout, stack)
        types, last_event = event_counts(client, skip=WARM_UP_FILES)
        sampler.stop()
    finally:
        sampler.stop()
        client.close()
        stack.stop()
    return burst_result(
        profile, files, seconds=last_event - started, renamed=renamed - started, types=types, sampler=sampler.as_dict()
    ) | {"expected": expected.as_dict(), "correct": counts_match(types, expected)}


def burst_result(
    profile: str,
    files: list[corpus.CorpusFile],
    *,
    seconds: float,
    renamed: float,
    types: Counter[str],
    sampler: dict[str, Any],
) -> dict[str, Any]:
    """The ``e2e`` part of results.json for one burst (docs/benchmarks.md lists its keys)."""
    count = len(files)
    cpu = sampler["cpu_seconds"]
    return {
        "profile": profile,
        "files": count,
        "seconds": round(seconds, 3),
        "docs_per_second": round(count / seconds, 1) if seconds > 0 else 0.0,
        "burst_rename_seconds": round(renamed, 3),
        "events": dict(types),
        "cpu_ms_per_doc": round(1000 * sum(cpu.values()) / count, 2) if count else 0.0,
        "rss": sampler,
        "corpus": corpus.fingerprint(files),
    }


if __name__ == "__main__":
    import tempfile

    profile_arg = sys.argv[1] if len(sys.argv) > 1 else "fast"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    with tempfile.TemporaryDirectory(prefix="seedworker-bench-") as tmp:
        print(json.dumps(measure_burst(profile_arg, n, Path(tmp)), indent=2))
