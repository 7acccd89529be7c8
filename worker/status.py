"""What ``seedworker status`` and ``seedworker health`` report.

``collect_status`` gathers workers (Celery remote control ``stats`` with a short timeout),
queue depths, unacknowledged messages, outcomes in the last hour and all time, outbox lag,
stream length and webhook deliveries (when that table exists).  It never changes anything
(no migration, no embedded Redis started) and never raises for an unreachable part: each
part that did not answer is reported under ``errors``.

``check_health`` is for liveness/readiness probes: the broker answers PING, the database
answers ``SELECT 1``, and (unless skipped, for the watcher and publisher probes) at least one
worker answers a ping.  It returns one line per failed check; empty means healthy.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker import probes
from worker.logs import get_logger
from worker.settings import Settings, mask_url

log = get_logger("seedworker.status")
OUTCOMES = ("stored", "duplicate", "failed")


def _broker_url(settings: Settings) -> str:
    from worker.broker import broker_url_for

    return broker_url_for(settings, start=False)


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# -- status -------------------------------------------------------------------------------------------
def database_status(settings: Settings, *, now: dt.datetime | None = None) -> dict[str, Any]:
    from sqlalchemy import func, select

    from worker.store.schema import Ingestion

    now = now or dt.datetime.now(dt.UTC)
    hour_ago = now - dt.timedelta(hours=1)
    engine = probes.engine(settings, connect_timeout=5.0)
    try:
        with engine.connect() as conn:
            all_time = dict.fromkeys(OUTCOMES, 0)
            last_hour = dict.fromkeys(OUTCOMES, 0)
            for status, n in conn.execute(select(Ingestion.status, func.count()).group_by(Ingestion.status)):
                all_time[status] = int(n)
            recent = select(Ingestion.status, func.count()).where(Ingestion.created_at >= hour_ago)
            for status, n in conn.execute(recent.group_by(Ingestion.status)):
                last_hour[status] = int(n)
            lag = probes.lag(conn, now)
            out: dict[str, Any] = {
                "documents": {"last_hour": last_hour, "all_time": all_time},
                "outbox": {
                    "unpublished": lag.unpublished,
                    "held": lag.held,
                    "oldest_age_seconds": lag.oldest_age_seconds,
                },
            }
            hooks = probes.webhook_counts(conn)
            if hooks is not None:
                out["webhooks"] = hooks
            return out
    finally:
        engine.dispose()


def broker_status(settings: Settings, url: str) -> dict[str, Any]:
    from worker.broker import connect

    client = connect(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        probe = probes.broker(client, settings)
    finally:
        client.close()
    return {
        "queues": {q.name: q.depth for q in probe.depths},
        "unconsumed_queues": {q.name: q.depth for q in probe.depths if not q.consumed and q.depth},
        "unacked": probe.unacked,
        "stream": {"name": probe.stream, "length": probe.stream_length},
    }


def workers_status(settings: Settings, url: str, *, timeout: float) -> list[dict[str, Any]]:
    """Every worker that answered ``stats`` within ``timeout`` seconds."""
    from worker.app import create_app

    app = create_app(settings, url)
    try:
        stats = app.control.inspect(timeout=timeout).stats() or {}
    finally:
        app.close()
    workers = []
    for name, info in sorted(stats.items()):
        pool = info.get("pool") or {}
        workers.append(
            {
                "name": name,
                "pid": info.get("pid"),
                "concurrency": pool.get("max-concurrency"),
                "processes": len(pool.get("processes") or []),
                "tasks_done": sum(int(n) for n in (info.get("total") or {}).values()),
                "uptime_seconds": info.get("uptime"),
            }
        )
    return workers


def collect_status(settings: Settings, *, ping_timeout: float = 1.0) -> dict[str, Any]:
    report: dict[str, Any] = {"database": mask_url(settings.effective_database_url)}
    errors: dict[str, str] = {}
    try:
        report.update(database_status(settings))
    except Exception as exc:
        errors["database"] = _short(exc)
    try:
        url = _broker_url(settings)
        report["broker"] = mask_url(url)
        report.update(broker_status(settings, url))
    except Exception as exc:
        errors["broker"] = _short(exc)
    else:
        try:
            report["workers"] = workers_status(settings, url, timeout=ping_timeout)
        except Exception as exc:
            errors["workers"] = _short(exc)
    report["errors"] = errors
    return report


# -- health ----------------------------------------------------------------------------------------------
def check_health(settings: Settings, *, workers: bool = True, timeout: float = 3.0) -> tuple[list[str], list[str]]:
    """(problems, fine): one line per check; healthy when ``problems`` is empty."""
    from sqlalchemy import text

    problems: list[str] = []
    fine: list[str] = []
    url: str | None = None
    try:
        from worker.broker import connect

        url = _broker_url(settings)
        client = connect(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            client.ping()
            from worker.queues import queue_depths, unconsumed_problem

            waiting = unconsumed_problem(queue_depths(client, settings))
        finally:
            client.close()
        fine.append(f"broker {mask_url(url)}")
        if waiting:
            problems.append(waiting)
    except Exception as exc:
        problems.append(f"broker unreachable: {_short(exc)}")
        url = None
    db_file = settings.data_dir / "seedworker.db"
    if not settings.database_url and not db_file.is_file():  # a probe never creates what it looks for
        problems.append(f"database missing: no {db_file.resolve()}")
    else:
        try:
            engine = probes.engine(settings, connect_timeout=timeout)
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                engine.dispose()
            fine.append(f"database {mask_url(settings.effective_database_url)}")
        except Exception as exc:
            problems.append(f"database unreachable: {_short(exc)}")
    if workers:
        if url is None:
            problems.append("workers unknown: the broker is unreachable")
        else:
            try:
                # The first reply settles it: a probe returns at once instead of after the timeout.
                names = _ping_workers(settings, url, timeout, limit=1)
            except Exception as exc:
                problems.append(f"workers unreachable: {_short(exc)}")
            else:
                if names:
                    fine.append(f"worker {names[0]} answered")
                else:
                    problems.append(f"no worker answered a ping within {timeout:g}s")
    return problems, fine


def _ping_workers(settings: Settings, url: str, timeout: float, *, limit: int | None = None) -> list[str]:
    """Names of the workers that answered within ``timeout``; with ``limit``, as soon as that many did."""
    from worker.app import create_app

    app = create_app(settings, url)
    try:
        replies = app.control.ping(timeout=timeout, limit=limit) or []
    finally:
        app.close()
    return sorted(name for r in replies for name in r)
