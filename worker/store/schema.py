"""SQLAlchemy 2 tables: documents, their tags, duplicates, failures, original bytes, outbox.

The same models serve SQLite (default) and PostgreSQL.  Uniqueness that the pipeline relies
on is enforced here, not in Python: one document per canonical hash, one outcome per
ingestion key, one outbox row per event id.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from worker.models import Tag

#: The newest migration (``worker/store/migrations/versions``), known without importing
#: Alembic: processes that find the database at this revision never load it
#: (``worker.store.schema_check.ensure_schema``).  A unit test keeps it equal to Alembic's head.
SCHEMA_REVISION = "0004_story_versions"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def table_of(model: type[Base]) -> Table:
    """The model's Core table, for the write path's prebuilt statements."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


def story_for(document_id: str) -> str:
    """A new document starts its own story, named after it."""
    return "story_" + document_id.split("_", 1)[-1]


def tag_values(tag: Tag) -> dict[str, Any]:
    """A tag's columns (all but its id and document), as the ORM row and Core inserts take them."""
    return {
        "kind": tag.kind,
        "name": tag.name,
        "label": tag.label,
        "source": tag.source,
        "score": tag.score,
        "count": tag.count,
        "spans": [list(sp) for sp in tag.spans],
        "matched": tag.matched,
        "country": tag.country,
        "scheme": tag.scheme,
        "code": tag.code,
    }


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Blob(Base):
    """Original bytes, content-addressed: the same file dropped twice is kept once."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Document(Base):
    __tablename__ = "documents"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    canonical_hash: Mapped[str] = mapped_column(String(64), unique=True)
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    ingest_key: Mapped[str] = mapped_column(String(240))
    filename: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(20))
    encoding: Mapped[str] = mapped_column(String(40))
    title: Mapped[str | None] = mapped_column(Text)
    date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    date_raw: Mapped[str | None] = mapped_column(String(200))
    place: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(100))
    agency: Mapped[str | None] = mapped_column(String(100))
    dateline_raw: Mapped[str | None] = mapped_column(String(300))
    author: Mapped[str | None] = mapped_column(String(300))
    language: Mapped[str] = mapped_column(String(8))
    word_count: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # Near-duplicate clustering (worker/store/near_index.py): the story this document heads,
    # and its MinHash signature (uint32 little endian per permutation).
    story_id: Mapped[str | None] = mapped_column(String(40), index=True)
    minhash: Mapped[bytes | None] = mapped_column(LargeBinary)
    # What a news agency's item said about itself (ninjs, NewsML-G2; migration 0003_news_fields).
    urgency: Mapped[int | None] = mapped_column(SmallInteger)
    genre: Mapped[str | None] = mapped_column(String(100))
    pubstatus: Mapped[str | None] = mapped_column(String(20))
    embargoed_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Versions of a story (worker/store/updates.py, docs/dedup.md "Updates"): every version is
    # its own row in the story of the first; ``updates`` names the version it supersedes (the
    # newest versions are those no row ``updates``); ``version`` counts from 1 in the story.
    # ``item_*``: the provider's own id and version (ninjs ``uri``, NewsML-G2 ``guid``).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updates: Mapped[str | None] = mapped_column(String(40), index=True)
    item_id: Mapped[str | None] = mapped_column(String(300), index=True)
    item_version: Mapped[int | None] = mapped_column(Integer)
    version_created: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    tags: Mapped[list[TagRow]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="TagRow.id"
    )


class TagRow(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(300))
    label: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(200))
    score: Mapped[float | None] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer, default=1)
    spans: Mapped[list[Any]] = mapped_column(JSON, default=list)
    matched: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(8))
    scheme: Mapped[str | None] = mapped_column(String(200))  # subjects: the vocabulary's URI
    code: Mapped[str | None] = mapped_column(String(100), index=True)  # subjects: the QCode

    document: Mapped[Document] = relationship(back_populates="tags")

    __table_args__ = (Index("ix_tags_kind_name", "kind", "name"),)


class Duplicate(Base):
    """A thin record of an input that duplicated a stored document (policy ``link``)."""

    __tablename__ = "duplicates"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ingest_key: Mapped[str] = mapped_column(String(240))
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    filename: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    similarity: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    story_id: Mapped[str | None] = mapped_column(String(40), index=True)


class MinhashBand(Base):
    """The shared near-duplicate index: one row per LSH band of each stored document."""

    __tablename__ = "minhash_bands"
    band: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ContainmentBand(Base):
    """The write-thru index: one row per containment band (3-row LSH bands over the same
    MinHash signature, worker/pipeline/containment.py) of each stored document."""

    __tablename__ = "containment_bands"
    band: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Failure(Base):
    __tablename__ = "failures"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    ingest_key: Mapped[str] = mapped_column(String(240))
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    filename: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(40), index=True)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Ingestion(Base):
    """One row per ingestion key: what makes a redelivered message a no-op."""

    __tablename__ = "ingestions"
    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxRow(Base):
    """An event written in the same transaction as the change it describes."""

    __tablename__ = "outbox"
    seq: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Not published before this time (an embargoed document under SEEDWORKER_EMBARGO=hold);
    # NULL for every other event.  The publisher also holds back later events of the same
    # subject behind it (docs/events.md, "Embargoed events").
    not_before: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_outbox_unpublished", "published_at", "seq"),
        Index("ix_outbox_held", "published_at", "not_before"),  # held rows: NULL, then a time ahead
    )


class WebhookDelivery(Base):
    """One event for one webhook endpoint: written before the delivery task is enqueued."""

    __tablename__ = "webhook_deliveries"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(300), primary_key=True)  # the endpoint's name or URL
    event_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), index=True)  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TagModel(Base):
    """A trained ``auto`` topic classifier: its parameters as JSON plus little-endian float32
    arrays (never pickle), so every worker on every machine loads the newest from the database."""

    __tablename__ = "tag_models"
    version: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # shapes, vectorizer, dtype
    arrays: Mapped[bytes] = mapped_column(LargeBinary)  # idf, coef, intercept
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trained_on: Mapped[int] = mapped_column(Integer, default=0)
