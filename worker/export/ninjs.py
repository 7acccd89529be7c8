"""A stored document as IPTC ninjs 2.1 (the reverse of ``worker.pipeline.formats.ninjs``).

Only properties of the ninjs 2.1 schema are emitted (it admits no others), each with the
type the schema gives it; a value seedworker does not know is left out rather than made up
(a document without the provider's ``firstcreated`` has none).  The mapping is the table in
docs/formats.md ("Rendering as ninjs").

``uri`` is the provider's own id when the input carried one (a ninjs ``uri``, a NewsML-G2
``guid``), so a downstream system joins it with what it already has; otherwise the document's
URN ``urn:seedworker:document:<id>``.  The seedworker id is always in ``altids``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.store.schema import Document, TagRow

NINJS_VERSION = "2.1"
NINJS_SCHEMA = "http://www.iptc.org/std/ninjs/ninjs-schema_2.1.json"
URN_PREFIX = "urn:seedworker:document:"
PUBSTATUSES = ("usable", "withheld", "canceled")
ALTID_ROLE = "seedworker"
# Entity labels (spaCy's, and the gazetteer's) that ninjs has a list of its own for.
_PEOPLE, _ORGANISATIONS, _PLACES = {"PERSON"}, {"ORG"}, {"GPE", "LOC", "FAC"}


def to_ninjs(document: Document) -> dict[str, Any]:
    """The document (with its tags loaded) as one ninjs 2.1 object."""
    meta = document.meta if isinstance(document.meta, dict) else {}
    out: dict[str, Any] = {
        "uri": _text(meta.get("uri")) or URN_PREFIX + document.id,
        "standard": {"name": "ninjs", "version": NINJS_VERSION, "schema": NINJS_SCHEMA},
        "type": "text",
        "representationtype": "full",
        "version": _text(meta.get("version")),
        "versioncreated": _timestamp(meta.get("versioncreated")) or _iso(document.created_at),
        "firstcreated": _timestamp(meta.get("firstcreated")) or _timestamp(document.date_raw),
        "embargoed": _iso(document.embargoed_until),
        "pubstatus": document.pubstatus if document.pubstatus in PUBSTATUSES else None,
        "urgency": document.urgency if document.urgency is not None and 1 <= document.urgency <= 9 else None,
        "language": document.language if document.language and document.language != "und" else None,
        "headlines": _headlines(document.title, _text(meta.get("subheadline"))),
        "by": document.author,
        "located": _text(meta.get("located")) or document.place,
        "slugline": _text(meta.get("slugline")),
        "bodies": [
            {
                "role": "main",
                "contenttype": "text/plain",
                "value": document.text,
                "charcount": len(document.text),
                "wordcount": document.word_count,
            }
        ],
        "copyrightholder": _text(meta.get("copyrightholder")),
        "copyrightnotice": _text(meta.get("copyrightnotice")),
        "usageterms": _text(meta.get("usageterms")),
        "genres": _genres(meta.get("genres"), document.genre),
        "altids": [{"role": ALTID_ROLE, "value": document.id}],
    }
    out.update(_tags(document.tags))
    return {key: value for key, value in out.items() if value not in (None, [], "")}


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _iso(value: dt.datetime | None) -> str | None:
    """RFC 3339 with its offset (a naive value, as SQLite returns them, is UTC)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _timestamp(value: Any) -> str | None:
    """A provider's date and time, when it is one (a bare date is not a ninjs date-time)."""
    text = _text(value)
    if text is None or "T" not in text.upper():
        return None
    try:
        return _iso(dt.datetime.fromisoformat(text))
    except ValueError:
        return None


def _headlines(title: str | None, sub: str | None) -> list[dict[str, str]]:
    out = [{"role": "main", "value": title}] if title else []
    return out + ([{"role": "sub", "value": sub}] if sub else [])


def _genres(given: Any, genre: str | None) -> list[dict[str, str]]:
    """The provider's genres as it gave them (``{scheme, code, name, uri}``), else the one
    genre column (a QCode such as ``genre:Current``, or a name)."""
    out: list[dict[str, str]] = []
    for entry in given if isinstance(given, list) else []:
        if not isinstance(entry, dict):
            continue
        scheme, code = _text(entry.get("scheme")), _text(entry.get("code"))
        item = {
            "name": _text(entry.get("name")),
            "uri": _text(entry.get("uri")),
            "literal": f"{scheme}:{code}" if scheme and code else code,
        }
        if any(item.values()):
            out.append({k: v for k, v in item.items() if v})
    if not out and genre:
        out.append({"literal": genre} if ":" in genre else {"name": genre})
    return out


def _tags(tags: list[TagRow]) -> dict[str, list[dict[str, Any]]]:
    """Subject codes (the provider's and the taxonomy's) as subjects with their IPTC URI
    and QCode; people, organisations and places from entities; every other tag (topics,
    keywords, folder and producer tags) as a named subject.  ``creator`` says what gave it."""
    out: dict[str, list[dict[str, Any]]] = {"subjects": [], "people": [], "organisations": [], "places": []}
    for tag in tags:
        if tag.kind == "entity":
            key = (
                "people"
                if tag.label in _PEOPLE
                else "organisations"
                if tag.label in _ORGANISATIONS
                else "places"
                if tag.label in _PLACES
                else None
            )
            if key is not None:
                out[key].append({"name": tag.name, "rel": "mentioned"})
            continue
        subject: dict[str, Any] = {"name": tag.name, "creator": tag.source}
        if tag.code:
            subject["literal"] = tag.code
            if uri := _code_uri(tag.scheme, tag.code):
                subject["uri"] = uri
        if tag.score is not None and 0 <= tag.score <= 1:
            subject["confidence"] = round(tag.score * 100)
        out["subjects"].append(subject)
    return out


def _code_uri(scheme: str | None, code: str) -> str | None:
    """``http://cv.iptc.org/newscodes/mediatopic/`` + ``medtop:11000000`` -> the term's URI."""
    if not scheme or "://" not in scheme:
        return None
    local = code.split(":", 1)[1] if ":" in code else code
    return scheme if scheme.rstrip("/").endswith("/" + local) else scheme.rstrip("/") + "/" + local
