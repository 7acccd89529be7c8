"""What every ``seedworker`` command shares, built once by the root group.

The settings are read on first use (``seedworker --help`` and ``schema events`` need none),
and so are the clients made from them: the document store and the Redis client.  Commands
receive the one :class:`CliContext` with ``@click.pass_obj`` and never build these
themselves; the root group closes whatever was opened when the command ends.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from worker.errors import EXIT_CONFIG
from worker.settings import Settings, load_settings

if TYPE_CHECKING:
    import redis

    from worker.store.repository import DocumentStore


class Failure(click.ClickException):
    """Something failed at run time (exit 1): one line per problem on stderr (``error: …``)."""

    def show(self, file: Any = None) -> None:
        for line in self.format_message().splitlines() or [""]:
            click.echo(f"error: {line}", err=True)


class Mistake(Failure):
    """Something the user must change: configuration (exit 2, as click's usage errors)."""

    exit_code = EXIT_CONFIG


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file the settings name (the default or a ``sqlite:///`` URL), else None."""
    url = settings.effective_database_url
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


@dataclass
class CliContext:
    _settings: Settings | None = None
    _stores: list[DocumentStore] = field(default_factory=list)
    _redis: redis.Redis | None = None

    @property
    def settings(self) -> Settings:
        """The settings, read once; a problem in them is a ConfigError (one line per problem
        from the error handler).  Logs go to stderr from then on: stdout carries only a
        command's output (``--json`` pipes into jq)."""
        if self._settings is None:
            from worker.logs import configure_logging

            self._settings = load_settings()
            configure_logging(self._settings, stream=sys.__stderr__ or sys.stderr)
        return self._settings

    @property
    def loaded_settings(self) -> Settings | None:
        """The settings if a command read them (for error messages), without reading them."""
        return self._settings

    def require_database(self) -> None:
        """Raise InstanceNotFound (where it looked) unless the instance's database exists: a
        command other than ``run`` and ``db upgrade`` never creates one."""
        settings = self.settings
        path = sqlite_file(settings)
        if path is not None and not path.is_file():
            from worker.instance import not_found

            raise not_found(settings.data_dir.resolve(), f"no database {path.resolve()}")

    def store(self, *, near: bool = False) -> DocumentStore:
        """The document store of an existing instance, its schema migrated to the newest
        revision.  ``near`` adds the near-duplicate index (MinHash) even when near detection
        is off, for ``dedup``."""
        from worker.store.repository import DocumentStore
        from worker.store.schema_check import ensure_schema

        settings = self.settings
        self.require_database()
        ensure_schema(settings)
        index = None
        if near:
            from worker.pipeline.dedup import DedupParams
            from worker.store.near_index import NearDuplicateIndex

            index = NearDuplicateIndex(
                DedupParams(
                    threshold=settings.dedup_threshold,
                    shingle_size=settings.dedup_shingle_size,
                    num_perm=settings.dedup_num_perm,
                )
            )
        writethru = None
        if near:
            from worker.store.writethru_index import WriteThruIndex

            writethru = WriteThruIndex(index.params, threshold=settings.dedup_containment) if index else None
            if not settings.dedup_updates:
                writethru = None
        store = DocumentStore.from_settings(settings, near=index, writethru=writethru)
        self._stores.append(store)
        return store

    def broker_url(self) -> str:
        """The configured broker, or the running embedded one (never started by a reader)."""
        from worker.broker import broker_url_for

        settings = self.settings
        if settings.embedded_broker and not settings.redis_dir.is_dir():
            from worker.instance import not_found

            raise not_found(settings.data_dir.resolve(), "no embedded Redis has run there")
        return broker_url_for(settings, start=False)

    def redis(self) -> redis.Redis:
        if self._redis is None:
            from worker.broker import connect

            self._redis = connect(self.broker_url())
        return self._redis

    def reconnect_redis(self) -> None:
        """Forget the Redis client: the next :meth:`redis` finds the broker again (an embedded
        Redis restarted on another port writes its new URL to the data directory)."""
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.close()
            self._redis = None

    def close(self) -> None:
        for store in self._stores:
            store.engine.dispose()
        self._stores.clear()
        if self._redis is not None:
            self._redis.close()
            self._redis = None
