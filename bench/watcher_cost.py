"""What the watcher costs: CPU milliseconds per document, and idle CPU with a large inbox.

    python -m bench.watcher_cost                     # 2,000 files through a real stack
    python -m bench.watcher_cost --subfolders 5000   # idle CPU with 5,000 sub-folders
    python -m bench.watcher_cost --repo /tmp/old     # the same against another source tree (A/B)

The stack is ``seedworker run`` (embedded Redis, a real Celery worker, the publisher and the
watcher as processes; fast profile, SQLite), started from ``--repo`` in a temporary folder.
Only the watcher process is measured, by its CPU time (user + system, psutil), never by the
clock: the machine is shared and wall time says little.

* docs mode: the files are written to a staging folder first, the watcher's idle rate is
  measured for a few seconds, then every file is renamed into the inbox at once and the clock
  of the watcher's CPU runs until the archive holds all of them.  ``net`` subtracts the idle
  rate over the same span, so what is left is what the documents cost.
* ``--subfolders N``: N empty sub-folders exist in the inbox before the stack starts; after
  start-up (its scan and watches) has settled, the watcher's CPU over ``--idle-seconds``
  (at least 30) is its idle cost, as a share of one core.

Prints one JSON object.  Issue 21's target: idle below 1 % of a core with 5,000 sub-folders.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.e2e import RunChild

REPO = Path(__file__).resolve().parents[1]
WORDS = (  # noqa: SIM905 - a sentence reads better than 45 quoted words
    "the minister said on tuesday that the government would review the budget after talks with"
    " regional leaders analysts expect growth to slow as prices rise and exports fall while the"
    " central bank weighs another cut in interest rates officials in the capital declined to comment"
).split()


def _article(rng: random.Random, index: int) -> bytes:
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(60)).capitalize() + "." for _ in range(6)]
    return (f"Story {index}\n\n" + "\n\n".join(paragraphs) + f"\n\nFigure {index * 7919}.\n").encode()


class Stack(RunChild):
    def __init__(self, root: Path, repo: Path) -> None:
        self.root, self.repo = root, repo
        self.inbox = root / "inbox"
        self.data = root / "data"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
        env.update(
            {
                "SEEDWORKER_DATA_DIR": str(self.data),
                "SEEDWORKER_INBOX": str(self.inbox),
                "SEEDWORKER_NER_MODEL": "",
                "SEEDWORKER_LOG_FORMAT": "json",
                "PYTHONPATH": str(self.repo),
            }
        )
        self.inbox.mkdir(parents=True, exist_ok=True)
        with (self.root / "stack.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "worker.cli", "run", "--grace", "20"],
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self.watcher() is None or not (self.inbox / ".seedworker-processing").exists():
            self._check(deadline)
            time.sleep(0.2)

    def watcher(self) -> psutil.Process | None:
        assert self.proc is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    if "watch" in child.cmdline():
                        return child
        return None


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _archived(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def measure_docs(stack: Stack, files: int, settle: float, idle_seconds: float, timeout: float) -> dict[str, Any]:
    rng = random.Random(21)  # noqa: S311 - a reproducible corpus, not crypto
    staging = stack.root / "staging"
    staging.mkdir()
    for i in range(files):
        (staging / f"doc{i:05}.txt").write_bytes(_article(rng, i))
    watcher = stack.watcher()
    assert watcher is not None
    time.sleep(settle)
    idle_start, idle_cpu = time.monotonic(), _cpu(watcher)
    time.sleep(idle_seconds)
    idle_rate = (_cpu(watcher) - idle_cpu) / (time.monotonic() - idle_start)
    cpu0, t0 = _cpu(watcher), time.monotonic()
    for i in range(files):
        os.rename(staging / f"doc{i:05}.txt", stack.inbox / f"doc{i:05}.txt")
    archive = stack.data / "archive"
    deadline = time.monotonic() + timeout
    while _archived(archive) < files:
        stack._check(deadline)
        time.sleep(0.2)
    cpu1, t1 = _cpu(watcher), time.monotonic()
    gross = cpu1 - cpu0
    net = gross - idle_rate * (t1 - t0)
    return {
        "mode": "docs",
        "files": files,
        "seconds": round(t1 - t0, 2),
        "watcher_cpu_seconds": round(gross, 3),
        "watcher_idle_cpu_share": round(idle_rate, 5),
        "watcher_ms_per_doc": round(1000 * gross / files, 3),
        "watcher_net_ms_per_doc": round(1000 * net / files, 3),
    }


def measure_idle(stack: Stack, subfolders: int, settle: float, idle_seconds: float) -> dict[str, Any]:
    watcher = stack.watcher()
    assert watcher is not None
    time.sleep(settle)  # the start-up scan and the watches on every folder are done by now
    cpu0, t0 = _cpu(watcher), time.monotonic()
    time.sleep(idle_seconds)
    cpu1, t1 = _cpu(watcher), time.monotonic()
    share = (cpu1 - cpu0) / (t1 - t0)
    return {
        "mode": "idle",
        "subfolders": subfolders,
        "idle_seconds": round(t1 - t0, 1),
        "watcher_cpu_seconds": round(cpu1 - cpu0, 3),
        "watcher_idle_percent_of_a_core": round(100 * share, 3),
        "below_1_percent": share < 0.01,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=2000, help="files dropped at once (docs mode)")
    parser.add_argument("--subfolders", type=int, default=0, help="idle mode: this many sub-folders in the inbox")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle mode: seconds measured (>= 30)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after start-up before measuring")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--repo", type=Path, default=REPO, help="source tree to run the stack from (A/B)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="seedworker-watcher-cost-") as tmp:
        stack = Stack(Path(tmp), args.repo.resolve())
        for i in range(args.subfolders):
            (stack.inbox / f"sub{i:05}").mkdir(parents=True)
        try:
            stack.start()
            if args.subfolders:
                result = measure_idle(stack, args.subfolders, args.settle, max(30.0, args.idle_seconds))
            else:
                result = measure_docs(stack, args.files, args.settle, min(args.idle_seconds, 5.0), args.timeout)
        finally:
            stack.stop()
    result["repo"] = str(args.repo)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
