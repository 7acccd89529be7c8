"""Pydantic models that cross a boundary: producer -> queue -> stages -> store -> events.

Everything here is JSON-serialisable (Celery runs with the JSON serializer only) and
rejects unknown fields, so a misspelt field from a producer is an error, not a silent drop.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from worker.names import REPLY_PREFIX

JSONValue = Any

# -- what one request may carry (checked by the model, and in the worker's main process before a
#    message is handed to a pool process: see ``message_bounds`` and tasks/base.py) ---------------
#: Containers nested inside ``metadata`` (``{"a": [1]}`` is 2).  A few hundred levels made the
#: worker's main process die pickling the message for the pool (RecursionError).
MAX_METADATA_DEPTH = 16
#: ``metadata`` as JSON text, in characters.
MAX_METADATA_CHARS = 64 * 1024
#: Requests in one ``seedworker.ingest_batch`` message.
MAX_BATCH_REQUESTS = 500
#: Containers nested in a whole message (args, kwargs, every request, its metadata).
MAX_MESSAGE_DEPTH = MAX_METADATA_DEPTH + 8
#: Idempotency keys: letters, digits and ``_ . : @ / + = -`` (no ``#``: ``#L<n>`` marks a record).
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:@/+=-]{1,200}")
#: Reply lists: under the project's prefix, a name of safe characters.
REPLY_PATTERN = re.compile(re.escape(REPLY_PREFIX) + r"[A-Za-z0-9_.:@/+=-]{1,150}")
#: Set by the worker's main process on a request it refused before the pool (too deep, too big,
#: undecodable): the model turns it into a validation error, so the refusal is recorded as an
#: ``invalid_request`` outcome like any other.
REFUSED_FIELD = "__refused__"


def _has_bad_chars(value: str, *, controls: bool) -> str | None:
    """Why ``value`` cannot travel to the database and the event stream, or None."""
    if "\x00" in value:
        return "NUL"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (not valid Unicode)"
    if controls and any(unicodedata.category(ch) == "Cc" for ch in value):
        return "control characters"
    return None


def _clean(value: str, field: str, *, controls: bool = True) -> str:
    bad = _has_bad_chars(value, controls=controls)
    if bad:
        raise ValueError(f"{field} must not contain {bad}")
    return value


def json_bounds(value: Any, *, max_depth: int, max_chars: int | None = None, strings: bool = True) -> str | None:
    """Why a decoded JSON value is out of bounds (too deep, too big, bad strings), or None.

    Iterative, so a hostile nesting cannot exhaust the stack of the process checking it; the
    size is estimated as the characters of keys and strings plus a few per value, and the
    walk stops as soon as a bound is passed.  ``strings``: also refuse NUL and lone surrogates.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    chars = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return f"nests deeper than {max_depth} levels"
            children = item.items() if isinstance(item, dict) else ((None, v) for v in item)
            for key, child in children:
                if key is not None:
                    if not isinstance(key, str):
                        return "has a key that is not a string"
                    chars += len(key) + 3
                    bad = _has_bad_chars(key, controls=False) if strings else None
                    if bad:
                        return f"has a key with {bad}"
                stack.append((child, depth + 1))
        elif isinstance(item, str):
            chars += len(item) + 2
            bad = _has_bad_chars(item, controls=False) if strings else None
            if bad:
                return f"has a string with {bad}"
        else:
            chars += 8
        if max_chars is not None and chars > max_chars:
            return f"is larger than {max_chars} characters as JSON"
    return None


def printable(value: Any, limit: int, default: str) -> str:
    """A value from an invalid request made safe to record: text, valid UTF-8, no NUL or control
    characters, at most ``limit`` characters (``default`` if nothing is left)."""
    if not isinstance(value, str):
        return default
    text = value.encode("utf-8", "replace").decode("utf-8")
    text = "".join(ch if unicodedata.category(ch) != "Cc" else " " for ch in text).strip()
    return text[:limit] or default


def usable_key(value: Any) -> str | None:
    """A producer's idempotency key when it is one the model accepts, else None."""
    return value if isinstance(value, str) and KEY_PATTERN.fullmatch(value) else None


def usable_reply_to(value: Any) -> str | None:
    """A reply list the worker may push to (under the project's prefix), else None."""
    return value if isinstance(value, str) and REPLY_PATTERN.fullmatch(value) else None


def record_key(key: str, record: int | None) -> str:
    """The outcome key of one JSON Lines record (``<key>#L<line>``), or the key itself."""
    return key if record is None else f"{key}#L{record}"


def split_record_key(key: str) -> tuple[str, int | None]:
    """``claim:x#L12`` -> (``claim:x``, 12); ``claim:x`` -> (``claim:x``, None)."""
    base, sep, line = key.partition("#L")
    return base, (int(line) if sep and line.isdigit() else None)


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

    @model_validator(mode="before")
    @classmethod
    def _not_refused(cls, data: Any) -> Any:
        if isinstance(data, dict) and REFUSED_FIELD in data:
            raise ValueError(f"refused before processing: {printable(data[REFUSED_FIELD], 500, 'out of bounds')}")
        return data

    @field_validator("filename")
    @classmethod
    def _no_path_or_controls(cls, value: str) -> str:
        if "/" in value or "\\" in value or "\x00" in value:
            raise ValueError("filename must be a bare name without path separators or NUL")
        return _clean(value, "filename")

    @field_validator("source")
    @classmethod
    def _printable_source(cls, value: str) -> str:
        return _clean(value, "source")

    @field_validator("text")
    @classmethod
    def _valid_text(cls, value: str | None) -> str | None:
        if value is not None:  # NUL in text is the normaliser's "binary", not the model's business
            _clean(value.replace("\x00", ""), "text", controls=False)
        return value

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, JSONValue]) -> dict[str, JSONValue]:
        problem = json_bounds(value, max_depth=MAX_METADATA_DEPTH, max_chars=MAX_METADATA_CHARS)
        if problem:
            raise ValueError(f"metadata {problem}")
        return value

    @field_validator("idempotency_key")
    @classmethod
    def _key_charset(cls, value: str | None) -> str | None:
        if value is not None and not KEY_PATTERN.fullmatch(value):
            raise ValueError("idempotency_key must be 1 to 200 of A-Z a-z 0-9 _ . : @ / + = -")
        return value

    @field_validator("reply_to")
    @classmethod
    def _own_reply_list(cls, value: str | None) -> str | None:
        if value is not None and not REPLY_PATTERN.fullmatch(value):
            raise ValueError(f"reply_to must name a list under {REPLY_PREFIX!r} (A-Z a-z 0-9 _ . : @ / + = -)")
        return value

    @field_validator("tags", "folder_tags")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        cleaned = [_clean(tag, "tags").strip() for tag in value]
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
    # What a news agency's item says about itself (ninjs, NewsML-G2); None for other formats.
    urgency: int | None = Field(default=None, ge=1, le=9)  # IPTC urgency: 1 most urgent, 9 least
    genre: str | None = Field(default=None, max_length=100)  # QCode ("genre:Current"), else name
    pubstatus: str | None = Field(default=None, max_length=20)  # usable | withheld | canceled
    embargoed_until: dt.datetime | None = None  # aware (UTC): not to be published before

    @field_validator("embargoed_until")
    @classmethod
    def _aware_embargo(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("embargoed_until must carry its UTC offset")
        return value.astimezone(dt.UTC) if value is not None else None

    # Versioned items (ninjs ``uri``, NewsML-G2 ``guid``): the provider's id, version number and
    # version time; a newer version of a stored item is stored as its update (docs/dedup.md).
    item_id: str | None = Field(default=None, max_length=300)
    item_version: int | None = None
    version_created: dt.datetime | None = None


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
        return record_key(self.key, record)


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
    updates: str | None = None  # stored as a new version of this document (document.updated)

    def short(self) -> str:
        if self.status == "stored":
            return f"stored {self.document_id}" + (f" (updates {self.updates})" if self.updates else "")
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


class Reply(IngestResult):
    """What a worker pushes to a producer's ``reply_to`` list after its commit (JSON): the
    outcomes of one file, or of the files of one batch that named this list.  Read by the
    watcher and by ``worker.client``; ``key`` of each outcome is the request's idempotency key,
    with ``#L<line>`` for a JSON Lines record (``split_record_key``)."""

    def by_request(self) -> dict[str, list[Outcome]]:
        """Outcomes grouped by the idempotency key of the request they belong to."""
        grouped: dict[str, list[Outcome]] = {}
        for outcome in self.outcomes:
            grouped.setdefault(split_record_key(outcome.key)[0], []).append(outcome)
        return grouped
