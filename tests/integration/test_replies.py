"""A reply is pushed after the transaction committed: a Redis outage delays it and never
fails the task (a real embedded Redis, stopped and started under the reply)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tasks._common import reply
from tests.chaos.faults_support import private_redis
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
            assert reply(client, "replies:w", RESULT, patience=20.0) is True
        finally:
            restarted.join()
        (payload,) = client.lrange("replies:w", 0, -1)
        assert json.loads(payload)["outcomes"][0]["document_id"] == "doc_1"
        assert client.ttl("replies:w") > 0
        client.close()


def test_a_reply_redis_never_takes_is_given_up_after_its_patience_without_raising(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with private_redis() as server:
        client = connect(server.url)
        server.stop()
        started = time.monotonic()
        assert reply(client, "replies:w", RESULT, patience=1.5) is False
        assert 1.5 <= time.monotonic() - started < 5.0
        assert "reply not delivered: Redis unreachable" in capsys.readouterr().out
        client.close()
