"""Retry policy as a small value, not numbers scattered through task bodies."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped.

    Infrastructure errors (database locked or down, Redis gone) are retried without limit
    by default: an outage must delay documents, never fail them.  Unexpected errors (bugs)
    are retried ``max_unexpected`` times, then recorded as ``internal_error``.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 60.0
    max_unexpected: int = 3

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * self.factor**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


DEFAULT_RETRY = RetryPolicy()
