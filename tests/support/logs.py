"""``structlog.testing.capture_logs`` that also sees the project's module-level loggers.

Every module keeps ``log = get_logger(...)``, a lazy proxy; with ``cache_logger_on_first_use``
(worker/logs.py) its first call after ``configure_logging`` fixes its processors for good, so
a later ``capture_logs`` in the same process sees nothing from it.  ``captured_logs`` makes
every such proxy of ``worker.*`` and ``tasks.*`` lazy again for the block, and afterwards puts
back what was cached before (a proxy first used inside the block must not keep the capture's
processors either)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.testing import capture_logs

PACKAGES = ("worker", "tasks")
_PROXY = type(structlog.get_logger())  # structlog does not export the class


def _proxies() -> list[Any]:
    found: dict[int, Any] = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in PACKAGES or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, _PROXY):
                found[id(value)] = value
    return list(found.values())


@contextmanager
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    cached = {id(p): (p, vars(p).pop("bind", None)) for p in _proxies()}
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        for proxy in _proxies():  # with those of modules imported inside the block
            vars(proxy).pop("bind", None)
        for proxy, bind in cached.values():
            if bind is not None:
                proxy.bind = bind
