"""What one ingest request may carry (issue 19 §2, §6), and the main-process guard that applies
the bounds before a message reaches the pool (tasks/base.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from tasks.base import Carried, bound_message, bound_v1_body, carried, single_argument
from worker.errors import InvalidRequest
from worker.models import (
    MAX_BATCH_REQUESTS,
    MAX_METADATA_DEPTH,
    REFUSED_FIELD,
    IngestRequest,
    Reply,
    json_bounds,
    record_key,
    split_record_key,
)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metadata": {"x": _nested(MAX_METADATA_DEPTH)}}, "deeper than"),
        ({"metadata": {"x": json.loads("[" * 900 + "]" * 900)}}, "deeper than"),
        ({"metadata": {"x": "y" * 70_000}}, "larger than"),
        ({"metadata": {"x": "a\x00b"}}, "NUL"),
        ({"text": "bad \ud800"}, "surrogate"),
        ({"source": "s\ud800"}, "surrogate|unicode"),
        ({"source": "a\x00b"}, "NUL"),
        ({"filename": "a\ud800.txt"}, "surrogate|unicode"),
        ({"filename": "a\x07.txt"}, "control"),
        ({"tags": ["ok", "t\ud800"]}, "surrogate"),
        ({"idempotency_key": "k" * 201}, "idempotency_key"),
        ({"idempotency_key": "a b"}, "idempotency_key"),
        ({"idempotency_key": "claim:x#L1"}, "idempotency_key"),
        ({"reply_to": "seedworker"}, "reply_to"),
        ({"reply_to": "other:replies:x"}, "reply_to"),
        ({REFUSED_FIELD: "the message nests deeper than 24 levels"}, "refused before processing"),
    ],
)
def test_out_of_bounds_requests_are_refused_by_the_model(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IngestRequest.model_validate({"text": "hello", **fields})


def test_requests_within_bounds_pass() -> None:
    req = IngestRequest.model_validate(
        {
            "text": "hello\x00 world",  # NUL in text is the normaliser's business (binary), not the model's
            "metadata": {"x": _nested(MAX_METADATA_DEPTH - 1), "path": "a/b.txt"},
            "idempotency_key": "claim:0123abcd.ffee",
            "reply_to": "seedworker:replies:client:abc",
        }
    )
    assert req.idempotency_key == "claim:0123abcd.ffee"


def test_json_bounds_is_iterative() -> None:
    assert json_bounds(_nested(100_000), max_depth=10) == "nests deeper than 10 levels"


def test_outcome_keys_and_replies() -> None:
    assert split_record_key(record_key("claim:a.b", 12)) == ("claim:a.b", 12)
    assert split_record_key("claim:a.b") == ("claim:a.b", None)
    reply = Reply.model_validate_json(
        json.dumps(
            {
                "filename": "2 files",
                "outcomes": [
                    {"status": "stored", "key": "k1#L1", "filename": "a"},
                    {"status": "failed", "key": "k1#L2", "filename": "a"},
                    {"status": "stored", "key": "k2", "filename": "b"},
                ],
            }
        )
    )
    assert {k: len(v) for k, v in reply.by_request().items()} == {"k1": 2, "k2": 1}


def test_single_argument_names_what_was_wrong() -> None:
    assert single_argument((), {"request": 1}, "request") == 1
    assert single_argument((1,), {}, "request") == 1
    with pytest.raises(InvalidRequest, match="'req'"):
        single_argument((), {"req": 1}, "request")
    with pytest.raises(InvalidRequest, match="nothing"):
        single_argument((), {}, "request")


def test_carried_bounds_a_batch_to_one_input() -> None:
    assert len(carried("seedworker.ingest_batch", "t", [], {"requests": "x" * 2000})) == 1
    assert len(carried("seedworker.ingest_batch", "t", [], {"requests": [{}] * (MAX_BATCH_REQUESTS + 1)})) == 1
    [item] = carried("seedworker.ingest", "t", [], {"request": {"filename": "a/\ud800", "idempotency_key": "k" * 300}})
    assert item == Carried(key="task:t", filename="a\uff0f?", source="api", reply_to=None)


class _Message:
    """The parts of a kombu message ``bound_message`` reads and writes."""

    def __init__(self, payload: Any) -> None:
        self.body = json.dumps(payload).encode()
        self._decoded_cache: Any = None
        self.content_type, self.content_encoding = "application/json", "utf-8"
        self.headers = {"id": "task-1", "task": "seedworker.ingest"}

    @property
    def payload(self) -> Any:
        return self._decoded_cache or json.loads(self.body)


def test_bound_message_replaces_a_deep_request_by_its_refusal() -> None:
    deep = json.loads("[" * 900 + "]" * 900)
    request = {"text": "x", "filename": "deep.txt", "idempotency_key": "k1", "metadata": {"x": deep}}
    message = _Message([[], {"request": request}, {}])
    assert bound_message("seedworker.ingest", message) == "nests deeper than 24 levels"
    args, kwargs, _ = json.loads(message.body)
    assert args == []
    why = "the message nests deeper than 24 levels"
    refused = {"filename": "deep.txt", "idempotency_key": "k1", REFUSED_FIELD: why}
    assert kwargs == {"request": refused}
    assert message.payload == json.loads(message.body)
    ok = _Message([[], {"request": {"text": "x"}}, {}])
    before = ok.body
    assert bound_message("seedworker.ingest", ok) is None
    assert ok.body == before


def test_bound_message_keeps_the_good_requests_of_a_batch() -> None:
    good = {"text": "fine", "idempotency_key": "good"}
    bad = {"text": "x", "idempotency_key": "bad", "metadata": {"x": _nested(40)}}
    message = _Message([[], {"requests": [good, bad]}, {}])
    assert bound_message("seedworker.ingest_batch", message)
    _, kwargs, _ = json.loads(message.body)
    assert kwargs["requests"][0] == good
    assert kwargs["requests"][1][REFUSED_FIELD].startswith("the message nests deeper")


def test_a_protocol_1_body_is_bounded_too() -> None:
    deep = json.loads("[" * 900 + "]" * 900)
    request = {"text": "x", "metadata": {"x": deep}}
    body = {"id": "t1", "task": "seedworker.ingest", "args": [], "kwargs": {"request": request}}
    bounded = bound_v1_body("seedworker.ingest", body)
    assert bounded["id"] == "t1"
    assert REFUSED_FIELD in bounded["kwargs"]["request"]
    assert json_bounds(bounded, max_depth=8) is None
    shallow = {"id": "t2", "task": "seedworker.ingest", "args": [], "kwargs": {"request": {"text": "x"}}}
    assert bound_v1_body("seedworker.ingest", shallow) is shallow
