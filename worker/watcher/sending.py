"""Sending: the one path every producer's message takes to the broker, and the watcher's messages.

``send_task`` is the send path of both producers, the watcher and ``worker.client.Producer``:
one retry policy while the broker blips (``SEND_RETRY``).  ``chain_mode`` is the one decision
about ``SEEDWORKER_PIPELINE=chain``: the ingest task becomes its stage chain, the batch task
hands each request on, and the watcher sends no batches (there the batch task would only split
them again).

``Sender`` builds the watcher's messages from its claims: small files ready together travel in
one ``seedworker.ingest_batch`` message (each with its own key and reply), larger ones alone as
``seedworker.ingest``, and a file that cannot be read as ``seedworker.record_failure``.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from pydantic import ValidationError

from worker.errors import InputError, InvalidRequest, Superseded
from worker.logs import Throttle, get_logger
from worker.models import FileSummary, IngestRequest
from worker.names import BATCH_TASK, FAILURE_TASK, INGEST_TASK
from worker.outage import Outage
from worker.settings import Settings
from worker.watcher.claims import Claim, Claims
from worker.watcher.reading import Reader

log = get_logger("seedworker.watcher")

#: A batch message carries at most this much file content (larger files go alone).
BATCH_MAX_BYTES = 1024 * 1024
#: kombu's publish retry while the broker blips: 3 more tries, 0.2 s, 0.7 s, 1.2 s apart.  A
#: producer that still fails keeps its input (the watcher its claim, re-sent later).
SEND_RETRY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5}
#: Seconds between two looks for claims to re-send (``resend_stale``): a claim is re-sent at most
#: this long after its WATCH_RESEND_SECONDS, and a tick no longer walks every claim in flight.
RESEND_CHECK_SECONDS = 1.0


def chain_mode(settings: Settings) -> bool:
    """Whether a request runs as one task per stage (``SEEDWORKER_PIPELINE=chain``)."""
    return settings.pipeline == "chain"


def send_task(app: Celery, task: str, *, kwargs: dict[str, Any], task_id: str, argsrepr: str) -> None:
    """Send one message, retried by ``SEND_RETRY``; raises when the broker stays unreachable.
    Flower shows ``argsrepr`` (a name, a size, a hash) and never the body."""
    app.send_task(
        task, kwargs=kwargs, task_id=task_id, argsrepr=argsrepr, kwargsrepr="", retry=True, retry_policy=SEND_RETRY
    )


def batch_argsrepr(claims: list[Claim]) -> str:
    """What Flower shows (and searches) for a batch: every file by name, never a body; with
    sizes and hashes unless that grows past 8,000 characters."""
    full = ", ".join(str(c.summary) for c in claims)
    return f"{len(claims)} files: " + (full if len(full) <= 8000 else ", ".join(c.shown for c in claims))


def _request_kwargs(request: IngestRequest) -> dict[str, Any]:
    return {"request": request.model_dump(mode="json", exclude_none=True)}


class Sender:
    def __init__(
        self, settings: Settings, app: Celery, claims: Claims, reader: Reader, reply_key: str, broker: Outage
    ) -> None:
        self.settings = settings
        self.app = app
        self.claims = claims
        self.reader = reader
        self.reply_key = reply_key
        self.broker = broker
        self._throttle = Throttle(every=60.0)
        self._next_resend_check = 0.0

    def send_many(self, claims: list[Claim]) -> None:
        """Claims taken together: batched (inline pipeline), one message each otherwise."""
        if len(claims) <= 1 or chain_mode(self.settings):
            for claim in claims:
                self.send(claim)
            return
        batch: list[tuple[Claim, IngestRequest]] = []
        size = 0
        for claim in claims:
            try:
                data = self.reader.read(claim)
                request = self.request(claim, data)
            except InputError as exc:
                self.send_failure(claim, exc)
                continue
            claim.summary = FileSummary.of(claim.name, data)
            if len(data) > BATCH_MAX_BYTES // 4:
                self._enqueue(claim, INGEST_TASK, kwargs=_request_kwargs(request), argsrepr=str(claim.summary))
                continue
            if size + len(data) > BATCH_MAX_BYTES:
                self._enqueue_batch(batch)
                batch, size = [], 0
            batch.append((claim, request))
            size += len(data)
        self._enqueue_batch(batch)

    def send(self, claim: Claim) -> None:
        if claim.supersedes is not None:
            self._mark_superseded(claim)  # with every (re-)send: idempotent by its key
        try:
            data = self.reader.read(claim)
            request = self.request(claim, data)
        except InputError as exc:
            self.send_failure(claim, exc)
            return
        claim.summary = FileSummary.of(claim.name, data)
        self._enqueue(claim, INGEST_TASK, kwargs=_request_kwargs(request), argsrepr=str(claim.summary))

    def request(self, claim: Claim, data: bytes) -> IngestRequest:
        try:
            return IngestRequest.from_bytes(
                data,
                filename=claim.name,
                source="inbox",
                metadata={"path": claim.shown, **({"supersedes": claim.supersedes} if claim.supersedes else {})},
                folder_tags=claim.folders,
                idempotency_key=claim.key,
                reply_to=self.reply_key,
            )
        except ValidationError as exc:  # a name or folder the request model refuses
            raise InvalidRequest(f"'{claim.shown}' cannot be sent: {exc.errors()[0]['msg']}") from None

    def send_failure(self, claim: Claim, exc: InputError) -> None:
        claim.summary = FileSummary.of(claim.name, b"")
        kwargs = {
            "key": claim.key,
            "summary": claim.summary.model_dump(),
            "source": "inbox",
            "reason": exc.reason,
            "message": exc.message,
            "reply_to": self.reply_key,
        }
        self._enqueue(claim, FAILURE_TASK, kwargs=kwargs, argsrepr=f"{claim.name}: {exc.reason}")

    def _mark_superseded(self, claim: Claim) -> None:
        partial = claim.supersedes or {}
        exc = Superseded(
            f"'{claim.shown}' changed after it was read: {partial.get('status')} {partial.get('document_id')}"
            f" holds its first {partial.get('size')} bytes only; the final content is sent again as {claim.key}"
        )
        summary = FileSummary(filename=claim.name, size=partial.get("size") or 0, sha256=partial.get("sha256") or "")
        kwargs = {
            "key": f"{partial.get('key')}:superseded",
            "summary": summary.model_dump(),
            "source": "inbox",
            "reason": exc.reason,
            "message": exc.message,
        }
        self._enqueue(claim, FAILURE_TASK, kwargs=kwargs, argsrepr=f"{claim.name}: {exc.reason}")

    def _enqueue_batch(self, batch: list[tuple[Claim, IngestRequest]]) -> None:
        if len(batch) <= 1:
            for claim, request in batch:
                self._enqueue(claim, INGEST_TASK, kwargs=_request_kwargs(request), argsrepr=str(claim.summary))
            return
        claims = [claim for claim, _ in batch]
        requests = [_request_kwargs(r)["request"] for _, r in batch]
        task_id = f"batch-{claims[0].claim_id}-{int(time.time() * 1000)}"
        self._deliver(claims, BATCH_TASK, {"requests": requests}, task_id, batch_argsrepr(claims))

    def _enqueue(self, claim: Claim, task: str, *, kwargs: dict[str, Any], argsrepr: str) -> None:
        self._deliver([claim], task, kwargs, f"{claim.claim_id}-{int(time.time() * 1000)}", argsrepr)

    def _deliver(self, claims: list[Claim], task: str, kwargs: dict[str, Any], task_id: str, argsrepr: str) -> None:
        try:
            send_task(self.app, task, kwargs=kwargs, task_id=task_id, argsrepr=argsrepr)
        except Exception as exc:  # broker down: the claims stay on disk and are re-sent later
            for claim in claims:
                claim.sent_at = time.monotonic() - self.settings.watch_resend_seconds + 2.0
            self.broker.failed(str(exc), files=len(claims), first=claims[0].shown, will="resend")
            return
        now = time.monotonic()
        for claim in claims:
            claim.sent_at = now
        if len(claims) == 1:
            log.info("sent", file=claims[0].shown, key=claims[0].key, task=task)
        else:
            log.info("sent", files=len(claims), first=claims[0].shown, last=claims[-1].shown, task=task)

    # -- sending again -------------------------------------------------------------------------
    def resend_stale(self) -> None:
        """Claims with no reply for WATCH_RESEND_SECONDS: sent again, same key (looked for
        every ``RESEND_CHECK_SECONDS``)."""
        now = time.monotonic()
        if now < self._next_resend_check:
            return
        self._next_resend_check = now + RESEND_CHECK_SECONDS
        resend = self.settings.watch_resend_seconds
        for claim in [c for c in self.claims.all() if c.settling is None and now - c.sent_at > resend]:
            if (held := self._throttle("resend")) is not None:  # every claim, every 2 s, while the broker is down
                log.warning("no reply yet, resending", file=claim.shown, key=claim.key, repeated=held)
            self.send(claim)

    def resend_soon(self, after: float) -> None:
        """After an outage: every claim without a reply is sent again in ``after`` seconds."""
        due = time.monotonic() - self.settings.watch_resend_seconds + after
        waiting = self.claims.all()
        for claim in waiting:
            claim.sent_at = min(claim.sent_at, due)
        if waiting:
            log.info("resending after the outage", files=len(waiting), in_seconds=after)
