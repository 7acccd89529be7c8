"""Prometheus metrics of the worker side, served by each ``seedworker worker`` on
``SEEDWORKER_METRICS_HOST:SEEDWORKER_METRICS_PORT`` (``0`` = off).

Why multiprocess mode and not an exporter process: the numbers that matter (outcomes,
stage latencies, dedup hits, webhook failures) are produced inside the prefork children,
and a separate exporter would need its own channel to receive them.  prometheus-client's
multiprocess mode already is that channel: every child writes its values to memory-mapped
files in ``PROMETHEUS_MULTIPROC_DIR`` and the parent merges them at scrape time.  The
directory is ``DATA_DIR/metrics/<node name>`` (one per worker, so several workers on one
machine do not wipe each other), emptied when the worker starts (counters restart at zero
with the process, as Prometheus expects), and a child marks itself dead when it exits.
The parent serves ``/metrics`` from a thread started before the pool forks, so a port
already in use stops the worker at once with a clear error instead of a silent gap.

What describes the system rather than one process (queue depth, unacknowledged messages,
outbox lag, stream length, webhook deliveries that failed for good or wait) is read from
Redis and the database at scrape time by :class:`SystemCollector`, never cached, so two
workers report the same values, and webhook failures count whichever process delivered.
The worker's own ``process_*`` and ``python_*`` metrics (which multiprocess mode leaves out)
and ``seedworker_build_info`` are added to the same registry.  Labelled counters are created
at zero for every label value known in advance (outcomes, reason codes, stages, dedup kinds,
configured webhook endpoints), so a series exists before its first event and ``rate()`` and
alerts see the first increment.

Metrics are created lazily (module ``__getattr__``): the value class is chosen when a metric
is built, so :func:`enable_multiprocess` must run before the first one is touched.  Other
modules increment them through the helpers here or the names in ``_METRICS`` (for example
``worker.metrics.DEDUP_HITS.labels(kind="near").inc()``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worker.logs import get_logger
from worker.settings import Settings

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


_METRICS: dict[str, Any] = {}
_NAMES = ("DOCUMENTS", "STAGE_SECONDS", "DEDUP_HITS")
DEDUP_KINDS = ("exact", "near")


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _METRICS:
        _METRICS[name] = _build(name)
    return _METRICS[name]


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


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seedworker")
    except PackageNotFoundError:
        return "unknown"


class BuildInfoCollector(Collector):
    """``seedworker_build_info{version, python} 1``: which build answers (join on it in queries)."""

    def collect(self) -> Iterator[Metric]:
        import platform

        info = GaugeMetricFamily(
            "seedworker_build_info",
            "Version of seedworker and Python of this worker; always 1.",
            labels=["version", "python"],
        )
        info.add_metric([package_version(), platform.python_version()], 1)
        yield info


class PoolCollector(Collector):
    """Number and resident memory of the worker's pool children, read from ``/proc`` at scrape
    time: ``process_*`` describes only the process that serves ``/metrics``, and the children
    are where documents are processed (and where memory grows)."""

    def collect(self) -> Iterator[Metric]:
        proc = Path("/proc")
        if not proc.is_dir():
            return
        me, page = os.getpid(), os.sysconf("SC_PAGE_SIZE")
        count = rss = 0
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # exited meanwhile
            if int(fields[1]) == me:  # ppid
                count += 1
                rss += int(fields[21]) * page  # rss, in pages
        yield GaugeMetricFamily("seedworker_pool_processes", "Pool child processes of this worker.", value=count)
        yield GaugeMetricFamily(
            "seedworker_pool_resident_memory_bytes", "Resident memory of this worker's pool children.", value=rss
        )


# -- scrape-time values ------------------------------------------------------------------------------
class SystemCollector(Collector):
    """Queue depth, unacked messages, stream length (Redis) and outbox lag (database)."""

    def __init__(self, settings: Settings, broker_url: str) -> None:
        self.settings = settings
        self.broker_url = broker_url
        self._redis: Any = None
        self._engine: Any = None

    def _client(self) -> Any:
        if self._redis is None:
            from worker.broker import connect

            self._redis = connect(self.broker_url, socket_timeout=3)
        return self._redis

    def _db(self) -> Any:
        if self._engine is None:
            from sqlalchemy.pool import NullPool

            from worker.store.engine import make_engine, normalise_url

            url = self.settings.effective_database_url
            if url.startswith("sqlite"):
                self._engine = make_engine(url, poolclass=NullPool)
            else:
                from sqlalchemy import create_engine

                # No pool: the parent forks children; no connection may be open across a fork.
                self._engine = create_engine(normalise_url(url), poolclass=NullPool)
        return self._engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("seedworker_collector_up", "1 when the source answered this scrape.", labels=["source"])
        try:
            yield from self._redis_metrics()
            up.add_metric(["redis"], 1)
        except Exception as exc:
            log.warning("metrics: redis unavailable", error=str(exc))
            up.add_metric(["redis"], 0)
        try:
            yield from self._outbox_metrics()
            up.add_metric(["database"], 1)
        except Exception as exc:
            log.warning("metrics: database unavailable", error=str(exc))
            up.add_metric(["database"], 0)
        yield up

    def _redis_metrics(self) -> Iterator[Metric]:
        from worker.queues import queue_depths

        client = self._client()
        depths = queue_depths(client, self.settings)  # declared queues too: see worker/queues.py
        pipe = client.pipeline()
        pipe.hlen("unacked")
        pipe.exists(self.settings.event_stream)
        unacked, has_stream = pipe.execute()
        depth = GaugeMetricFamily("seedworker_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
        orphaned = GaugeMetricFamily(
            "seedworker_unconsumed_queue_depth",
            "Messages waiting in a queue declared on the broker that no seedworker worker consumes.",
            labels=["queue"],
        )
        for q in depths:
            depth.add_metric([q.name], q.depth)
            if not q.consumed:
                orphaned.add_metric([q.name], q.depth)
        yield depth
        yield orphaned
        yield GaugeMetricFamily(
            "seedworker_unacked_messages",
            "Messages delivered to a worker and not yet acknowledged.",
            value=int(unacked),
        )
        length = int(client.xlen(self.settings.event_stream)) if has_stream else 0
        stream = GaugeMetricFamily("seedworker_stream_length", "Entries in the event stream.", labels=["stream"])
        stream.add_metric([self.settings.event_stream], length)
        yield stream

    def _outbox_metrics(self) -> Iterator[Metric]:
        from sqlalchemy import func, or_, select

        from worker.store.schema import OutboxRow, outbox_held

        now = dt.datetime.now(dt.UTC)
        with self._db().connect() as conn:
            # Events held for an embargo (SEEDWORKER_EMBARGO=hold) are not lag: counted apart.
            owed = (OutboxRow.published_at.is_(None), or_(OutboxRow.not_before.is_(None), ~outbox_held(now)))
            count, oldest = conn.execute(select(func.count(), func.min(OutboxRow.created_at)).where(*owed)).one()
            held = conn.scalar(select(func.count()).where(OutboxRow.published_at.is_(None), outbox_held(now)))
        age = 0.0
        if oldest is not None:
            if isinstance(oldest, str):
                oldest = dt.datetime.fromisoformat(oldest)
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=dt.UTC)
            age = max(0.0, (dt.datetime.now(dt.UTC) - oldest).total_seconds())
        yield GaugeMetricFamily(
            "seedworker_outbox_unpublished", "Events written to the outbox and not yet on the stream.", value=int(count)
        )
        yield GaugeMetricFamily(
            "seedworker_outbox_held",
            "Events held in the outbox until their embargo lifts (SEEDWORKER_EMBARGO=hold).",
            value=int(held or 0),
        )
        yield GaugeMetricFamily(
            "seedworker_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none): the publisher's lag.",
            value=round(age, 3),
        )
        yield from self._webhook_metrics()

    def _webhook_metrics(self) -> Iterator[Metric]:
        """Per endpoint, from the deliveries table (any process may have delivered); each
        configured endpoint at 0 before its first failure.  Endpoints are shown by name."""
        from sqlalchemy import func, inspect, select

        from worker.events.webhooks import display_name
        from worker.store.schema import WebhookDelivery

        counts: dict[str, dict[str, int]] = {ep.key: {"failed": 0, "pending": 0} for ep in self.settings.webhooks}
        with self._db().connect() as conn:
            if inspect(conn).has_table(WebhookDelivery.__tablename__):
                rows = conn.execute(
                    select(WebhookDelivery.endpoint, WebhookDelivery.status, func.count())
                    .where(WebhookDelivery.status.in_(("failed", "pending")))
                    .group_by(WebhookDelivery.endpoint, WebhookDelivery.status)
                )
                for endpoint, status, n in rows:
                    counts.setdefault(display_name(str(endpoint)), {"failed": 0, "pending": 0})[str(status)] += int(n)
        failed = CounterMetricFamily(
            "seedworker_webhook_failures",
            "Webhook deliveries recorded as failed after their last attempt, by endpoint (rows in the database).",
            labels=["endpoint"],
        )
        pending = GaugeMetricFamily(
            "seedworker_webhook_deliveries_pending",
            "Webhook deliveries not yet done, by endpoint.",
            labels=["endpoint"],
        )
        for endpoint, c in sorted(counts.items()):
            failed.add_metric([endpoint], c["failed"])
            pending.add_metric([endpoint], c["pending"])
        yield failed
        yield pending


# -- serving -------------------------------------------------------------------------------------------
def multiproc_dir(settings: Settings, node_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", node_name) or "worker"
    return settings.data_dir.resolve() / "metrics" / safe


def enable_multiprocess(path: Path) -> None:
    """Point prometheus-client at ``path`` (emptied) for this process and its future children."""
    from prometheus_client import values

    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _METRICS.clear()  # anything built before now would write to process memory


def child_exited(pid: int | None = None) -> None:
    """Bookkeeping when a pool child exits (live gauges; counters stay summed)."""
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]


def serve_worker_metrics(settings: Settings, broker_url: str, node_name: str) -> Any:
    """Multiprocess mode + the HTTP endpoint, in the worker's main process before the fork."""
    from prometheus_client import multiprocess

    from worker.errors import ConfigError

    path = multiproc_dir(settings, node_name)
    enable_multiprocess(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    registry.register(SystemCollector(settings, broker_url))
    registry.register(BuildInfoCollector())
    registry.register(PoolCollector())
    # The serving process's own process_* and python_* (multiprocess mode has none of them).
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    zero_initialise()
    try:
        server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {exc} "
            "(SEEDWORKER_METRICS_PORT, 0 = off)"
        ) from exc
    from celery.signals import worker_process_shutdown

    worker_process_shutdown.connect(lambda **_: child_exited(), weak=False)
    log.info("metrics", url=f"http://{settings.metrics_host}:{settings.metrics_port}/metrics", dir=str(path))
    return server
