"""The one backoff formula (worker/retry.py) and the three places that use it."""

from __future__ import annotations

import pytest

from worker.errors import EmptyDocument, StoreUnavailable
from worker.retry import DEFAULT_RETRY, RetryPolicy


@pytest.mark.parametrize(
    ("jitter", "low"),
    [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)],
    ids=["none", "equal", "full"],
)
def test_a_delay_lies_between_the_jittered_floor_and_the_ceiling(jitter: float, low: float) -> None:
    policy = RetryPolicy(base=1.0, factor=2.0, cap=60.0, jitter=jitter)
    for attempt in range(10):
        ceiling = min(60.0, 2.0**attempt)
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(low * ceiling - 1e-9 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))
        if jitter:
            assert len(set(delays)) > 1  # random, not a constant
        else:
            assert set(delays) == {ceiling}


def test_the_ceiling_is_capped_and_never_overflows() -> None:
    assert RetryPolicy(base=0.5, cap=30.0).ceiling(100_000) == 30.0
    assert RetryPolicy(base=0.5, cap=30.0).ceiling(-3) == 0.5


def test_the_supervisor_restart_pauses_are_those_it_always_had() -> None:
    from worker.supervisor import RESTART_BACKOFF

    assert [RESTART_BACKOFF.delay(n) for n in range(1, 9)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_webhook_retries_use_full_jitter_from_the_settings() -> None:
    from worker.relay.webhooks import retry_policy
    from worker.settings import Settings

    policy = retry_policy(Settings(_env_file=None, webhook_backoff=3.0, webhook_backoff_cap=20.0))  # type: ignore[call-arg]
    assert (policy.base, policy.cap, policy.jitter) == (3.0, 20.0, 1.0)
    assert policy.ceiling(0) == 3.0 and policy.ceiling(5) == 20.0  # after the 1st and 6th failed POST


def test_decide_gives_up_on_bad_input_and_retries_outages_without_limit() -> None:
    assert DEFAULT_RETRY.decide(EmptyDocument("empty"), 0).action == "give_up"
    assert DEFAULT_RETRY.decide(StoreUnavailable("down"), 1000).action == "retry"
    assert DEFAULT_RETRY.decide(RuntimeError("bug"), 2).action == "retry"
    assert DEFAULT_RETRY.decide(RuntimeError("bug"), 3).action == "give_up"
