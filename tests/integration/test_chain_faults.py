"""Chain mode (``SEEDWORKER_PIPELINE=chain``): an exception in any stage task is retried, then
the input is recorded failed (``internal_error``) with its event and reply, and the chain stops
(issue 18 §2).  Before, ``seedworker.normalise`` and ``seedworker.tag`` acknowledged the message
and recorded nothing: an API producer lost the document, a watched file waited for a re-send
forever.  The fault is injected through the documented test setting ``SEEDWORKER_TEST_FAULTS``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import celery
import pytest

from tests.support.faults import FAST, article
from tests.support.stack import FAILED, STORED, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FAULTS = "seedworker.normalise=raise@FAULT-NORMALISE,seedworker.tag=raise@FAULT-TAG,seedworker.store=raise@FAULT-STORE"


@pytest.fixture
def chain_stack(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Stack]:
    env = {**FAST, "SEEDWORKER_PIPELINE": "chain", "SEEDWORKER_TEST_FAULTS": FAULTS}
    stack = Stack(tmp_path, broker_url, database_url, extra_env=env)
    yield stack.start_all(concurrency=2)
    stack.stop()


def test_a_failing_stage_records_internal_error_in_chain_mode(chain_stack: Stack) -> None:
    stack = chain_stack
    rng = random.Random(18)
    producer = celery.Celery("chain-test", broker=stack.broker_url)
    names = {"FAULT-NORMALISE.txt", "FAULT-TAG.txt", "FAULT-STORE.txt", "fine.txt"}
    for name in sorted(names):  # an API producer without a reply
        producer.send_task(
            "seedworker.ingest",
            kwargs={"request": {"text": article(rng, len(name)).decode(), "filename": f"api-{name}"}},
            queue="seedworker",
        )
    for name in sorted(names):  # and the watched folder
        stack.drop(name, article(rng, 50 + len(name)))
    failed = stack.wait_for_events(6, 240, type=FAILED)
    stored = stack.wait_for_events(2, 60, type=STORED)
    assert sorted(e["data"]["filename"] for e in stored) == ["api-fine.txt", "fine.txt"]
    assert sorted(e["data"]["filename"] for e in failed) == sorted(
        [*(n for n in names if n != "fine.txt"), *(f"api-{n}" for n in names if n != "fine.txt")]
    )
    assert {e["data"]["reason"] for e in failed} == {"internal_error"}
    assert all("injected fault" in e["data"]["message"] for e in failed)
    for name in names - {"fine.txt"}:  # the watcher got its reply and moved the file
        stack.wait_for((stack.failed / name).exists, 60, what=f"{name} in failed/")
    stack.wait_for((stack.archive / "fine.txt").exists, 60, what="fine.txt archived")
    assert len(stack.events()) == 8  # exactly one outcome each
