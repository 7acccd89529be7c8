"""Full-text search over documents.title and documents.text (hand-written: autogenerate
cannot express FTS5 virtual tables, triggers or expression indexes).

* SQLite: an FTS5 *external-content* table ``documents_fts`` over ``documents`` (keyed by
  the implicit rowid; the text is not stored twice), kept in step by three triggers, and
  rebuilt from the existing rows.  Caveat: ``documents`` has a text primary key, so its
  rowids may change on ``VACUUM`` or when a batch migration copies the table; run
  ``seedworker db upgrade`` after such a change is not enough -- rebuild the index with
  ``worker.store.search.rebuild_index`` (a future batch migration on ``documents`` must
  recreate the triggers and rebuild).
* PostgreSQL: a GIN expression index on ``to_tsvector('english', title || ' ' || text)``;
  ``worker.store.search`` queries with exactly the same expression so the index is used.

Revision ID: 0002_fulltext
Revises: 0001_baseline
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_fulltext"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Keep in sync with worker.store.search.PG_DOCUMENT_VECTOR.
PG_VECTOR = "to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || text)"

SQLITE_UP = [
    "CREATE VIRTUAL TABLE documents_fts USING fts5("
    "title, text, content='documents', content_rowid='rowid', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER documents_fts_ai AFTER INSERT ON documents BEGIN "
    "INSERT INTO documents_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text); END",
    "CREATE TRIGGER documents_fts_ad AFTER DELETE ON documents BEGIN "
    "INSERT INTO documents_fts(documents_fts, rowid, title, text) "
    "VALUES ('delete', old.rowid, old.title, old.text); END",
    "CREATE TRIGGER documents_fts_au AFTER UPDATE OF title, text ON documents BEGIN "
    "INSERT INTO documents_fts(documents_fts, rowid, title, text) "
    "VALUES ('delete', old.rowid, old.title, old.text); "
    "INSERT INTO documents_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text); END",
    "INSERT INTO documents_fts(documents_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS documents_fts_au",
    "DROP TRIGGER IF EXISTS documents_fts_ad",
    "DROP TRIGGER IF EXISTS documents_fts_ai",
    "DROP TABLE IF EXISTS documents_fts",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for sql in SQLITE_UP:
            op.execute(sql)
    elif dialect == "postgresql":
        op.execute(f"CREATE INDEX ix_documents_fts ON documents USING gin (({PG_VECTOR}))")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for sql in SQLITE_DOWN:
            op.execute(sql)
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_documents_fts")
