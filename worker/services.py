"""The long-running processes: worker, publisher, watcher, Flower.

Each runs alone (``seedworker worker`` on one machine, ``seedworker watch`` on another) or
under ``seedworker run``.  Each stops in two stages on SIGTERM/SIGINT: stop taking work,
finish or hand back what is in flight, then exit; previous signal handlers are restored.
"""

from __future__ import annotations

import socket
from typing import Any

from worker import datamode
from worker.broker import broker_url_for, connect
from worker.logs import configure_logging, get_logger
from worker.settings import Settings
from worker.signals import stop_on_signals
from worker.store.schema_check import ensure_schema

log = get_logger("seedworker.services")


def run_worker(
    settings: Settings,
    *,
    node_name: str | None = None,
    concurrency: int | None = None,
    queues: list[str] | None = None,
    pool: str = "prefork",
    banner: bool = True,
) -> None:
    """A Celery worker; heavy clients are built in each child after the fork.  ``banner=False``
    (under ``seedworker run``, which prints its own) is Celery's ``--quiet``."""
    from celery.signals import worker_process_init, worker_process_shutdown

    from worker.app import create_app
    from worker.runtime import get_runtime, init_runtime

    qs = queues or settings.consumed_queues
    # A worker that never runs the tag stage (chain mode, tag queue elsewhere; the webhook
    # worker) skips the NER model, and only a worker of the pipeline serves its metrics.
    tags_here = (settings.pipeline == "inline" and settings.queue in qs) or settings.effective_tag_queue in qs
    pipeline_here = bool({settings.queue, settings.effective_tag_queue} & set(qs))
    process = "worker" if pipeline_here else "webhooks"
    configure_logging(settings, process=process)
    datamode.apply(settings)
    broker_url = broker_url_for(settings)
    ensure_schema(settings)
    if settings.metrics_port and pipeline_here:  # before the pool forks: see worker/metrics_server.py
        from worker.metrics_server import serve_worker_metrics

        serve_worker_metrics(settings, broker_url, node_name or "seedworker@" + socket.gethostname())
    app = create_app(settings, broker_url)
    if tags_here:  # fail at start, not in every pool process: a bad taxonomy, a missing NER model
        from worker.pipeline.tag import Tagger

        Tagger.check_settings(settings)

    def _child_init(**_: Any) -> None:
        configure_logging(settings, process=process)
        init_runtime(settings, broker_url, load_models=tags_here, app=app)

    def _child_shutdown(**_: Any) -> None:
        get_runtime().close()

    worker_process_init.connect(_child_init, weak=False)
    worker_process_shutdown.connect(_child_shutdown, weak=False)
    if pool in ("solo", "threads"):
        init_runtime(settings, broker_url, load_models=tags_here, app=app)
    from worker.logs import is_json

    argv = [
        *(["--quiet"] if is_json() or not banner else []),  # no plain-text banner among JSON lines
        "worker",
        f"--hostname={node_name or 'seedworker@' + socket.gethostname()}",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--queues={','.join(qs)}",
        f"--pool={pool}",
        f"--loglevel={settings.log_level}",
        "--task-events",
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)


def run_publisher(settings: Settings) -> None:
    from worker.relay import publisher_from_settings
    from worker.store.engine import make_engine
    from worker.store.repository import DocumentStore

    configure_logging(settings, process="publisher")
    datamode.apply(settings)
    broker_url = broker_url_for(settings)
    ensure_schema(settings)
    store = DocumentStore(make_engine(settings.effective_database_url), event_source=settings.event_source)
    publisher = publisher_from_settings(settings, store, connect(broker_url, socket_timeout=10), broker_url)
    with stop_on_signals(publisher.stop_event.set):
        publisher.run()
    store.engine.dispose()


def default_watcher_id(settings: Settings) -> str:
    import hashlib

    inbox = str(settings.inbox.resolve())
    return f"{socket.gethostname()}-{hashlib.sha1(inbox.encode()).hexdigest()[:8]}"  # noqa: S324 - a name


def run_watcher(settings: Settings, *, watcher_id: str | None = None) -> None:
    from worker.app import create_app
    from worker.watcher import InboxWatcher

    configure_logging(settings, process="watcher")
    datamode.apply(settings)
    broker_url = broker_url_for(settings)
    app = create_app(settings, broker_url)
    watcher = InboxWatcher(
        settings=settings,
        app=app,
        redis=connect(broker_url, socket_timeout=10),
        watcher_id=watcher_id or default_watcher_id(settings),
    )
    with stop_on_signals(watcher.stop_event.set):
        watcher.run()


# Flower's command moved to worker/flower.py and the schema check to worker/store/schema_check.py;
# these names stay importable from here (bench/ and tests import them).
from worker.flower import flower_command, run_flower  # noqa: E402

__all__ = ["ensure_schema", "flower_command", "run_flower", "run_publisher", "run_watcher", "run_worker"]
