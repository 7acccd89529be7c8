"""The worker's own Prometheus counters and the stage timer: what the pipeline and the tasks
increment.  Nothing here reads settings or the store; serving them (multiprocess mode, the
``/metrics`` endpoint, the scrape-time collectors) is worker/metrics_server.py.

Metrics are created lazily (module ``__getattr__``): the value class is chosen when a metric
is built, so :func:`enable_multiprocess` must run before the first one is touched.  Other
modules increment them through the helpers here or the names in ``_NAMES`` (for example
``worker.metrics.DEDUP_HITS.labels(kind="near").inc()``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import (
    Counter,
    Histogram,
)

from worker.logs import get_logger

log = get_logger("seedworker.metrics")

STAGES = ("normalise", "tag", "dedup", "store")
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _build(name: str) -> Any:
    if name == "DOCUMENTS":
        return Counter(
            "seedworker_documents",
            "Inputs by outcome (stored, duplicate, failed) and failure reason; redeliveries are not counted.",
            ["outcome", "reason"],
        )
    if name == "STAGE_SECONDS":
        return Histogram(
            "seedworker_stage_duration_seconds",
            "Time of one pipeline stage call: normalise and store per input, tag per NER batch, dedup per document.",
            ["stage"],
            buckets=STAGE_BUCKETS,
        )
    if name == "DEDUP_HITS":
        return Counter("seedworker_dedup_hits", "Inputs found to duplicate a stored document, by kind.", ["kind"])
    raise AttributeError(name)


_BUILT: dict[str, Any] = {}
_NAMES = ("DOCUMENTS", "STAGE_SECONDS", "DEDUP_HITS")
DEDUP_KINDS = ("exact", "near")


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _BUILT:
        _BUILT[name] = _build(name)
    return _BUILT[name]


def metric(name: str) -> Any:
    return __getattr__(name)


# -- what the pipeline calls -----------------------------------------------------------------------
@contextmanager
def stage_timer(stage: str) -> Iterator[None]:
    """Observe the time of one stage (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        try:
            metric("STAGE_SECONDS").labels(stage=stage).observe(time.perf_counter() - started)
        except Exception:  # metrics never break ingestion
            log.exception("could not record a stage time")


def record_outcomes(outcomes: Iterable[Any]) -> None:
    """Count final outcomes (``worker.models.Outcome``); replays of earlier work are skipped."""
    try:
        for o in outcomes:
            if getattr(o, "replayed", False):
                continue
            status = str(o.status)
            reason = str(o.reason or "") if status == "failed" else ""
            metric("DOCUMENTS").labels(outcome=status, reason=reason).inc()
            if status == "duplicate":
                metric("DEDUP_HITS").labels(kind=str(getattr(o, "duplicate_kind", None) or "exact")).inc()
    except Exception:
        log.exception("could not record outcomes")


def zero_initialise() -> None:
    """Create every series known in advance at 0 (a counter that appears only with its first
    event hides that event from ``rate()`` and from alerts on ``increase()``)."""
    from worker.errors import REASON_CODES

    for outcome in ("stored", "duplicate"):
        metric("DOCUMENTS").labels(outcome=outcome, reason="")
    for reason in REASON_CODES:
        metric("DOCUMENTS").labels(outcome="failed", reason=reason)
    for kind in DEDUP_KINDS:
        metric("DEDUP_HITS").labels(kind=kind)
    for stage in STAGES:
        metric("STAGE_SECONDS").labels(stage=stage)


def enable_multiprocess(path: Path) -> None:
    """Point prometheus-client at ``path`` (emptied) for this process and its future children."""
    from prometheus_client import values

    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _BUILT.clear()  # anything built before now would write to process memory


def child_exited(pid: int | None = None) -> None:
    """Bookkeeping when a pool child exits (live gauges; counters stay summed)."""
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]
