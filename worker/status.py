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

from worker.logs import get_logger
from worker.settings import Settings, mask_url, mask_webhook_url

log = get_logger("seedworker.status")
OUTCOMES = ("stored", "duplicate", "failed")


def _broker_url(settings: Settings) -> str:
    from worker.services import broker_url_for

    return broker_url_for(settings, start=False)


def _engine(settings: Settings, *, connect_timeout: float = 5.0) -> Any:
    """An engine without a pool (one short look) and a bounded connect time."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from worker.store.engine import make_engine, normalise_url

    url = settings.effective_database_url
    if url.startswith("sqlite"):
        return make_engine(url, poolclass=NullPool)
    return create_engine(
        normalise_url(url), poolclass=NullPool, connect_args={"connect_timeout": max(1, int(connect_timeout))}
    )


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# -- status -------------------------------------------------------------------------------------------
def database_status(settings: Settings, *, now: dt.datetime | None = None) -> dict[str, Any]:
    from sqlalchemy import ColumnElement, func, inspect, or_, select, text

    from worker.store.schema import Ingestion, OutboxRow, outbox_held

    now = now or dt.datetime.now(dt.UTC)
    hour_ago = now - dt.timedelta(hours=1)
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            all_time = dict.fromkeys(OUTCOMES, 0)
            last_hour = dict.fromkeys(OUTCOMES, 0)
            for status, n in conn.execute(select(Ingestion.status, func.count()).group_by(Ingestion.status)):
                all_time[status] = int(n)
            recent = select(Ingestion.status, func.count()).where(Ingestion.created_at >= hour_ago)
            for status, n in conn.execute(recent.group_by(Ingestion.status)):
                last_hour[status] = int(n)
            unpublished: list[ColumnElement[bool]] = [OutboxRow.published_at.is_(None)]
            held = 0
            if "not_before" in {c["name"] for c in inspect(conn).get_columns("outbox")}:  # migration 0003
                # Events held for an embargo are not lag: counted apart, left out of the age.
                held = int(conn.scalar(select(func.count()).where(*unpublished, outbox_held(now))) or 0)
                unpublished.append(or_(OutboxRow.not_before.is_(None), ~outbox_held(now)))
            count, oldest = conn.execute(select(func.count(), func.min(OutboxRow.created_at)).where(*unpublished)).one()
            out: dict[str, Any] = {
                "documents": {"last_hour": last_hour, "all_time": all_time},
                "outbox": {"unpublished": int(count), "held": held, "oldest_age_seconds": _age(oldest, now)},
            }
            if inspect(conn).has_table("webhook_deliveries"):
                # {endpoint: {"pending": n, "delivered": n, "failed": n}}
                rows = conn.execute(
                    text("SELECT endpoint, status, count(*) FROM webhook_deliveries GROUP BY endpoint, status")
                )
                hooks: dict[str, dict[str, int]] = {}
                for endpoint, status, n in rows:
                    key = mask_webhook_url(str(endpoint)) if "://" in str(endpoint) else str(endpoint)  # old rows
                    hooks.setdefault(key, {"pending": 0, "delivered": 0, "failed": 0})[str(status)] = int(n)
                out["webhooks"] = hooks
            return out
    finally:
        engine.dispose()


def _age(oldest: Any, now: dt.datetime) -> float:
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):
        oldest = dt.datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return round(max(0.0, float((now - oldest).total_seconds())), 3)


def broker_status(settings: Settings, url: str) -> dict[str, Any]:
    from worker.broker import connect
    from worker.queues import queue_depths

    client = connect(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        depths = queue_depths(client, settings)  # declared queues too: see worker/queues.py
        pipe = client.pipeline()
        pipe.hlen("unacked")
        pipe.exists(settings.event_stream)
        unacked, has_stream = pipe.execute()
        length = int(client.xlen(settings.event_stream)) if has_stream else 0
        return {
            "queues": {q.name: q.depth for q in depths},
            "unconsumed_queues": {q.name: q.depth for q in depths if not q.consumed and q.depth},
            "unacked": int(unacked),
            "stream": {"name": settings.event_stream, "length": length},
        }
    finally:
        client.close()


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
            engine = _engine(settings, connect_timeout=timeout)
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
