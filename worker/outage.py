"""An outage of something a loop calls many times a second (the broker, for the watcher).

Logging every failed call buried the log (~21 warnings a second while Redis was down): the
first failure is logged, then at most one line every ``every`` seconds with how many were
left out and for how long it has lasted, and the end of the outage once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Outage:
    what: str
    log: Any  # a structlog logger
    every: float = 30.0
    since: float | None = None
    _logged_at: float = 0.0
    _left_out: int = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: str, **fields: Any) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since, self._logged_at, self._left_out = now, now, 0
            self.log.warning(f"{self.what} unreachable", error=error, **fields)
        elif now - self._logged_at >= self.every:
            self.log.warning(
                f"{self.what} still unreachable",
                error=error,
                down_seconds=round(now - self.since, 1),
                repeats_not_logged=self._left_out,
                **fields,
            )
            self._logged_at, self._left_out = now, 0
        else:
            self._left_out += 1

    def ok(self) -> bool:
        """Record a success; True when it ends an outage."""
        if self.since is None:
            return False
        self.log.info(f"{self.what} reachable again", down_seconds=round(time.monotonic() - self.since, 1))
        self.since = None
        return True
