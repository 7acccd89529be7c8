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
from worker.logs import get_logger
from worker.settings import Settings
from worker.store.engine import make_engine
from worker.store.near_index import NearDuplicateIndex
from worker.store.repository import DocumentStore
from worker.store.writethru_index import WriteThruIndex

if TYPE_CHECKING:
    from celery import Celery

    from worker.pipeline.tag import Tagger
    from worker.store.tagging import AutoModels

log = get_logger("seedworker.runtime")


@dataclass
class Runtime:
    settings: Settings
    store: DocumentStore
    redis: redis.Redis
    #: The Celery app that sends ``seedworker.tags.train`` when enough new labelled documents
    #: arrived (the worker's own app); None: training is never requested from here.
    app: Celery | None = None
    _tagger: Tagger | None = None
    _auto: AutoModels | None = None

    @property
    def tagger(self) -> Tagger:
        """The process's tagger, with the newest ``auto`` model.  Not a plain attribute: every
        read asks the database for the newest model version (one indexed read, see
        worker/store/tagging.py ``AutoModels``), and at most every ``auto_tag_check_seconds``
        whether to request training, which sends ``seedworker.tags.train`` through ``app``."""
        if self._tagger is None:
            from worker.pipeline.tag import Tagger
            from worker.store.tagging import AutoModels, TagStore, request_training

            self._tagger = Tagger.from_settings(self.settings)
            log.info("tagger ready", **self._tagger.describe())  # what this process will tag with
            self._auto = AutoModels(
                TagStore(self.store),
                self.settings,
                on_training_due=lambda: request_training(self.redis, self._send_train),
            )
        if self._auto is not None:
            self._tagger.auto = self._auto.current()
        return self._tagger

    def _send_train(self) -> None:
        from worker.store.tagging import TRAIN_TASK

        if self.app is None:
            log.warning("training is due, but this process has no Celery app to request it")
            return
        self.app.send_task(TRAIN_TASK)

    @classmethod
    def build(cls, settings: Settings, broker_url: str, *, app: Celery | None = None) -> Runtime:
        engine = make_engine(settings.effective_database_url)
        store = DocumentStore(
            engine,
            event_source=settings.event_source,
            duplicate_policy=settings.duplicate_policy,
            near=NearDuplicateIndex.from_settings(settings),
            embargo=settings.embargo,
            writethru=WriteThruIndex.from_settings(settings),
        )
        return cls(settings=settings, store=store, redis=connect(broker_url), app=app)

    def close(self) -> None:
        self.store.engine.dispose()
        self.redis.close()


_lock = threading.Lock()
_runtime: Runtime | None = None


def init_runtime(
    settings: Settings, broker_url: str, *, load_models: bool = True, app: Celery | None = None
) -> Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per process, by design
    with _lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = Runtime.build(settings, broker_url, app=app)
        if load_models:
            _ = _runtime.tagger
        return _runtime


def get_runtime() -> Runtime:
    """The process's runtime; built on first use where no worker_process_init ran (solo pool)."""
    if _runtime is None:
        from celery import current_app

        from worker.app import settings_of

        app = current_app._get_current_object()
        return init_runtime(settings_of(app), app.conf.broker_url, load_models=False, app=app)
    return _runtime
