"""Send documents to seedworker from your own programs.

    from pathlib import Path
    from worker.client import submit
    receipt = submit(Path("article.txt"), tags=["politics"])        # a file: fire and forget
    result = submit(b"raw bytes", filename="a.txt", wait=True)      # bytes: wait for the outcome
    submit("The text itself.", filename="note.txt")                 # a str is the text, not a path

It talks to the instance the ``seedworker`` command would find from the program's working
directory (``SEEDWORKER_DATA_DIR``, a ``seedworker.toml`` above it, or the per-user default;
docs/cli.md), or to ``SEEDWORKER_BROKER_URL``.

Requests are validated before they are sent, so a bad request fails here with a pydantic
``ValidationError`` (wrapped in ``InvalidRequest``), not later in a worker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker.app import create_app
from worker.broker import connect, resolve_broker_url
from worker.errors import InvalidRequest
from worker.models import FileSummary, IngestRequest, IngestResult, Reply
from worker.names import INGEST_TASK, reply_key
from worker.settings import Settings, load_settings
from worker.watcher.sending import send_task


@dataclass(frozen=True)
class Receipt:
    task_id: str
    key: str
    summary: FileSummary
    reply_to: str | None


class Producer:
    """One connection to the broker for many submissions."""

    def __init__(self, settings: Settings | None = None, broker_url: str | None = None) -> None:
        self.settings = settings or load_settings()
        url = broker_url or resolve_broker_url(
            self.settings.broker_url, self.settings.redis_dir, self.settings.redis_appendfsync, start=False
        )
        self.app = create_app(self.settings, url)
        self.redis = connect(url)
        self.reply_to = reply_key(f"client:{uuid.uuid4().hex}")

    def build_request(
        self,
        document: str | bytes | Path,
        *,
        filename: str | None = None,
        source: str = "api",
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
    ) -> IngestRequest:
        fields: dict[str, Any] = {
            "source": source,
            "metadata": metadata or {},
            "tags": tags or [],
            # A key per submission: redelivery is idempotent, a second submit is a duplicate.
            "idempotency_key": idempotency_key or f"client:{uuid.uuid4().hex}",
            "reply_to": self.reply_to if wait else None,
        }
        try:
            if isinstance(document, Path):
                return IngestRequest.from_bytes(document.read_bytes(), filename=filename or document.name, **fields)
            if isinstance(document, bytes):
                return IngestRequest.from_bytes(document, filename=filename or "document.txt", **fields)
            return IngestRequest(text=document, filename=filename or "document.txt", **fields)
        except ValidationError as exc:
            raise InvalidRequest(f"invalid ingest request: {exc}") from exc

    def send(self, request: IngestRequest) -> Receipt:
        summary = FileSummary.of(request.filename, request.raw_bytes())
        task_id = uuid.uuid4().hex
        send_task(
            self.app,
            INGEST_TASK,
            kwargs={"request": request.model_dump(mode="json", exclude_none=True)},
            task_id=task_id,
            argsrepr=str(summary),
        )
        return Receipt(task_id=task_id, key=request.idempotency_key or "", summary=summary, reply_to=request.reply_to)

    def wait(self, receipts: list[Receipt], timeout: float = 60.0) -> dict[str, IngestResult]:
        """Outcomes for the given receipts, keyed by idempotency key; TimeoutError if they are
        late (no worker running, or one still busy)."""
        import time

        wanted = {r.key for r in receipts}
        results: dict[str, IngestResult] = {}
        deadline = time.monotonic() + timeout
        while wanted - results.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(wanted - results.keys())
                raise TimeoutError(f"no outcome within {timeout:g}s for {len(missing)} document(s) ({missing[0]}…)")
            item = self.redis.brpop([self.reply_to], timeout=max(1, int(min(left, 5))))
            if item is None:
                continue
            reply = Reply.model_validate_json(item[1])
            for key, outcomes in reply.by_request().items():
                results[key] = IngestResult(filename=reply.filename, outcomes=outcomes)
        return results

    def close(self) -> None:
        self.redis.close()


def submit(
    document: str | bytes | Path,
    *,
    wait: bool = False,
    timeout: float = 60.0,
    producer: Producer | None = None,
    **fields: Any,
) -> Receipt | IngestResult:
    """Submit one document: a ``Path`` is read, ``bytes`` are the file's content, a ``str`` is
    the text itself.  With ``wait=True`` return its outcome (TimeoutError after ``timeout``)."""
    own = producer is None
    prod = producer or Producer()
    try:
        receipt = prod.send(prod.build_request(document, wait=wait, **fields))
        if not wait:
            return receipt
        return prod.wait([receipt], timeout)[receipt.key]
    finally:
        if own:
            prod.close()
