"""Full-text search over stored documents: SQLite FTS5 or PostgreSQL text search.

The index is created by the migration ``0002_fulltext`` (an FTS5 external-content table
with triggers on SQLite, a GIN expression index on PostgreSQL).  The query language is the
web-search one on both backends: words are ANDed, ``"a phrase"``, ``OR`` between terms,
``-word`` excludes.  PostgreSQL parses it with ``websearch_to_tsquery``, which never
raises; for SQLite :func:`fts5_query` translates it into an FTS5 expression in which every
term is a quoted string, so no input (quotes, ``NEAR``, ``*``, ``:``, parentheses) can be
a syntax error.  Both use English stemming, so ``elections`` finds ``election``.

Filters: ``tags`` (every tag must be on the document: a name, case-insensitive, of any kind;
``kind:name`` for one kind, e.g. ``topic:politics``; or a subject's QCode such as
``medtop:11000000``) and
``since``/``until`` (inclusive) on the document's own date, or the day it was stored when
it has none.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from worker.errors import StoreUnavailable

# Keep in sync with the migration 0002_fulltext (the index is used only for this exact expression).
PG_DOCUMENT_VECTOR = "to_tsvector('english'::regconfig, coalesce(d.title, '') || ' ' || d.text)"
HIGHLIGHT = ("«", "»")
ELLIPSIS = " … "
MAX_QUERY_CHARS = 1000


@dataclass(frozen=True)
class SearchHit:
    id: str
    filename: str
    title: str | None
    date: dt.date | None
    created_at: dt.datetime
    score: float  # higher is better; comparable only within one result list
    snippet: str

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["date"] = self.date.isoformat() if self.date else None
        out["created_at"] = self.created_at.isoformat()
        return out


_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def parse_websearch(query: str) -> list[list[tuple[bool, str]]]:
    """A web-search query as a list (AND) of lists (OR) of ``(negated, phrase)`` terms.

    ``a "b c" OR d -e`` -> ``[[(F, a)], [(F, b c), (F, d)], [(T, e)]]``: like
    ``websearch_to_tsquery``, OR binds tighter than the implicit AND.
    """
    clauses: list[list[tuple[bool, str]]] = []
    pending_or = False
    for m in _TOKEN.finditer(query):
        if m.group(3) is not None:
            word = m.group(3)
            if word.upper() == "OR":
                pending_or = bool(clauses)
                continue
            negated = word.startswith("-")
            phrase = word.lstrip("-")
        else:
            negated = m.group(1) == "-"
            phrase = m.group(2)
        if not re.search(r"\w", phrase):
            continue
        term = (negated, " ".join(phrase.split()))
        if pending_or and clauses:
            clauses[-1].append(term)
        else:
            clauses.append([term])
        pending_or = False
    return clauses


def _quote(phrase: str) -> str:
    return '"' + phrase.replace('"', '""') + '"'


def fts5_query(query: str) -> str | None:
    """The FTS5 MATCH expression for a web-search query; None when nothing can match."""
    positive: list[str] = []
    negative: list[str] = []
    for clause in parse_websearch(query):
        if len(clause) == 1:
            negated, phrase = clause[0]
            (negative if negated else positive).append(_quote(phrase))
            continue
        alternatives = [_quote(p) for negated, p in clause if not negated]
        if alternatives:
            positive.append("(" + " OR ".join(alternatives) + ")")
    if not positive:
        return None  # only exclusions (or nothing): match nothing rather than everything
    expr = " AND ".join(positive)
    for neg in negative:
        expr = f"({expr}) NOT {neg}"
    return expr


def _filters(dialect: str, tags: list[str], since: dt.date | None, until: dt.date | None) -> tuple[str, dict[str, Any]]:
    sql: list[str] = []
    params: dict[str, Any] = {}
    day = "coalesce(d.date, date(d.created_at))" if dialect == "sqlite" else "coalesce(d.date, d.created_at::date)"
    if since is not None:
        sql.append(f"{day} >= :since")
        params["since"] = since.isoformat() if dialect == "sqlite" else since
    if until is not None:
        sql.append(f"{day} <= :until")
        params["until"] = until.isoformat() if dialect == "sqlite" else until
    for i, tag in enumerate(tags):
        sql.append(f"EXISTS (SELECT 1 FROM tags t WHERE t.document_id = d.id AND {_tag_match(i, tag, params)})")  # noqa: S608
    return "".join(f" AND {s}" for s in sql), params


#: ``--tag KIND:NAME`` narrows a name to one kind of tag (``topic:politics`` is the user's
#: label, learned or given; ``subject:politics`` the shipped IPTC rule's).
TAG_KINDS = frozenset({"entity", "topic", "subject", "folder", "producer", "keyword"})


def _tag_match(i: int, tag: str, params: dict[str, Any]) -> str:
    """One tag filter: a name (any kind), ``kind:name``, or a subject's QCode (``medtop:11000000``)."""
    params[f"tag{i}"] = tag
    kind, sep, name = tag.partition(":")
    if sep and kind.lower() in TAG_KINDS and name:
        params[f"kind{i}"], params[f"name{i}"] = kind.lower(), name
        return f"t.kind = :kind{i} AND lower(t.name) = lower(:name{i})"
    if sep and name:  # a QCode, or a name with a colon in it
        return f"(t.code = :tag{i} OR lower(t.name) = lower(:tag{i}))"
    return f"lower(t.name) = lower(:tag{i})"


def _sqlite(conn: Connection, query: str, where: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    match = fts5_query(query)
    if match is None:
        return []
    open_, close = HIGHLIGHT
    sql = f"""
        SELECT d.id, d.filename, d.title, d.date, d.created_at,
               -bm25(documents_fts, 5.0, 1.0) AS score,
               snippet(documents_fts, -1, :open, :close, :ellipsis, 24) AS snippet
        FROM documents_fts JOIN documents d ON d.rowid = documents_fts.rowid
        WHERE documents_fts MATCH :match{where}
        ORDER BY bm25(documents_fts, 5.0, 1.0), d.created_at DESC
        LIMIT :limit
    """  # noqa: S608 - `where` is built from fixed fragments; values are bound
    bound = {**params, "match": match, "limit": limit, "open": open_, "close": close, "ellipsis": ELLIPSIS}
    return [dict(r._mapping) for r in conn.execute(text(sql), bound)]


def _postgresql(conn: Connection, query: str, where: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    open_, close = HIGHLIGHT
    options = (
        f'StartSel={open_}, StopSel={close}, MaxWords=35, MinWords=12, MaxFragments=2, FragmentDelimiter="{ELLIPSIS}"'
    )
    # Rank and limit first; ts_headline (costly: it re-parses the text) only for the page.
    sql = f"""
        WITH q AS (SELECT websearch_to_tsquery('english'::regconfig, :query) AS q),
        hits AS (
            SELECT d.id, ts_rank_cd({PG_DOCUMENT_VECTOR}, q.q) AS score
            FROM documents d, q
            WHERE {PG_DOCUMENT_VECTOR} @@ q.q{where}
            ORDER BY score DESC, d.created_at DESC
            LIMIT :limit
        )
        SELECT d.id, d.filename, d.title, d.date, d.created_at, hits.score,
               ts_headline('english'::regconfig, coalesce(d.title, '') || ' ' || d.text, q.q, :options) AS snippet
        FROM hits JOIN documents d ON d.id = hits.id, q
        ORDER BY hits.score DESC, d.created_at DESC
    """  # noqa: S608 - `where` is built from fixed fragments; values are bound
    return [
        dict(r._mapping)
        for r in conn.execute(text(sql), {**params, "query": query, "limit": limit, "options": options})
    ]


def search_documents(
    engine: Engine,
    query: str,
    *,
    tags: list[str] | tuple[str, ...] = (),
    since: dt.date | None = None,
    until: dt.date | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """Documents matching ``query``, best first, each with a highlighted snippet."""
    query = query.replace("\x00", " ")[:MAX_QUERY_CHARS]
    limit = max(1, min(int(limit), 1000))
    from sqlalchemy.exc import OperationalError

    dialect = engine.dialect.name
    where, params = _filters(dialect, list(tags), since, until)
    try:
        with engine.connect() as conn:
            if dialect == "sqlite":
                rows = _sqlite(conn, query, where, params, limit)
            elif dialect == "postgresql":
                rows = _postgresql(conn, query, where, params, limit)
            else:
                raise NotImplementedError(f"full-text search is not available on {dialect}")
    except OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc
    return [_hit(r) for r in rows]


def _hit(row: dict[str, Any]) -> SearchHit:
    date = row["date"]
    if isinstance(date, str):  # raw SQL on SQLite returns the stored text
        date = dt.date.fromisoformat(date)
    created = row["created_at"]
    if isinstance(created, str):
        created = dt.datetime.fromisoformat(created)
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return SearchHit(
        id=row["id"],
        filename=row["filename"],
        title=row["title"],
        date=date,
        created_at=created,
        score=round(float(row["score"] or 0.0), 6),
        snippet=" ".join(str(row["snippet"] or "").split()),
    )


def rebuild_index(engine: Engine) -> None:
    """Re-index every document (SQLite, e.g. after ``VACUUM`` renumbered rowids)."""
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL's expression index is maintained by the database itself
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO documents_fts(documents_fts) VALUES ('rebuild')")


def print_hits(hits: list[SearchHit], *, as_json: bool) -> None:
    """``seedworker docs search`` output: JSON lines, or a table with the snippets."""
    import json

    if as_json:
        for hit in hits:
            print(json.dumps(hit.as_json(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("id", "file", "date", "score", "snippet", show_lines=True)
    for hit in hits:
        snippet = Text()
        for i, part in enumerate(re.split(f"[{HIGHLIGHT[0]}{HIGHLIGHT[1]}]", hit.snippet)):
            snippet.append(part, style="bold yellow" if i % 2 else "")
        table.add_row(hit.id, Text(hit.filename), str(hit.date or ""), f"{hit.score:.3f}", snippet)  # no markup
    console = Console()
    console.print(table)
    if not hits:
        console.print("no matches")
