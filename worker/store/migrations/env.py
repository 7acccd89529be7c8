"""Alembic environment: the connection comes from ``worker.store.migrations`` (or, when
Alembic is driven directly, from the settings' database URL)."""

from __future__ import annotations

from alembic import context

from worker.store.migrations import include_name
from worker.store.schema import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    from worker.settings import load_settings

    return load_settings().effective_database_url


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        include_name=include_name,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_offline() -> None:
    from worker.store.engine import normalise_url

    _configure(url=normalise_url(_url()), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from worker.store.engine import make_engine

    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
