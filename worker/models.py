"""Pydantic models that cross a boundary: producer -> queue -> stages -> store -> events.

Everything here is JSON-serialisable (Celery runs with the JSON serializer only) and
rejects unknown fields, so a misspelt field from a producer is an error, not a silent drop.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JSONValue = Any


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestRequest(_Strict):
    """What a producer (the watcher, ``worker.client.submit`` or any program) sends.

    Exactly one of ``text`` or ``content_b64`` carries the document; the content travels in
    the message so workers never need to see the producer's disk.
    """

    text: str | None = None
    content_b64: str | None = None
    filename: str = Field(default="document.txt", min_length=1, max_length=255)
    source: str = Field(default="api", min_length=1, max_length=200)
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=100)
    folder_tags: list[str] = Field(default_factory=list, max_length=20)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    reply_to: str | None = Field(default=None, max_length=200)  # Redis list for the outcome

    @field_validator("filename")
    @classmethod
    def _no_path_or_controls(cls, value: str) -> str:
        if "/" in value or "\\" in value or "\x00" in value:
            raise ValueError("filename must be a bare name without path separators or NUL")
        return value

    @field_validator("tags", "folder_tags")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        cleaned = [tag.strip() for tag in value]
        if any(not tag or len(tag) > 100 for tag in cleaned):
            raise ValueError("tags must be 1 to 100 characters")
        return cleaned

    @field_validator("content_b64")
    @classmethod
    def _valid_base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"content_b64 is not valid base64: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _exactly_one_body(self) -> IngestRequest:
        if (self.text is None) == (self.content_b64 is None):
            raise ValueError("give exactly one of 'text' or 'content_b64'")
        return self

    def raw_bytes(self) -> bytes:
        if self.text is not None:
            return self.text.encode("utf-8")
        return base64.b64decode(self.content_b64 or "")

    @classmethod
    def from_bytes(cls, data: bytes, **fields: Any) -> IngestRequest:
        return cls(content_b64=base64.b64encode(data).decode("ascii"), **fields)


class FileSummary(_Strict):
    """The short, readable description of an input shown in Flower and in logs."""

    filename: str
    size: int
    sha256: str

    @classmethod
    def of(cls, filename: str, data: bytes) -> FileSummary:
        return cls(filename=filename, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.filename} ({self.size} B, sha256:{self.sha256[:12]})"


class Dateline(_Strict):
    """``WASHINGTON (AP) —``: the place and agency a wire story was filed from."""

    place: str | None = None
    country: str | None = None
    agency: str | None = None
    raw: str


class NormalisedDocument(_Strict):
    """The output of the normalise stage: one clean, typed document."""

    text: str  # display text: NFC, clean whitespace, header/dateline removed, quotes kept
    title: str | None = None
    date: dt.date | None = None
    date_raw: str | None = None
    dateline: Dateline | None = None
    author: str | None = None
    language: str = "und"  # ISO 639-1, or "und" when unknown or unsupported
    word_count: int = 0
    canonical_hash: str  # sha256 hex of the canonical (folded) text
    format: str = "text"  # text | header | markdown | json | jsonl | html
    encoding: str = "utf-8"
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    producer_tags: list[str] = Field(default_factory=list)  # tags found in the input itself
    warnings: list[str] = Field(default_factory=list)


TagKind = Literal["entity", "topic", "subject", "auto", "folder", "producer", "keyword"]
#: Where a tag came from, besides ``spacy:<model>``, ``rule:<name>``, ``auto:v<N>``, ``yake``:
#: ``provider`` marks subject codes the input itself carried (ninjs/NewsML-G2); like folder
#: and producer tags they are what the source said, and rules or a retag never replace them.
PROVIDER_SOURCE = "provider"


class Tag(_Strict):
    """One tag with where it came from, so ``tags explain`` can say why it was given."""

    kind: TagKind
    name: str  # canonical value: "Donald Trump", "politics", "ceasefire"
    label: str | None = None  # entity type (PERSON, ORG, GPE, LOC, NORP, ...)
    source: str  # "spacy:<model>", "rule:<tag>", "folder", "producer", "yake", ...
    score: float | None = None
    count: int = 1
    spans: list[tuple[int, int]] = Field(default_factory=list)  # offsets into document text
    matched: str | None = None  # the text that matched (a rule's span, an entity mention)
    country: str | None = None  # ISO country code for places
    # A term of a controlled vocabulary (kind "subject"): the scheme's URI and the term's
    # QCode, e.g. "http://cv.iptc.org/newscodes/mediatopic/" and "medtop:11000000".
    scheme: str | None = Field(default=None, max_length=200)
    code: str | None = Field(default=None, max_length=100)


class StageItem(_Strict):
    """One document inside a batch, as it moves through tag and deduplicate."""

    record: int | None = None  # 1-based line for JSON Lines inputs, None for one-document files
    document: NormalisedDocument
    tags: list[Tag] = Field(default_factory=list)


class RecordFailure(_Strict):
    record: int | None = None
    reason: str
    message: str
    details: dict[str, JSONValue] = Field(default_factory=dict)


class PipelineBatch(_Strict):
    """Everything one ingest request became; what travels between stage tasks in chain mode.

    The raw content travels once per batch (it is stored content-addressed with the
    documents), never once per item.
    """

    request: IngestRequest
    key: str
    summary: FileSummary
    items: list[StageItem] = Field(default_factory=list)
    failures: list[RecordFailure] = Field(default_factory=list)

    def item_key(self, record: int | None) -> str:
        return self.key if record is None else f"{self.key}#L{record}"


OutcomeStatus = Literal["stored", "duplicate", "failed"]


class Outcome(_Strict):
    """What happened to one input (or one JSON Lines record).  Also the task result."""

    status: OutcomeStatus
    key: str
    filename: str
    document_id: str | None = None
    duplicate_of: str | None = None
    duplicate_kind: Literal["exact", "near"] | None = None
    similarity: float | None = None
    reason: str | None = None
    message: str | None = None
    replayed: bool = False  # True when an earlier delivery already did the work

    def short(self) -> str:
        if self.status == "stored":
            return f"stored {self.document_id}"
        if self.status == "duplicate":
            return f"duplicate of {self.duplicate_of}"
        return f"failed: {self.reason}"


class IngestResult(_Strict):
    """The result of ``seedworker.ingest``: one outcome per document in the input."""

    filename: str
    outcomes: list[Outcome]

    @property
    def status(self) -> OutcomeStatus:
        """The file's fate: failed only if nothing in it could be used."""
        statuses = {o.status for o in self.outcomes}
        if statuses == {"failed"}:
            return "failed"
        return "stored" if "stored" in statuses else "duplicate"

    def short(self) -> str:
        if len(self.outcomes) == 1:
            return self.outcomes[0].short()
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
