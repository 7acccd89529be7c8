"""Heavy clients made once per worker process: database engine, Redis client, tagger.

Created in Celery's ``worker_process_init`` (after the fork, so no connection is shared
between processes) and never at import time or per task.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from worker.broker import connect
from worker.settings import Settings
from worker.store.engine import make_engine
from worker.store.near_index import NearDuplicateIndex
from worker.store.repository import DocumentStore
from worker.store.writethru_index import WriteThruIndex

if TYPE_CHECKING:
    from worker.pipeline.tag import Tagger
    from worker.store.tagging import AutoModels


def _send_train() -> None:
    from celery import current_app

    from worker.store.tagging import TRAIN_TASK

    current_app.send_task(TRAIN_TASK)


@dataclass
class Runtime:
    settings: Settings
    store: DocumentStore
    redis: redis.Redis
    _tagger: Tagger | None = None
    _auto: AutoModels | None = None

    @property
    def tagger(self) -> Tagger:
        """The process's tagger, with the newest ``auto`` model (its version is checked on
        every call, see worker/store/tagging.py)."""
        if self._tagger is None:
            from worker.pipeline.tag import Tagger
            from worker.store.tagging import AutoModels, TagStore, request_training

            self._tagger = Tagger.from_settings(self.settings)
            self._auto = AutoModels(
                TagStore(self.store),
                self.settings,
                on_training_due=lambda: request_training(self.redis, _send_train),
            )
        if self._auto is not None:
            self._tagger.auto = self._auto.current()
        return self._tagger

    @classmethod
    def build(cls, settings: Settings, broker_url: str) -> Runtime:
        engine = make_engine(settings.effective_database_url)
        store = DocumentStore(
            engine,
            event_source=settings.event_source,
            duplicate_policy=settings.duplicate_policy,
            near=NearDuplicateIndex.from_settings(settings),
            writethru=WriteThruIndex.from_settings(settings),
        )
        return cls(settings=settings, store=store, redis=connect(broker_url))

    def close(self) -> None:
        self.store.engine.dispose()
        self.redis.close()


_lock = threading.Lock()
_runtime: Runtime | None = None


def init_runtime(settings: Settings, broker_url: str, *, load_models: bool = True) -> Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per process, by design
    with _lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = Runtime.build(settings, broker_url)
        if load_models:
            _ = _runtime.tagger
        return _runtime


def get_runtime() -> Runtime:
    """The process's runtime; built on first use where no worker_process_init ran (solo pool)."""
    if _runtime is None:
        from celery import current_app

        from worker.app import settings_of

        app = current_app._get_current_object()
        return init_runtime(settings_of(app), app.conf.broker_url, load_models=False)
    return _runtime
