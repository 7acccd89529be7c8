"""The schema check every process makes at start: migrate to the newest revision, cheaply when
the database is already there.  Apart from ``worker/store/migrations`` on purpose: that package
imports Alembic when imported, and this check exists so that a current database costs no
Alembic import (see ``ensure_schema``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.settings import Settings


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
