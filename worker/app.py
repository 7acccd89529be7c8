"""The Celery app, built from Settings by one function; nothing else creates it.

Delivery settings follow the known failure modes of Celery on Redis (docs/delivery.md):
late acks plus reject-on-worker-lost so a killed child's message is redelivered, prefetch 1
so a dead worker holds only what it was running, JSON only, events on for Flower.
"""

from __future__ import annotations

import weakref
from typing import Any

from celery import Celery
from celery.loaders.app import AppLoader
from kombu import Exchange, Queue

from worker.broker import broker_use_ssl
from worker.errors import DocumentFailed
from worker.settings import Settings

_SETTINGS: weakref.WeakKeyDictionary[Celery, Settings] = weakref.WeakKeyDictionary()
TASK_MODULES = ["tasks.ingest", "tasks.batch", "tasks.stages", "tasks.tagging", "tasks.webhooks"]


class PackageLoader(AppLoader):  # type: ignore[misc]
    """Celery's loader imports the task modules with the working directory put first on
    ``sys.path`` (``celery.utils.imports.cwd_in_path``): started from a folder holding a
    ``tasks.py`` or ``worker.py``, that file would shadow our packages.  Import from the
    installed packages only."""

    def import_from_cwd(self, module: str, imp: Any = None, package: str | None = None) -> Any:
        return (imp or self.import_module)(module, package=package)


def _queue(name: str) -> Queue:
    """Each queue with its own direct exchange and routing key (the shape a plain Celery producer
    declares for ``celery``).  ``Queue(name)`` alone binds every queue to the default exchange
    with the default key: the tag queue and ``celery`` then got a copy of every message sent to
    QUEUE once a worker had declared them."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def create_app(settings: Settings, broker_url: str) -> Celery:
    app = Celery("seedworker", broker=broker_url, include=TASK_MODULES, set_as_current=True, loader=PackageLoader)
    # The default queue ``celery`` too (settings.consumed_queues): a plain producer that names no
    # queue sends there, and its document must not wait where no worker looks (docs/delivery.md).
    queues = {*settings.consumed_queues, settings.webhook_queue}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,  # outcomes travel as events and replies, not results
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=settings.prefetch_multiplier,
        worker_concurrency=settings.worker_concurrency,
        # A pool process that grew past this (a huge document) is replaced after its task.
        worker_max_memory_per_child=settings.worker_max_memory_per_child or None,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_use_ssl=broker_use_ssl(broker_url),
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # Scan for expired unacknowledged messages every restore interval (10 s), not every
            # tenth one (kombu's default): a dead worker's tasks come back soon after the timeout.
            "unacked_restore_throttle": 1,
            "socket_keepalive": True,
            "health_check_interval": 30,
        },
        worker_soft_shutdown_timeout=10.0,
        worker_enable_soft_shutdown_on_idle=False,
        task_default_queue=settings.queue,
        task_queues=[_queue(name) for name in sorted(queues)],
        task_routes={
            "seedworker.tag": {"queue": settings.effective_tag_queue},
            "seedworker.tags.retag": {"queue": settings.effective_tag_queue},  # it runs NER too
            "seedworker.webhook.deliver": {"queue": settings.webhook_queue},  # its own worker: slow receivers
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_time_limit=600,
        task_soft_time_limit=540,
        # Celery reads ``retry(max_retries=None)`` as "the task's default" (3), not "forever":
        # without this an outage longer than three backoffs failed the task and acked its
        # message.  Our tasks bound their own retries (worker/retry.py, tasks/_common.py).
        # ``throws``: a failed document is an expected failure, logged without a traceback.
        # ``resultrepr_maxsize``: what Flower gets of a result: every file of a batch by name,
        # and nothing of the chain's inner stages, whose results carry the document itself.
        task_annotations={
            "*": {"max_retries": None, "throws": (DocumentFailed,)},
            "seedworker.ingest_batch": {"resultrepr_maxsize": 8192},
            "seedworker.normalise": {"resultrepr_maxsize": 1},
            "seedworker.tag": {"resultrepr_maxsize": 1},
        },
    )
    # Not in app.conf: Celery's config is shown to anyone who asks a worker (Flower's worker
    # page, ``inspect conf``), and it masks only keys whose names look secret.
    _SETTINGS[app] = settings
    return app


def settings_of(app: Celery) -> Settings:
    """The Settings an app was built from (the solo-pool runtime reads them here)."""
    return _SETTINGS[app]


def __getattr__(name: str) -> Celery:
    """``celery -A worker.app:flower_app flower``: Flower gets this same app (JSON only, the
    queues, TLS options) built from the settings and the broker URL its launcher passed in
    ``CELERY_BROKER_URL`` (``worker.flower.flower_command``).  That variable, not a setting of
    ours: Celery itself prefers it to ``conf.broker_url`` (``celery.app.utils.Settings.broker_url``),
    so in Flower's process it is the one broker URL whatever we read."""
    if name == "flower_app":
        import os

        from worker.logs import configure_logging
        from worker.settings import load_settings

        settings = load_settings()
        configure_logging(settings, process="flower")  # before Flower's tornado sets up its own
        return create_app(settings, os.environ["CELERY_BROKER_URL"])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
