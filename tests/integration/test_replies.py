"""A reply is pushed after the transaction committed: a Redis outage delays it and never
fails the task (a real embedded Redis, stopped and started under the reply)."""

from __future__ import annotations

import json
import threading
import time

import redis

from tasks._common import reply
from tests.support.faults import private_redis
from tests.support.logs import captured_logs
from worker.broker import connect
from worker.models import IngestResult, Outcome

RESULT = IngestResult(
    filename="a.txt", outcomes=[Outcome(key="claim:1", status="stored", document_id="doc_1", filename="a.txt")]
)


def test_a_reply_waits_out_a_redis_restart_and_arrives() -> None:
    with private_redis() as server:
        client = connect(server.url)
        server.stop()
        restarted = threading.Timer(1.0, server.start)
        restarted.start()
        try:
            assert reply(client, "seedworker:replies:w", RESULT, patience=20.0) is True
        finally:
            restarted.join()
        (payload,) = client.lrange("seedworker:replies:w", 0, -1)
        assert json.loads(payload)["outcomes"][0]["document_id"] == "doc_1"
        assert client.ttl("seedworker:replies:w") > 0
        client.close()


def test_a_reply_redis_never_takes_is_given_up_after_its_patience_without_raising() -> None:
    with private_redis() as server, captured_logs() as logs:
        client = connect(server.url)
        server.stop()
        started = time.monotonic()
        assert reply(client, "seedworker:replies:w", RESULT, patience=1.5) is False
        assert 1.5 <= time.monotonic() - started < 5.0
        client.close()
    assert "reply not delivered: Redis unreachable" in [e["event"] for e in logs if e["log_level"] == "error"]


def test_a_reply_goes_only_to_a_list_under_the_reply_prefix(redis_client: redis.Redis) -> None:
    """``reply_to="seedworker"`` once pushed a reply into the task queue and set a 7-day EXPIRE on it."""
    redis_client.lpush("seedworker", "a queued task")
    assert reply(redis_client, "seedworker", RESULT, patience=0.1) is False
    assert redis_client.llen("seedworker") == 1
    assert redis_client.ttl("seedworker") == -1
    assert reply(redis_client, "seedworker:replies:w", RESULT, patience=0.1) is True
