"""Versions of a story: update links on documents, and the write-thru (containment) index.

* ``documents.version`` (1 for a first version), ``documents.updates`` (the id of the version
  a row supersedes, indexed: the newest versions are the rows nothing ``updates``),
  ``documents.item_id`` / ``item_version`` / ``version_created`` (a ninjs ``uri`` or
  NewsML-G2 ``guid`` and the provider's version, indexed by id);
* ``containment_bands``: 3-row LSH bands over each document's MinHash signature, so a longer
  re-filing finds the shorter first version it contains (docs/dedup.md, "Updates").

Existing documents are version 1 of their own story and have no containment bands until
``seedworker dedup rebuild``.  Written to be re-runnable over a database that ``create_all``
already gave these columns (a legacy database is stamped at the baseline, then upgraded).

Revision ID: 0004_story_versions
Revises: 0003_news_fields
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004_story_versions"
down_revision: str | None = "0003_news_fields"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("version", "updates", "item_id", "item_version", "version_created")
INDEXES = (("ix_documents_updates", "updates"), ("ix_documents_item_id", "item_id"))


def _column(name: str) -> sa.Column[Any]:
    if name == "version":
        return sa.Column("version", sa.Integer(), server_default="1", nullable=False)
    if name == "updates":
        return sa.Column("updates", sa.String(length=40), nullable=True)
    if name == "item_id":
        return sa.Column("item_id", sa.String(length=300), nullable=True)
    if name == "item_version":
        return sa.Column("item_version", sa.Integer(), nullable=True)
    return sa.Column("version_created", sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    have = {c["name"] for c in insp.get_columns("documents")}
    for name in COLUMNS:
        if name not in have:
            op.add_column("documents", _column(name))
    indexes = {i["name"] for i in insp.get_indexes("documents")}
    for name, column_name in INDEXES:
        if name not in indexes:
            op.create_index(name, "documents", [column_name], unique=False)
    if not insp.has_table("containment_bands"):
        op.create_table(
            "containment_bands",
            sa.Column("band", sa.SmallInteger(), nullable=False),
            sa.Column("key", sa.BigInteger(), nullable=False),
            sa.Column("document_id", sa.String(length=40), nullable=False),
            sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("band", "key", "document_id"),
        )
        op.create_index("ix_containment_bands_document_id", "containment_bands", ["document_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_containment_bands_document_id", table_name="containment_bands")
    op.drop_table("containment_bands")
    for name, _ in INDEXES:
        op.drop_index(name, table_name="documents")
    for name in reversed(COLUMNS):
        # SQLite >= 3.35 drops a column in place (no table copy, so the FTS5 rowids stay).
        op.drop_column("documents", name)
