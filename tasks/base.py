"""``SeedworkerTask``: the base of every seedworker task, so no task can forget an outcome.

Three guards, one per place a message can go wrong:

* **In the worker's main process, before the pool** (``guarded_strategy``): Celery decodes the
  message there and pickles its arguments to a pool process.  A message nested a few hundred
  levels deep killed the main process in that pickling (RecursionError), was restored, and
  killed the restarted worker again, forever.  The message is bounded first
  (``MAX_MESSAGE_DEPTH``, iteratively); a request out of bounds, or a body that does not
  decode, is replaced by a small one that carries only its identifying fields and the reason
  (``REFUSED_FIELD``), which the model turns into an ``invalid_request`` outcome.
* **When a pool process dies running it** (``GuardedRequest``): ``reject_on_worker_lost``
  redelivers such a message, forever if it always kills its process.  Deaths are counted per
  task id in Redis; at ``POISON_DEATHS`` the message goes to the dead-letter list
  ``seedworker:dead-letter`` and each input it carried is recorded failed (``worker_lost``,
  through ``seedworker.record_failure``); a batch is split into single messages first, so only
  the input that kills is failed.
* **In the pool process** (``SeedworkerTask.__call__``): a fresh log context, then one rule for
  any exception, ``RetryPolicy.decide``: retry with backoff, or give up and record every input
  the message carries as failed (``give_up``), with its event and reply.  A chain stops there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.worker.request import Request
from kombu.exceptions import DecodeError

from worker.errors import DocumentFailed, InputError, InvalidRequest, RetryableError, WorkerLost
from worker.logs import get_logger
from worker.models import (
    MAX_BATCH_REQUESTS,
    MAX_MESSAGE_DEPTH,
    REFUSED_FIELD,
    FileSummary,
    IngestResult,
    Outcome,
    json_bounds,
    printable,
    usable_key,
    usable_reply_to,
)
from worker.names import (
    BATCH_TASK,
    DEAD_LETTER_KEY,
    DEATHS_TTL_SECONDS,
    FAILURE_TASK,
    INGEST_TASK,
    NORMALISE_TASK,
    POISON_DEATHS,
    STORE_TASK,
    TAG_TASK,
    deaths_key,
)
from worker.retry import DEFAULT_RETRY, RetryPolicy

log = get_logger("seedworker.tasks")
DEAD_LETTER_MAX = 1000  # entries kept in the dead-letter list (oldest dropped)
DEAD_LETTER_BODY_CHARS = 1024 * 1024  # of each message's body (a document may be 20 MB)


# -- what a message carries, told from its raw arguments -------------------------------------------------
@dataclass(frozen=True)
class Carried:
    """One input of a message, as far as the raw message tells: enough to record its failure."""

    key: str
    filename: str
    source: str
    reply_to: str | None

    @classmethod
    def of(cls, payload: Any, fallback_key: str, key: Any = None) -> Carried:
        fields = payload if isinstance(payload, dict) else {}
        name = printable(fields.get("filename"), 255, "request").replace("/", "\uff0f").replace("\\", "\uff3c")
        return cls(
            key=usable_key(key) or usable_key(fields.get("idempotency_key")) or fallback_key,
            filename=name,
            source=printable(fields.get("source"), 200, "api"),
            reply_to=usable_reply_to(fields.get("reply_to")),
        )


def single_argument(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], name: str) -> Any:
    """The one argument ``name`` of a message (keyword or positional); InvalidRequest otherwise."""
    if REFUSED_FIELD in kwargs:
        raise InvalidRequest(f"refused before processing: {printable(kwargs[REFUSED_FIELD], 500, 'out of bounds')}")
    if not args and set(kwargs) == {name}:
        return kwargs[name]
    if len(args) == 1 and not kwargs:
        return args[0]
    got = ", ".join([*(f"positional #{i + 1}" for i in range(len(args))), *map(repr, kwargs)]) or "nothing"
    raise InvalidRequest(f"the message must carry one argument {name!r}; it carried {printable(got, 300, '?')}")


def carried(task_name: str, task_id: str, args: Any, kwargs: Any) -> list[Carried]:
    """The inputs a message of ``task_name`` carries (empty for tasks that carry no document)."""
    args = list(args) if isinstance(args, list | tuple) else []
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    fallback = f"task:{task_id}"

    def arg(name: str, index: int = 0) -> Any:
        return kwargs[name] if name in kwargs else (args[index] if len(args) > index else None)

    if task_name == INGEST_TASK:
        return [Carried.of(arg("request"), fallback)]
    if task_name == BATCH_TASK:
        requests = arg("requests")
        if not isinstance(requests, list) or not 0 < len(requests) <= MAX_BATCH_REQUESTS:
            return [Carried.of(None, fallback)]
        return [Carried.of(r, f"{fallback}#{i}") for i, r in enumerate(requests)]
    if task_name == NORMALISE_TASK:
        return [Carried.of(arg("request"), fallback, key=arg("key", 1))]
    if task_name in (TAG_TASK, STORE_TASK):
        batch = arg("batch")
        batch = batch if isinstance(batch, dict) else {}
        return [Carried.of(batch.get("request"), fallback, key=batch.get("key"))]
    if task_name == FAILURE_TASK:
        summary = arg("summary", 1)
        name = summary.get("filename") if isinstance(summary, dict) else None
        fields = {"filename": name, "source": arg("source", 2), "reply_to": arg("reply_to", 5)}
        return [Carried.of(fields, fallback, key=arg("key"))]
    return []


# -- the pool side ----------------------------------------------------------------------------------------
class SeedworkerTask(Task):  # type: ignore[misc]
    """Base of every seedworker task (``@shared_task(base=SeedworkerTask, bind=True)``)."""

    acks_late = True
    typing = False  # arguments are checked by the task (single_argument), into a typed outcome
    Strategy = "tasks.base:guarded_strategy"
    Request = "tasks.base:GuardedRequest"
    policy: ClassVar[RetryPolicy] = DEFAULT_RETRY

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # self.run, not super().__call__: the worker already pushed this run's request (its id,
        # retries, chain); Task.__call__ would push an empty one over it.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(task_id=self.request.id, task=self.name)
        try:
            _inject_fault(self.name, args, kwargs)
            return self.run(*args, **kwargs)
        except (Retry, Ignore, Reject, DocumentFailed):  # DocumentFailed: everything is recorded
            raise
        except Exception as exc:
            decision = self.policy.decide(exc, self.request.retries or 0)
            if decision.action == "retry":
                if isinstance(exc, RetryableError):
                    delay = round(decision.delay, 2)
                    log.warning("retrying after infrastructure error", error=str(exc), retry_in=delay)
                else:
                    log.exception("unexpected error, retrying")
                raise self.retry(exc=exc, countdown=decision.delay, max_retries=None) from exc
            if not isinstance(exc, InputError):
                log.exception("unexpected error, giving up")
            try:
                return self.give_up(exc, args, kwargs)
            except RetryableError as again:  # recording the failure needs the database back
                delay = self.policy.delay(self.request.retries or 0)
                raise self.retry(exc=again, countdown=delay, max_retries=None) from again
        finally:
            structlog.contextvars.clear_contextvars()

    def give_up(self, exc: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Record every input of the message as failed (its reason, or ``internal_error``), with
        events and replies; stop a chain here.  Tasks without documents only log."""
        self.request.chain = None  # the next stage must not run on nothing
        inputs = carried(self.name, str(self.request.id), args, kwargs)
        if not inputs:
            return f"gave up: {type(exc).__name__}"
        reason = exc.reason if isinstance(exc, InputError) else "internal_error"
        message = exc.message if isinstance(exc, InputError) else f"processing failed: {type(exc).__name__}: {exc}"
        outcomes = record_failures(inputs, reason=reason, message=message[:2000])
        return IngestResult(filename=inputs[0].filename, outcomes=outcomes).short()


def record_failures(inputs: list[Carried], *, reason: str, message: str) -> list[Outcome]:
    """A failure row and ``document.failed`` event per input, then the replies they asked for;
    last ``DocumentFailed`` (through ``finish``), so that Flower shows the task as failed."""
    from tasks._common import finish, reply
    from worker.runtime import get_runtime

    rt = get_runtime()
    outcomes = [
        rt.store.persist_failure(
            key=item.key, summary=FileSummary.of(item.filename, b""), source=item.source, reason=reason, message=message
        )
        for item in inputs
    ]
    targets: dict[str, list[Outcome]] = {}
    for item, outcome in zip(inputs, outcomes, strict=True):
        if item.reply_to:
            targets.setdefault(item.reply_to, []).append(outcome)
    for target, mine in targets.items():
        reply(rt.redis, target, IngestResult(filename=inputs[0].filename, outcomes=mine))
    finish(rt, None, IngestResult(filename=inputs[0].filename, outcomes=outcomes))  # last: raises DocumentFailed
    return outcomes


def _inject_fault(task_name: str, args: Any, kwargs: Any) -> None:
    """``SEEDWORKER_TEST_FAULTS`` (testing only): ``task=raise@marker`` raises, ``task=exit@marker``
    ends the pool process at once, when the task's arguments name the marker."""
    from worker.runtime import get_runtime

    spec = get_runtime().settings.test_faults
    if not spec:
        return
    shown = repr(args) + repr(kwargs)
    for entry in spec.split(","):
        name, _, rest = entry.strip().partition("=")
        action, _, marker = rest.partition("@")
        if name == task_name and marker and marker in shown:
            if action == "exit":
                os._exit(70)
            raise RuntimeError(f"injected fault in {task_name} (SEEDWORKER_TEST_FAULTS)")


# -- the main-process side ------------------------------------------------------------------------------
def _salvage(payload: Any, problem: str) -> dict[str, Any]:
    """A refused request: its short identifying fields and why (see ``REFUSED_FIELD``)."""
    fields = payload if isinstance(payload, dict) else {}
    kept = {
        name: fields[name]
        for name in ("filename", "source", "idempotency_key", "reply_to")
        if isinstance(fields.get(name), str) and len(fields[name]) <= 300
    }
    return {**kept, REFUSED_FIELD: problem}


def refuse(task_name: str, args: list[Any], kwargs: dict[str, Any], problem: str) -> tuple[list[Any], dict[str, Any]]:
    """Arguments that replace an out-of-bounds message: each request too deep is replaced by its
    refusal; a message of another task becomes a refusal the task records."""

    def arg(name: str) -> Any:
        return kwargs[name] if name in kwargs else (args[0] if args else None)

    if task_name == INGEST_TASK:
        return [], {"request": _salvage(arg("request"), problem)}
    if task_name == BATCH_TASK:
        requests = arg("requests")
        if isinstance(requests, list):
            inner = MAX_MESSAGE_DEPTH - 2
            return [], {
                "requests": [
                    r if json_bounds(r, max_depth=inner, strings=False) is None else _salvage(r, problem)
                    for r in requests[: MAX_BATCH_REQUESTS + 1]
                ]
            }
        return [], {"requests": [_salvage(None, problem)]}
    return [], {REFUSED_FIELD: problem}


def bound_message(task_name: str, message: Any) -> str | None:
    """Check a protocol-2 message before Celery hands it to the pool; replace it by its refusal
    when out of bounds.  Returns the problem, or None when the message passes unchanged."""
    problem: str | None
    try:
        payload = message.payload
    except DecodeError as exc:  # includes a JSON nesting too deep for the decoder itself
        payload, problem = None, f"the message does not decode ({type(exc.__cause__ or exc).__name__})"
    else:
        problem = json_bounds(payload, max_depth=MAX_MESSAGE_DEPTH, strings=False)
    if problem is None:
        return None
    ok = isinstance(payload, list | tuple) and len(payload) == 3
    args = list(payload[0]) if ok and isinstance(payload[0], list | tuple) else []
    kwargs = payload[1] if ok and isinstance(payload[1], dict) else {}
    new_args, new_kwargs = refuse(task_name, args, kwargs, f"the message {problem}")
    body = [new_args, new_kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    message.body = json.dumps(body).encode("utf-8")
    message._decoded_cache = body
    message.content_type, message.content_encoding = "application/json", "utf-8"
    log.error("message refused before the pool", task=task_name, task_id=message.headers.get("id"), problem=problem)
    return problem


def bound_v1_body(task_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``bound_message`` for a protocol-1 body (a dict with ``args`` and ``kwargs``)."""
    problem = json_bounds(body, max_depth=MAX_MESSAGE_DEPTH, strings=False)
    if problem is None:
        return body
    args = body.get("args")
    kwargs = body.get("kwargs")
    new_args, new_kwargs = refuse(
        task_name,
        list(args) if isinstance(args, list | tuple) else [],
        kwargs if isinstance(kwargs, dict) else {},
        f"the message {problem}",
    )
    kept = {k: v for k, v in body.items() if isinstance(v, str | int | float | bool) or v is None}
    log.error("message refused before the pool", task=task_name, task_id=kept.get("id"), problem=problem)
    return {**kept, "args": new_args, "kwargs": new_kwargs}


def guarded_strategy(task: Task, app: Any, consumer: Any, **options: Any) -> Any:
    """Celery's default strategy with ``bound_message`` in front (``Task.Strategy``)."""
    from celery.worker.strategy import default

    handle = default(task, app, consumer, **options)

    def guarded(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **more: Any) -> Any:
        if body is None and isinstance(message.headers, dict) and "task" in message.headers:
            bound_message(task.name, message)
        elif isinstance(body, dict):  # protocol 1: the consumer decoded the body already
            body = bound_v1_body(task.name, body)
        return handle(message, body, ack, reject, callbacks, **more)

    return guarded


_redis_lock = threading.Lock()
_redis: Any = None


def _main_redis(url: str) -> Any:
    global _redis  # noqa: PLW0603 - one client per main process
    with _redis_lock:
        if _redis is None:
            from worker.broker import connect

            _redis = connect(url, socket_timeout=5, socket_connect_timeout=5)
        return _redis


class GuardedRequest(Request):  # type: ignore[misc]
    """Celery's request, dead-lettering a message whose runs killed ``POISON_DEATHS`` pool processes."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        lost = isinstance(exc, WorkerLostError) or (
            isinstance(exc, SystemExit) and not (self._already_cancelled or self._already_revoked)
        )
        if lost:
            try:
                if self._dead_letter(exc):
                    from celery.worker.state import task_ready

                    task_ready(self)
                    self.acknowledge()
                    return None
            except Exception:  # Redis away: fall back to Celery's redelivery
                log.exception("could not count a lost worker; the message is redelivered")
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _dead_letter(self, exc: BaseException) -> bool:
        """Count this death; at the limit, dead-letter the message and have its inputs failed."""
        app = self.task.app
        client = _main_redis(app.conf.broker_url)
        key = deaths_key(self.id)
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, DEATHS_TTL_SECONDS)
        deaths = int(pipe.execute()[0])
        if deaths < POISON_DEATHS:
            log.warning("a pool process died running this task; it is redelivered", task_id=self.id, deaths=deaths)
            return False
        body = self.body.decode("utf-8", "replace") if isinstance(self.body, bytes) else str(self.body)
        entry = {
            "task_id": self.id,
            "task": self.name,
            "deaths": deaths,
            "error": f"{type(exc).__name__}: {exc}"[:500],
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "body": body[:DEAD_LETTER_BODY_CHARS],
            "body_truncated": len(body) > DEAD_LETTER_BODY_CHARS,
        }
        inputs = carried(self.name, self.id, self.args, self.kwargs)
        requests = self.kwargs.get("requests") if isinstance(self.kwargs, dict) else None
        pipe = client.pipeline()
        pipe.lpush(DEAD_LETTER_KEY, json.dumps(entry))
        pipe.ltrim(DEAD_LETTER_KEY, 0, DEAD_LETTER_MAX - 1)
        pipe.execute()
        if self.name == BATCH_TASK and isinstance(requests, list) and 1 < len(requests) <= MAX_BATCH_REQUESTS:
            # Which request kills is unknown: each goes alone (same keys), and only it dies twice again.
            for request in requests:
                app.send_task(INGEST_TASK, kwargs={"request": request}, kwargsrepr="")
            log.error("batch killed its worker twice; its requests were sent one by one", task_id=self.id)
            return True
        message = f"processing this input killed a worker process {deaths} times; kept in {DEAD_LETTER_KEY}"
        for item in inputs:
            app.send_task(
                FAILURE_TASK,
                kwargs={
                    "key": item.key,
                    "summary": FileSummary.of(item.filename, b"").model_dump(),
                    "source": item.source,
                    "reason": WorkerLost.reason,
                    "message": message,
                    "reply_to": item.reply_to,
                },
                kwargsrepr="",
            )
        log.error("message dead-lettered", task_id=self.id, task=self.name, deaths=deaths, inputs=len(inputs))
        return True
