"""``seedworker docs``: stored documents (list, show, search, delete)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import click

from worker.cli.context import CliContext, Failure

if TYPE_CHECKING:
    from worker.store.repository import DocumentStore


@click.group()
def docs() -> None:
    """Stored documents."""


@docs.command("list")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--all-versions", is_flag=True, help="Also the earlier versions of updated stories.")
@click.pass_obj
def docs_list(obj: CliContext, limit: int, as_json: bool, all_versions: bool) -> None:
    """The newest documents (the newest version of each story; --all-versions for every one)."""
    rows = obj.store().list_documents(limit, newest_versions=not all_versions)
    if as_json:
        for d in rows:
            click.echo(
                json.dumps(
                    {
                        "id": d.id,
                        "filename": d.filename,
                        "date": str(d.date) if d.date else None,
                        "place": d.place,
                        "language": d.language,
                        "words": d.word_count,
                        "story_id": d.story_id,
                        "version": d.version,
                    }
                )
            )
        return
    from rich.console import Console
    from rich.table import Column, Table

    table = Table("file", "date", "dateline", "lang", "words", "stored")
    # Whole ids, never cut: the other columns give way (`docs show` takes any unique prefix).
    table.columns.insert(0, Column("id", no_wrap=True, min_width=max((len(d.id) for d in rows), default=2)))
    for d in rows:
        table.add_row(
            d.id,
            d.filename,
            str(d.date or ""),
            " ".join(filter(None, [d.place, f"({d.agency})" if d.agency else ""])),
            d.language,
            str(d.word_count),
            d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    Console().print(table)


def resolve_id(store: DocumentStore, given: str) -> str:
    """The id of the one document whose id starts with ``given`` (``doc_`` may be left out),
    as git takes a commit's prefix: an unknown or ambiguous prefix is an error."""
    from sqlalchemy import select

    from worker.store.schema import Document

    prefix = given if given.startswith("doc_") else f"doc_{given}"
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    with store.session() as s:
        if s.get(Document, given) is not None:
            return given
        found = list(s.scalars(select(Document.id).where(Document.id.like(f"{escaped}%", escape="\\")).limit(3)))
    if not found:
        raise Failure(f"no document {given} (`seedworker docs list` shows the ids)")
    if len(found) > 1:
        shown = ", ".join(found[:2]) + (", …" if len(found) > 2 else "")
        raise click.BadParameter(f"{given!r} matches several documents ({shown}): give more characters")
    return found[0]


@docs.command("show")
@click.argument("doc_id")
@click.option("--json", "as_json", is_flag=True, help="JSON (the default form; accepted for scripts).")
@click.option(
    "--format",
    "form",
    type=click.Choice(["json", "ninjs"]),
    default="json",
    show_default=True,
    help="json: seedworker's own fields; ninjs: the document as IPTC ninjs 2.1.",
)
@click.pass_obj
def docs_show(obj: CliContext, doc_id: str, as_json: bool, form: str) -> None:
    """One document with its tags, as JSON (or as ninjs).  DOC_ID may be any unique prefix of the id."""
    store = obj.store()
    d = store.get_document(resolve_id(store, doc_id))
    if d is None:
        raise Failure(f"no document {doc_id}")
    if form == "ninjs":
        from worker.export.ninjs import to_ninjs

        click.echo(json.dumps(to_ninjs(d), ensure_ascii=False, indent=2))
        return
    out = {
        "id": d.id,
        "filename": d.filename,
        "source": d.source,
        "format": d.format,
        "title": d.title,
        "date": str(d.date) if d.date else None,
        "date_raw": d.date_raw,
        "dateline": {"place": d.place, "country": d.country, "agency": d.agency, "raw": d.dateline_raw},
        "author": d.author,
        "language": d.language,
        "word_count": d.word_count,
        "canonical_hash": d.canonical_hash,
        "raw_sha256": d.raw_sha256,
        "urgency": d.urgency,
        "genre": d.genre,
        "pubstatus": d.pubstatus,
        "embargoed_until": _aware(d.embargoed_until),
        "story": _story(store, d),
        "metadata": d.meta,
        "warnings": d.warnings,
        "tags": [
            {
                "kind": t.kind,
                "name": t.name,
                "label": t.label,
                "source": t.source,
                "score": t.score,
                "count": t.count,
                "country": t.country,
                "scheme": t.scheme,
                "code": t.code,
            }
            for t in d.tags
        ],
        "text": d.text,
    }
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))


def _aware(value: dt.datetime | None) -> str | None:
    """An instant as ISO 8601 with its offset (SQLite gives naive UTC back)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _story(store: DocumentStore, d: Any) -> dict[str, Any]:
    """Where the document stands in its story: its version, the version it updates, the
    versions that update it, and the provider's item id and version."""
    from sqlalchemy import select

    from worker.store.schema import Document

    with store.session() as s:
        later = list(s.scalars(select(Document.id).where(Document.updates == d.id).order_by(Document.created_at)))
    return {
        "id": d.story_id,
        "version": d.version,
        "updates": d.updates,
        "updated_by": later,
        "latest": not later,
        "item_id": d.item_id,
        "item_version": d.item_version,
        "version_created": d.version_created.isoformat() if d.version_created else None,
    }


@docs.command("search", context_settings={"ignore_unknown_options": True})
@click.argument("query", nargs=-1, required=True)
@click.option("--tag", "tags", multiple=True, help="Only documents with this tag name (repeatable: all of them).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Document date on or after (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Document date on or before (YYYY-MM-DD).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def docs_search(
    obj: CliContext, query: tuple[str, ...], tags: tuple[str, ...], since: Any, until: Any, limit: int, as_json: bool
) -> None:
    """Full-text search, best first: words, "a phrase", OR, -exclude.

    The words of QUERY need no quotes (`docs search climate -war`); after `--` every word is
    part of the query, even one that looks like an option (`docs search -- --limit`).
    """
    from worker.store.search import print_hits, search_documents

    store = obj.store()
    hits = search_documents(
        store.engine,
        " ".join(query),
        tags=tags,
        since=since and since.date(),
        until=until and until.date(),
        limit=limit,
    )
    print_hits(hits, as_json=as_json)


@docs.command("delete")
@click.argument("doc_ids", nargs=-1, required=True)
@click.option("--reason", default="deleted", show_default=True, help="Said in each document.deleted event.")
@click.option("--json", "as_json", is_flag=True, help="What was deleted and what was not found, as JSON.")
@click.pass_obj
def docs_delete(obj: CliContext, doc_ids: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Delete documents (DOC_IDS: ids or unique prefixes), each in one transaction with its
    document.deleted event: its tags, full-text row, near-duplicate bands, the duplicate records
    that pointed at it (named in the event) and its original file when nothing else uses it.
    An id with no document is reported and changes nothing; deleting twice is harmless."""
    store = obj.store()
    ids: list[str] = []
    unknown: list[str] = []
    for given in doc_ids:
        try:
            ids.append(resolve_id(store, given))
        except Failure:
            unknown.append(given)
    result = store.delete(ids, reason=reason)
    if result.deleted:  # wake the publisher (it polls the outbox anyway): best effort
        from worker.relay.publisher import notify_committed

        with contextlib.suppress(Exception):
            notify_committed(obj.redis(), obj.settings.event_stream)
    missing = [*unknown, *result.missing]
    if as_json:
        out = {
            "deleted": [
                {"id": d.id, "duplicates": d.duplicates, "blobs_removed": len(d.blobs)} for d in result.deleted
            ],
            "missing": missing,
        }
        click.echo(json.dumps(out, ensure_ascii=False))
    else:
        for d in result.deleted:
            extra = f" with {len(d.duplicates)} duplicate record(s)" if d.duplicates else ""
            click.echo(f"deleted {d.id}{extra}")
        for given in missing:
            click.echo(f"no document {given}", err=True)
    if missing and not result.deleted:
        raise SystemExit(1)


COMMANDS = (docs,)
