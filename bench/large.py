"""``python -m bench.large``: one large text file (20 MB by default) through exactly what
``seedworker.ingest`` runs in a pool process (prepare, tag, store with its MinHash), in a
fresh child process: seconds per stage, the peak resident memory, and the memory still held
afterwards (issue 19 §9: a 19 MB file took 452 s and 2.9 GB, 1.0 GB held afterwards).

``make bench`` runs it after the profiles (``--skip large`` leaves it out, ``--large-mb``
sets the size).

``python -m bench.large --store-scaling`` (``make bench-large``) measures instead the store +
dedup CPU per document against the size of the stored corpus, 10,000 and 1,000,000 documents
prefilled by a bulk loader, on SQLite and PostgreSQL (``bench/store_scaling.py``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import corpus
from bench.ceiling import NER_MODEL

DEFAULT_BYTES = 20_000_000  # 20 MB: just under the default SEEDWORKER_MAX_FILE_BYTES (20 MiB)


def large_text(size: int) -> bytes:
    """``size`` bytes of distinct corpus articles, one after another (cut between words)."""
    parts: list[bytes] = []
    total, index = 0, 0
    while total < size:
        parts.append(corpus.article(index))
        total += len(parts[-1]) + 2
        index += 1
    data = b"\n\n".join(parts)[:size]
    return data[: data.rfind(b" ")] if len(data) == size else data


def _rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _child(size: int, profile: str, workdir: Path) -> dict[str, Any]:
    from worker import process
    from worker.models import IngestRequest
    from worker.runtime import Runtime
    from worker.services import ensure_schema
    from worker.settings import Settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=workdir,
        database_url=f"sqlite:///{workdir / 'large.db'}",
        ner_model=NER_MODEL if profile == "full" else "",
    )
    ensure_schema(settings)
    rt = Runtime.build(settings, "redis://127.0.0.1:1/0")  # the stages below never touch Redis
    _ = rt.tagger  # loaded as in worker_process_init, not counted
    data = large_text(size)
    baseline = _rss_mb()
    request = IngestRequest.from_bytes(data, filename="large.txt", source="bench", idempotency_key="bench:large")
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    batch = process.prepare(request, "bench:large", max_bytes=settings.max_file_bytes)
    seconds["prepare"] = time.monotonic() - t0
    t1 = time.monotonic()
    batch = process.tag(batch, rt.tagger)
    seconds["tag"] = time.monotonic() - t1
    t2 = time.monotonic()
    result = process.store(batch, rt.store, max_bytes=settings.max_file_bytes)
    seconds["store"] = time.monotonic() - t2
    del batch, request, data
    import gc

    gc.collect()
    return {
        "profile": profile,
        "bytes": size,
        "outcome": result.outcomes[0].short() if result.outcomes else "none",
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "total_seconds": round(sum(seconds.values()), 2),
        "rss_before_mb": baseline,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_mb": _rss_mb(),
        "tag_max_chars": settings.tag_max_chars,
    }


def measure(size: int = DEFAULT_BYTES, profile: str = "full") -> dict[str, Any]:
    """Run the stages in a fresh process (so its peak memory is this document's alone)."""
    with tempfile.TemporaryDirectory(prefix="seedworker-large-") as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "bench.large", "--child", "--bytes", str(size), "--profile", profile, "--dir", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"bench.large child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__.split("\n\n")[0])
    p.add_argument("--bytes", type=int, default=DEFAULT_BYTES)
    p.add_argument("--profile", choices=["fast", "full"], default="full")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--store-scaling", action="store_true", help="store + dedup CPU/doc against the corpus size")
    p.add_argument("--sizes", default="10000,1000000", help="stored documents to measure at (comma-separated)")
    p.add_argument("--backends", default="sqlite,postgresql", help="sqlite, postgresql or both")
    p.add_argument("--docs", type=int, default=300, help="new articles per round (plus near and exact copies)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--group", type=int, default=16, help="requests per batch task (SEEDWORKER_WATCH_BATCH)")
    p.add_argument(
        "--keep",
        type=Path,
        default=Path(tempfile.gettempdir()) / "seedworker-bench-large",
        help="where prefilled SQLite databases are kept (and reused)",
    )
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.bytes, args.profile, args.dir)))
        return 0
    if args.store_scaling:
        from bench import store_scaling

        sizes = [int(n) for n in args.sizes.split(",")]
        backends = args.backends.split(",")
        result = store_scaling.run(
            sizes, backends, docs=args.docs, rounds=args.rounds, group=args.group, workdir=args.keep.resolve()
        )
        print(json.dumps(result, indent=2))
        return 0
    print(json.dumps(measure(args.bytes, args.profile), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
