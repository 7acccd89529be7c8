"""Schema management with Alembic, configured in code (no ``alembic.ini`` at runtime).

* ``upgrade(url)`` brings a database to ``head`` in one transaction, serialised between
  processes that start together: a PostgreSQL advisory lock, or SQLite's write lock (the
  engine begins every transaction with ``BEGIN IMMEDIATE``), so the second process waits
  and then finds nothing to do.
* A database made earlier by ``create_all`` (tables, no ``alembic_version``) is completed
  with ``create_all`` (missing tables only) and *stamped* at the baseline, never recreated.
* Nothing is released yet, so there is one baseline revision, ``0001_baseline``, generated
  from ``worker.store.schema`` by ``python -m worker.store.migrations regenerate``, plus
  hand-written revisions for what autogenerate cannot express (full-text search).  Objects
  those revisions own are listed in ``HAND_MANAGED_PREFIXES`` and ignored when models and
  database are compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from worker.logs import get_logger
from worker.store.engine import make_engine
from worker.store.schema import Base

log = get_logger("seedworker.migrations")
HERE = Path(__file__).resolve().parent
BASELINE = "0001_baseline"
# Advisory lock key shared by every process that changes the schema on PostgreSQL.
SCHEMA_LOCK_KEY = 74657
# Tables and indexes created by hand-written revisions (FTS5 virtual table and its shadow
# tables, the PostgreSQL expression index): not in the SQLAlchemy metadata on purpose.
HAND_MANAGED_PREFIXES = ("documents_fts", "ix_documents_fts")


def include_name(name: str | None, type_: str, _parent_names: Any = None) -> bool:
    """Autogenerate filter: leave hand-managed objects out of comparisons."""
    return not (name and type_ in ("table", "index") and name.startswith(HAND_MANAGED_PREFIXES))


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config pointing at this package; env.py uses ``connection`` if given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    if url:
        cfg.attributes["url"] = url
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")


def _stamp_if_legacy(conn: Connection, cfg: Config) -> bool:
    """A database from ``create_all`` (no version table, tables present) gets stamped."""
    insp = inspect(conn)
    if insp.has_table("alembic_version") or not any(insp.has_table(t) for t in Base.metadata.tables):
        return False
    Base.metadata.create_all(conn)  # only what is missing
    command.stamp(cfg, BASELINE)
    return True


def upgrade_connection(conn: Connection, revision: str = "head") -> None:
    """Upgrade inside the caller's transaction (which must already be open)."""
    cfg = alembic_config(conn)
    _lock(conn)
    if _stamp_if_legacy(conn, cfg):
        log.info("schema: existing tables stamped at the baseline", revision=BASELINE)
    command.upgrade(cfg, revision)
    if revision == "head":
        drift = [describe_diff(d) for d in schema_diff(conn)]
        if drift:
            # The baseline is regenerated while nothing is released: a database made from an
            # older one is "at head" but lacks what was added since.  Say so once, loudly.
            log.warning(
                "schema: the database differs from the models; recreate it or add a migration "
                "(`seedworker db check` lists the differences)",
                drift=drift[:10],
            )


def upgrade(url: str, revision: str = "head") -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            upgrade_connection(conn, revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _lock(conn)
            command.downgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def current_revisions(conn: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(conn).get_current_heads())


def current(url: str) -> tuple[str, ...]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return current_revisions(conn)
    finally:
        engine.dispose()


def schema_diff(conn: Connection) -> list[Any]:
    """Differences between the models and the database (empty when they match)."""
    ctx = MigrationContext.configure(conn, opts={"include_name": include_name, "compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


def check(url: str) -> dict[str, Any]:
    """Where the database stands: its revision, the head, and any drift from the models."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            revs = current_revisions(conn)
            diff = schema_diff(conn) if revs else []
    finally:
        engine.dispose()
    head = head_revision()
    return {
        "current": list(revs),
        "head": head,
        "up_to_date": list(revs) == [head],
        "drift": [describe_diff(d) for d in diff],
    }


def describe_diff(entry: Any) -> str:
    """One line per difference: ``add_table tag_models``, ``add_column documents.lang``..."""
    if isinstance(entry, list):  # modify_* entries come as a list of tuples
        return "; ".join(describe_diff(e) for e in entry)
    op, *args = entry
    names = []
    has_objects = any(getattr(arg, "table", None) is not None for arg in args)
    for arg in args:
        name = getattr(arg, "name", None)
        table = getattr(arg, "table", None)
        if name is not None and table is not None and getattr(table, "name", None):
            names.append(f"{table.name}.{name}")
        elif name is not None:
            names.append(str(name))
        elif isinstance(arg, str) and not has_objects:
            names.append(arg)
    return f"{op} {' '.join(names)}".strip()
