"""Retry policy as a small value, not numbers scattered through task bodies: the one backoff
formula of seedworker -- task retries (tasks/base.py), webhook deliveries
(worker/relay/webhooks.py) and restarts of supervised processes (worker/supervisor.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from worker.errors import InputError, RetryableError


@dataclass(frozen=True)
class Decision:
    """What to do with an exception a task raised: retry after ``delay`` seconds, or give up
    (record the input as failed: its reason if it is an ``InputError``, else ``internal_error``)."""

    action: Literal["retry", "give_up"]
    delay: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff, capped, with jitter: attempt ``n`` (from 0) waits a random time in
    ``[(1 - jitter) * c, c]`` with ``c = min(cap, base * factor**n)``.  ``jitter=1`` is "full
    jitter", the default ``0.5`` "equal jitter" (never less than half the ceiling), ``0`` none.

    Infrastructure errors (database locked or down, Redis gone) are retried without limit
    by default: an outage must delay documents, never fail them.  Unexpected errors (bugs)
    are retried ``max_unexpected`` times, then recorded as ``internal_error``.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 60.0
    max_unexpected: int = 3
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        ceiling = self.ceiling(attempt)
        return ceiling * (1.0 - self.jitter * random.random())  # noqa: S311 - jitter, not crypto

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (exponent bounded: no float overflow)."""
        return min(self.cap, self.base * self.factor ** min(max(attempt, 0), 64))

    def decide(self, exc: BaseException, retries: int) -> Decision:
        """The one retry-or-give-up rule every seedworker task applies (tasks/base.py)."""
        if isinstance(exc, InputError):
            return Decision("give_up")  # the input itself is bad: another try cannot help
        if isinstance(exc, RetryableError) or retries < self.max_unexpected:
            return Decision("retry", self.delay(retries))
        return Decision("give_up")


DEFAULT_RETRY = RetryPolicy()
