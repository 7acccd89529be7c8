"""What tests of webhook delivery share: the endpoints' secret and the worker of the webhook
queue (the receiver itself: tests/support/http.py)."""

from __future__ import annotations

from tests.support.stack import Stack

SECRET = "s3cret-for-tests"


def start_webhook_worker(stack: Stack, concurrency: int = 4) -> None:
    """The worker of the webhook queue, as `seedworker run` starts it (worker/supervisor.py)."""
    stack.start(
        "webhooks",
        "worker",
        "--queues=seedworker.webhooks",
        "--pool=threads",
        f"--concurrency={concurrency}",
        f"--node-name=webhooks@{stack.root.name}",
    )
