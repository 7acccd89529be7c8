"""Logging set up once per process: console on a terminal, JSON lines otherwise.

One processor chain for everything.  structlog's own loggers and the standard library's
(Celery, kombu, Flower/tornado, httpx, warnings) meet in one handler on the root logger whose
``structlog.stdlib.ProcessorFormatter`` renders both, so in JSON mode every line a process
writes is one JSON object with ``level``, ``logger``, ``process`` (watcher, worker, webhooks,
publisher, flower, supervisor) and ``timestamp``.  What libraries write past logging is
brought into line too: Celery's banner is off (``--quiet``) and its signal-handler messages
become JSON; text a long-running process writes straight to stderr (a banner, a library's
print) becomes one JSON line per line.

Context variables (task id, document id, file name) are merged first, so every line logged
inside a task carries them without passing a logger around.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

from worker.settings import Settings, mask_url

#: Long-running processes, by the ``seedworker`` sub-command that starts them.
PROCESS_OF_COMMAND = {
    "run": "supervisor",
    "worker": "worker",
    "watch": "watcher",
    "publish": "publisher",
    "flower": "flower",
}
LONG_RUNNING = frozenset({*PROCESS_OF_COMMAND.values(), "webhooks"})
#: Libraries whose INFO lines repeat what we log, or show URLs (httpx logs every request's URL).
QUIET_LOGGERS = ("httpx", "httpcore", "alembic")  # alembic: "Context impl SQLiteImpl." on every command

_state: dict[str, Any] = {"json": False, "process": "seedworker"}
_QUERY = re.compile(r"(https?://[^\s\"'?#]+)\?[^\s\"'#]*")
_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^\s:/@]*):[^\s/@]+@")  # a URL's password inside text


def _mask_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Passwords in URLs, and query strings of http(s) URLs (tokens live there), never reach a line."""
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            masked = _PASSWORD.sub(r"\1:****@", mask_url(value)) if "@" in value else value
            event_dict[key] = _QUERY.sub(r"\1?****", masked) if "?" in masked else masked
    return event_dict


def _add_process(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.setdefault("process", _state["process"])
    return event_dict


def default_process() -> str:
    """The process name from the command line (``python -m worker.cli watch`` -> ``watcher``)."""
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    return PROCESS_OF_COMMAND.get(command, "cli")


def configure_logging(settings: Settings, *, stream: Any = None, process: str | None = None) -> None:
    stream = _unwrap(stream or sys.stderr)
    process = process or default_process()
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any
    extra: list[Any]
    if fmt == "console":
        renderer, extra = structlog.dev.ConsoleRenderer(), []
    else:
        renderer, extra = structlog.processors.JSONRenderer(), [structlog.processors.dict_tracebacks]
    _state.update(json=fmt == "json", process=process)
    level = getattr(logging, settings.log_level)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_process,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *extra, renderer],
        )
    )
    _skip_unused_record_fields()
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)
    _take_over_celery()
    if _state["json"] and process in LONG_RUNNING:
        sys.stderr = _JsonLines(stream)
        sys.excepthook = _log_uncaught


def _skip_unused_record_fields() -> None:
    """Nothing a line shows comes from a record's caller, thread or process fields (JSON and
    console lines are rendered from the event dict): the logging HOWTO's "Optimization" switches
    spare computing them for every record, twice per structlog line (ProcessorFormatter copies
    the record).  Issue 21: a quarter of a line's CPU; one line per document in the watcher and
    in the worker."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def is_json() -> bool:
    """Whether the last :func:`configure_logging` chose JSON lines (Celery then runs ``--quiet``)."""
    return bool(_state["json"])


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


# -- what libraries write past logging ----------------------------------------------------------------
def _take_over_celery() -> None:
    """Celery (re)configures the root logger when a worker starts unless a ``setup_logging``
    receiver exists; ours keeps this module's handler.  Its signal handlers write plain text
    with ``safe_say``; in JSON mode they write a JSON line instead."""
    if "celery" not in sys.modules:
        return
    from celery import signals

    signals.setup_logging.connect(_keep_our_logging, weak=False, dispatch_uid="seedworker-logging")
    if _state["json"]:
        import celery.apps.worker

        celery.apps.worker.safe_say = _json_say


def _keep_our_logging(**_: Any) -> None:
    return None


def json_line(message: str, *, logger: str, level: str = "info") -> str:
    return json.dumps(
        {
            "event": message,
            "level": level,
            "logger": logger,
            "process": _state["process"],
            "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        },
        ensure_ascii=False,
    )


def _json_say(msg: str, f: Any = None) -> None:
    """``celery.apps.worker.safe_say`` in JSON mode: one line, one ``os.write`` (signal-handler safe)."""
    target: Any = f if f is not None else sys.__stderr__
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.write(target.fileno(), (json_line(str(msg).strip(), logger="celery.apps.worker") + "\n").encode())


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    structlog.get_logger("seedworker").critical("uncaught exception", exc_info=(kind, value, tb))


class _JsonLines(io.TextIOBase):
    """stderr of a long-running process in JSON mode: text written straight to it (a banner, a
    library's print) becomes one JSON line per line; lines that are JSON objects pass as they are."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self._pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return int(self.target.fileno())

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""
        self.target.flush()

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        if line.startswith("{"):
            try:
                json.loads(line)
            except ValueError:
                pass
            else:
                self.target.write(line + "\n")
                return
        self.target.write(json_line(line.rstrip(), logger="stderr") + "\n")
        self.target.flush()


def _unwrap(stream: Any) -> Any:
    return stream.target if isinstance(stream, _JsonLines) else stream


class Throttle:
    """Repeated warnings, bounded: the first of each kind passes, then at most one every
    ``every`` seconds, carrying how many were held back in between (issue 19 §11: a watcher
    facing a full disk logged 1,164 identical warnings a minute).  ``clear(kind)`` when the
    condition ends, so the next outage is reported at once.

        held = throttle("replies")
        if held is not None:
            log.warning("cannot read replies", error=str(exc), repeated=held)
    """

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, kind: str) -> int | None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)

    def clear(self, kind: str) -> None:
        self._last.pop(kind, None)
        self._held.pop(kind, None)
