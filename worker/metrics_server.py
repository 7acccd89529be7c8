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
alerts see the first increment.  The counters themselves are
worker/metrics.py; the scrape-time values come from worker/probes.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worker.logs import get_logger
from worker.metrics import child_exited, enable_multiprocess, zero_initialise
from worker.settings import Settings

log = get_logger("seedworker.metrics")


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
    """Queue depth, unacked messages, stream length (Redis), outbox lag and webhook deliveries
    (database), read through worker/probes.py at every scrape."""

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
            from worker import probes

            self._engine = probes.engine(self.settings)
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
            yield from self._database_metrics()
            up.add_metric(["database"], 1)
        except Exception as exc:
            log.warning("metrics: database unavailable", error=str(exc))
            up.add_metric(["database"], 0)
        yield up

    def _redis_metrics(self) -> Iterator[Metric]:
        from worker import probes

        probe = probes.broker(self._client(), self.settings)
        depth = GaugeMetricFamily("seedworker_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
        orphaned = GaugeMetricFamily(
            "seedworker_unconsumed_queue_depth",
            "Messages waiting in a queue declared on the broker that no seedworker worker consumes.",
            labels=["queue"],
        )
        for q in probe.depths:
            depth.add_metric([q.name], q.depth)
            if not q.consumed:
                orphaned.add_metric([q.name], q.depth)
        yield depth
        yield orphaned
        yield GaugeMetricFamily(
            "seedworker_unacked_messages",
            "Messages delivered to a worker and not yet acknowledged.",
            value=probe.unacked,
        )
        stream = GaugeMetricFamily("seedworker_stream_length", "Entries in the event stream.", labels=["stream"])
        stream.add_metric([probe.stream], probe.stream_length)
        yield stream

    def _database_metrics(self) -> Iterator[Metric]:
        """Outbox lag, and webhook deliveries per endpoint from the deliveries table (any process
        may have delivered); each configured endpoint at 0 before its first failure.  Endpoints
        are shown by name."""
        from worker import probes

        with self._db().connect() as conn:
            lag = probes.lag(conn)
            hooks = probes.webhook_counts(conn, [ep.key for ep in self.settings.webhooks])
        if hooks is None:  # no deliveries table yet: the configured endpoints at 0
            hooks = {ep.key: dict.fromkeys(probes.DELIVERY_STATES, 0) for ep in self.settings.webhooks}
        yield GaugeMetricFamily(
            "seedworker_outbox_unpublished",
            "Events written to the outbox and not yet on the stream.",
            value=lag.unpublished,
        )
        yield GaugeMetricFamily(
            "seedworker_outbox_held",
            "Events held in the outbox until their embargo lifts (SEEDWORKER_EMBARGO=hold).",
            value=lag.held,
        )
        yield GaugeMetricFamily(
            "seedworker_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none): the publisher's lag.",
            value=lag.oldest_age_seconds,
        )
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
        for endpoint, c in sorted(hooks.items()):
            failed.add_metric([endpoint], c["failed"])
            pending.add_metric([endpoint], c["pending"])
        yield failed
        yield pending


# -- serving -------------------------------------------------------------------------------------------
def multiproc_dir(settings: Settings, node_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", node_name) or "worker"
    return settings.data_dir.resolve() / "metrics" / safe


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
