"""A producer cannot decide the outcome of another user's file (issue 19 §14).

The claim id of a file in flight is visible to anyone who can list the inbox (its processing
folder is named after it).  A producer who sends ``idempotency_key="claim:<id>"`` with the
watcher's ``reply_to`` used to have its own outcome taken for that file: a forged failure moved
the victim's file to ``failed/``.  The watcher's keys now carry a token (an HMAC of the claim id
under a secret in DATA_DIR) that no producer can compute, and it finishes a claim only on a
reply for that exact key.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import celery
import pytest

from tests.support.faults import FAST, article
from tests.support.stack import FAILED, STORED, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def stack(tmp_path: Path, broker_url: str) -> Iterator[Stack]:
    env = {**FAST, "SEEDWORKER_WATCH_RESEND_SECONDS": "6"}
    s = Stack(tmp_path, broker_url, f"sqlite:///{tmp_path / 'db.sqlite'}", extra_env=env)
    s.inbox.mkdir(parents=True)
    yield s
    s.stop()


def test_a_producer_cannot_forge_the_watchers_key(stack: Stack) -> None:
    stack.start("publisher", "publish")
    stack.start("watcher", "watch", "--watcher-id=test-watcher")
    stack.drop("victim.txt", article(random.Random(14), 1))
    own = stack.inbox / ".seedworker-processing" / "test-watcher"
    claim_id = stack.wait_for(
        lambda: (
            next((e.name.partition("_")[0] for e in own.iterdir() if e.name.endswith("_victim.txt")), None)
            if own.exists()
            else None
        ),
        60,
        what="the victim's claim",
    )
    client = stack.redis()
    stack.wait_for(lambda: client.llen("seedworker"), 30, what="the watcher's message queued")
    client.delete("seedworker")  # the watcher's message is late: the forged one arrives first

    forged = {
        "content_b64": "iVBORw0KGgoAAAAN",  # binary: fails
        "filename": "forged.png",
        "idempotency_key": f"claim:{claim_id}",
        "reply_to": "seedworker:replies:test-watcher",
    }
    celery.Celery("attacker", broker=stack.broker_url).send_task(
        "seedworker.ingest", kwargs={"request": forged}, queue="seedworker"
    )
    stack.start("worker", "worker", "--concurrency=1", f"--node-name=w1@{stack.root.name}")
    stack.wait_for_worker(120)
    [failed] = stack.wait_for_events(1, 90, type=FAILED)
    assert failed["data"]["filename"] == "forged.png"
    # The watcher re-sends its claim (same key, with its token) and the real outcome decides.
    [stored] = stack.wait_for_events(1, 120, type=STORED)
    assert stored["data"]["filename"] == "victim.txt"
    stack.wait_for((stack.archive / "victim.txt").exists, 60, what="victim.txt archived")
    assert not (stack.failed / "victim.txt").exists()
    secret = stack.root / "data" / "claim-key.secret"
    assert oct(os.stat(secret).st_mode & 0o777) == "0o600"
    client.close()
