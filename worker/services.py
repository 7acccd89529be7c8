"""The long-running processes: worker, publisher, watcher, Flower.

Each runs alone (``seedworker worker`` on one machine, ``seedworker watch`` on another) or
under ``seedworker run``.  Each stops in two stages on SIGTERM/SIGINT: stop taking work,
finish or hand back what is in flight, then exit; previous signal handlers are restored.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from worker.broker import connect, resolve_broker_url
from worker.logs import configure_logging, get_logger
from worker.settings import Settings

log = get_logger("seedworker.services")


def broker_url_for(settings: Settings, *, start: bool = True) -> str:
    return resolve_broker_url(settings.broker_url, settings.redis_dir, settings.redis_appendfsync, start=start)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` on SIGTERM/SIGINT; restore the previous handlers afterwards."""
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, _: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def ensure_schema(settings: Settings) -> None:
    """Migrate the database to the newest revision (Alembic ``upgrade head``).

    Worker, publisher and watcher start together: the upgrade runs in one transaction under
    the PostgreSQL advisory lock (SQLite: the write lock), so only the first one migrates.

    A database already at :data:`~worker.store.schema.SCHEMA_REVISION` (every start after the
    first; ``seedworker run`` and the Kubernetes job migrate before the processes start) costs
    one SELECT and no Alembic import: Alembic and a migration run leave ~14 MB in a process,
    and the worker's pool children would inherit them (docs/benchmarks.md, memory).  Anything
    else -- no version table, an older revision, an unreachable database -- takes the full
    upgrade, which migrates or raises as before.
    """
    url = settings.effective_database_url
    if schema_is_current(url):
        return
    from worker.store.migrations import upgrade

    upgrade(url)


def schema_is_current(url: str) -> bool:
    """True when the database's Alembic revision is the code's newest; False on any doubt."""
    from sqlalchemy.exc import DBAPIError

    from worker.store.engine import make_engine
    from worker.store.schema import SCHEMA_REVISION

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            revisions = [row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    except DBAPIError:  # no version table yet, or no database: the upgrade says what is wrong
        return False
    finally:
        engine.dispose()
    return revisions == [SCHEMA_REVISION]


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

    configure_logging(settings)
    broker_url = broker_url_for(settings)
    ensure_schema(settings)
    if settings.metrics_port:  # before the pool forks: see worker/metrics.py
        from worker.metrics import serve_worker_metrics

        serve_worker_metrics(settings, broker_url, node_name or "seedworker@" + socket.gethostname())
    app = create_app(settings, broker_url)
    qs = queues or sorted({settings.queue, settings.effective_tag_queue})
    # A worker that never runs the tag stage (chain mode, tag queue elsewhere) skips the NER model.
    tags_here = settings.pipeline == "inline" or settings.effective_tag_queue in qs
    if tags_here:  # fail at start, not in every pool process: a bad taxonomy, a missing NER model
        from worker.pipeline.tag import Tagger

        Tagger.check_settings(settings)

    def _child_init(**_: Any) -> None:
        configure_logging(settings)
        init_runtime(settings, broker_url, load_models=tags_here)

    def _child_shutdown(**_: Any) -> None:
        get_runtime().close()

    worker_process_init.connect(_child_init, weak=False)
    worker_process_shutdown.connect(_child_shutdown, weak=False)
    if pool in ("solo", "threads"):
        init_runtime(settings, broker_url, load_models=tags_here)
    argv = [
        *([] if banner else ["--quiet"]),
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
    from worker.events.publisher import OutboxPublisher
    from worker.store.engine import make_engine
    from worker.store.repository import DocumentStore

    configure_logging(settings)
    broker_url = broker_url_for(settings)
    ensure_schema(settings)
    store = DocumentStore(make_engine(settings.effective_database_url), event_source=settings.event_source)
    publisher = OutboxPublisher.from_settings(settings, store, connect(broker_url, socket_timeout=10), broker_url)
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

    configure_logging(settings)
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


def _is_loopback(address: str) -> bool:
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name or "" (all interfaces): not provably local
        return False


def flower_command(settings: Settings, broker_url: str) -> tuple[list[str], dict[str, str]]:
    """The Flower command line and environment; secrets go in the environment, not argv."""
    loopback = _is_loopback(settings.flower_address)
    auth = settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else ""
    if not loopback and not auth:
        from worker.errors import ConfigError

        raise ConfigError(f"refusing to serve Flower on {settings.flower_address} without SEEDWORKER_FLOWER_BASIC_AUTH")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "celery",
        "--app=worker.app:flower_app",
        "flower",
        f"--address={settings.flower_address}",
        f"--port={settings.flower_port}",
        "--persistent=True",
        f"--db={(settings.data_dir / 'flower.db').resolve()}",
        "--state_save_interval=60000",
        "--enable_events=True",  # keep the workers' task events on, even after a worker restart
        "--inspect_timeout=5000",  # ms; /api/workers?refresh=1 waits this long for busy workers
    ]
    if settings.flower_url_prefix.strip("/"):
        argv.append(f"--url_prefix={settings.flower_url_prefix.strip('/')}")
    env = {**os.environ, "CELERY_BROKER_URL": broker_url}
    if auth:
        env["FLOWER_BASIC_AUTH"] = auth
    else:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"  # loopback only, see above
    return argv, env


FLOWER_GRACE_SECONDS = 30.0


def run_flower(settings: Settings) -> int:
    configure_logging(settings)
    argv, env = flower_command(settings, broker_url_for(settings))
    # A session of its own: Ctrl-C reaches only us, and Flower gets one SIGTERM.  With the
    # terminal's SIGINT as well, the SIGTERM landed in Flower's atexit callback and Python
    # printed "Exception ignored in atexit callback ... SystemExit: 0".
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        proc.terminate()

    with stop_on_signals(stop):
        while not stopped.wait(1.0):
            if proc.poll() is not None:
                return proc.returncode
        try:  # Flower's shutdown waits for its inspect calls (5 s each); on a busy host, not forever
            return proc.wait(timeout=FLOWER_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("flower did not stop in time, killing it", grace=FLOWER_GRACE_SECONDS)
            proc.kill()
            return proc.wait()
