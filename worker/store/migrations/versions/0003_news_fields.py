"""Urgency, genre, pubstatus and embargo of news agency items; the outbox's not-before time.

``documents`` gains four nullable columns (ninjs/NewsML-G2 fields, NULL for every other
format and for documents stored before).  ``outbox.not_before`` holds an embargoed
document's ``document.stored`` event under ``SEEDWORKER_EMBARGO=hold`` until the embargo
lifts; the index ix_outbox_held (published_at, not_before) serves the "held" look-ups of the
publisher, status and metrics (unpublished rows with a time ahead: a short range).

Plain ``ADD COLUMN``s (no batch copy of ``documents``: that would change SQLite rowids and
break the FTS5 external-content index of 0002_fulltext).

Revision ID: 0003_news_fields
Revises: 0002_fulltext
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003_news_fields"
down_revision: str | None = "0002_fulltext"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Each step only when missing: a database made by ``create_all`` from the current models
    # is stamped at the baseline (worker/store/migrations/__init__.py) and already has them.
    _add_column("documents", sa.Column("urgency", sa.SmallInteger(), nullable=True))
    _add_column("documents", sa.Column("genre", sa.String(length=100), nullable=True))
    _add_column("documents", sa.Column("pubstatus", sa.String(length=20), nullable=True))
    _add_column("documents", sa.Column("embargoed_until", sa.DateTime(timezone=True), nullable=True))
    _add_column("outbox", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    if "ix_outbox_held" not in {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("outbox")}:
        op.create_index("ix_outbox_held", "outbox", ["published_at", "not_before"], unique=False)


def _add_column(table: str, column: sa.Column[Any]) -> None:
    if column.name not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}:
        op.add_column(table, column)


def downgrade() -> None:
    op.drop_index("ix_outbox_held", table_name="outbox")
    op.drop_column("outbox", "not_before")  # SQLite >= 3.35 drops a column in place
    for column in ("embargoed_until", "pubstatus", "genre", "urgency"):
        op.drop_column("documents", column)
