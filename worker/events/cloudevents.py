"""CloudEvents 1.0 (structured JSON) envelopes and the typed ``data`` of each event type.

Event ids are derived from the ingestion key and the event type (UUIDv5), so the same
outcome always carries the same id however often it is retried or republished: consumers
drop repeats by ``id``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from worker.models import Tag

TYPE_PREFIX = "org.seedworker."
#: Major version of the published event schemas (``worker/events/schemas/*.json``).  Bump it
#: for any change that would break a consumer (a field removed, renamed, retyped, made
#: required or optional); adding an optional field is not one.  See docs/events.md.
#: v2 (December 2026): ``document.stored`` lost ``duplicate_of``, which was never set (a stored
#: document is never a duplicate: duplicates are ``document.duplicate`` events).
SCHEMA_VERSION = 2
_NAMESPACE = uuid.UUID("6f0d3d8e-4a52-5b7c-9a56-2f7e1c1b5e10")

EventName = Literal[
    "document.stored",
    "document.duplicate",
    "document.failed",
    "document.retagged",
    "document.deleted",
    "document.updated",
]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TagData(_Data):
    kind: str
    name: str
    label: str | None = None
    country: str | None = None
    scheme: str | None = None  # subjects: the vocabulary's URI (http://cv.iptc.org/newscodes/mediatopic/)
    code: str | None = None  # subjects: the term's QCode (medtop:11000000)
    source: str | None = None  # what gave it: folder, producer, provider, rule:<name>, auto:v<N>, spacy:<model>, yake

    @classmethod
    def of(cls, tag: Tag) -> TagData:
        return cls(
            kind=tag.kind,
            name=tag.name,
            label=tag.label,
            country=tag.country,
            scheme=tag.scheme,
            code=tag.code,
            source=tag.source,
        )


class DocumentStoredData(_Data):
    id: str
    filename: str
    source: str
    title: str | None
    date: dt.date | None
    dateline_place: str | None
    dateline_country: str | None
    agency: str | None
    author: str | None
    language: str
    word_count: int
    canonical_hash: str
    raw_sha256: str
    tags: list[TagData]
    story_id: str | None = None  # near-duplicate cluster: a new document starts its own story
    # A news agency item's own fields (ninjs, NewsML-G2); None for other formats.
    urgency: int | None = None  # IPTC urgency, 1 (most urgent) to 9
    genre: str | None = None  # QCode of the first genre ("genre:Current"), else its name
    pubstatus: str | None = None  # usable | withheld | canceled
    # The provider's embargo: not to be published before this time (UTC).  Under
    # SEEDWORKER_EMBARGO=hold the event itself reaches the stream only once it has passed.
    embargoed_until: dt.datetime | None = None


class DocumentDuplicateData(_Data):
    id: str | None  # the thin duplicate record's id (None under policy ``drop``)
    filename: str
    source: str
    duplicate_of: str
    kind: Literal["exact", "near"]
    similarity: float
    raw_sha256: str
    story_id: str | None = None  # the canonical document's story: group events by it
    # A versioned item (ninjs uri, NewsML-G2 guid) repeated: ``same_version`` (already stored) or
    # ``older_version`` (a late older version; ``duplicate_of`` is the newer one it must not replace).
    reason: Literal["same_version", "older_version"] | None = None
    item_id: str | None = None
    item_version: int | None = None


class DocumentUpdatedData(DocumentStoredData):
    """A new version of a stored story: stored as its own document (every field of
    ``document.stored``), in the story of the version it updates (docs/dedup.md, "Updates")."""

    updates: str  # the id of the previous version, which stays stored
    version: int  # this version's number in its story (the first version is 1)
    previous_version: int  # the number of the version it updates
    match: Literal["item_version", "containment"]  # a newer version of the same item id, or a write-thru
    containment: float | None = None  # write-thrus: the share of the previous version inside this one
    item_id: str | None = None  # the provider's item id (ninjs uri, NewsML-G2 guid)
    item_version: int | None = None  # the provider's version number


class DocumentFailedData(_Data):
    id: str
    filename: str
    source: str
    reason: str
    message: str
    details: dict[str, object] = Field(default_factory=dict)
    raw_sha256: str | None = None


class DocumentRetaggedData(_Data):
    """Tags of a stored document changed after the taxonomy or the learned model changed."""

    id: str
    added: list[TagData]
    removed: list[TagData]
    run_id: str  # the retag run: one event per document per run, repeats share the event id
    reason: str


class DocumentDeletedData(_Data):
    """A stored document was deleted (``DocumentStore.delete``) with its tags, index rows and
    the original file when nothing else needed it."""

    id: str
    canonical_hash: str
    reason: str
    duplicates: list[str] = Field(default_factory=list)  # thin duplicate records deleted with it
    raw_sha256: str | None = None  # its original file (removed unless something else references it)


class CloudEvent(_Data):
    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    subject: str
    time: dt.datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None  # URI of the schema ``data`` adheres to, see dataschema_uri()
    data: dict[str, object]


#: The typed ``data`` of every event type: the source of the shipped JSON Schemas.
DATA_MODELS: dict[str, type[_Data]] = {
    "document.stored": DocumentStoredData,
    "document.duplicate": DocumentDuplicateData,
    "document.failed": DocumentFailedData,
    "document.retagged": DocumentRetaggedData,
    "document.deleted": DocumentDeletedData,
    "document.updated": DocumentUpdatedData,
}


def envelope_schema_uri(name: str, version: int = SCHEMA_VERSION) -> str:
    """``$id`` of the schema of a whole event (envelope and data) of one type."""
    return f"urn:seedworker:schema:events:v{version}:{name}"


def dataschema_uri(name: str, version: int = SCHEMA_VERSION) -> str:
    """The CloudEvents ``dataschema`` of an event type: the schema that ``data`` adheres to (as
    CloudEvents defines the attribute), with the major version; the ``$id`` of ``<type>.data.json``."""
    return f"{envelope_schema_uri(name, version)}.data"


def event_id(key: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{key}\x1f{name}"))


def make_event(name: EventName, *, key: str, subject: str, source: str, data: _Data) -> CloudEvent:
    return CloudEvent(
        id=event_id(key, name),
        source=source,
        type=TYPE_PREFIX + name,
        subject=subject,
        time=dt.datetime.now(dt.UTC),
        dataschema=dataschema_uri(name),
        data=data.model_dump(mode="json"),
    )
