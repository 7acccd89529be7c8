"""``seedworker docs``: stored documents (list, show, search)."""

from __future__ import annotations

import json
from typing import Any

import click

from worker.cli.context import CliContext


@click.group()
def docs() -> None:
    """Stored documents."""


@docs.command("list")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def docs_list(obj: CliContext, limit: int, as_json: bool) -> None:
    """The newest documents."""
    rows = obj.store().list_documents(limit)
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
                    }
                )
            )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "file", "date", "dateline", "lang", "words", "stored")
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


@docs.command("show")
@click.argument("doc_id")
@click.pass_obj
def docs_show(obj: CliContext, doc_id: str) -> None:
    """One document with its tags, as JSON."""
    d = obj.store().get_document(doc_id)
    if d is None:
        raise click.ClickException(f"no document {doc_id}")
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
            }
            for t in d.tags
        ],
        "text": d.text,
    }
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))


@docs.command("search")
@click.argument("query")
@click.option("--tag", "tags", multiple=True, help="Only documents with this tag name (repeatable: all of them).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Document date on or after (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Document date on or before (YYYY-MM-DD).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def docs_search(
    obj: CliContext, query: str, tags: tuple[str, ...], since: Any, until: Any, limit: int, as_json: bool
) -> None:
    """Full-text search, best first: words, "a phrase", OR, -exclude."""
    from worker.store.search import print_hits, search_documents

    store = obj.store()
    hits = search_documents(
        store.engine, query, tags=tags, since=since and since.date(), until=until and until.date(), limit=limit
    )
    print_hits(hits, as_json=as_json)


# `docs delete ID…` joins here once the store can delete a document and emit document.deleted.

COMMANDS = (docs,)
