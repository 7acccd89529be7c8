"""IPTC ninjs ("News in JSON") 1.x, 2.x and 3.x: one news item as a JSON object.

The versions name the same things differently (1.x ``headline``/``body_html``/``byline``/
``subject``; 2.x ``headlines``/``bodies``/``by``/``subjects``; 3.x the same in camelCase:
``versionCreated``, ``pubStatus``), so keys are read case-insensitively and each field is
looked for under every name it has had.  Associations are kept as metadata, never fetched.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from worker.errors import InvalidJSON, MissingText
from worker.pipeline.formats.base import CERTAIN, NO, Format, Head, Parsed, Source, as_line, byline_name, jsonable
from worker.pipeline.formats.markup import html_text
from worker.pipeline.formats.provider import (
    MAX_CODES,
    embargo_time,
    primary_genre,
    status_word,
    subject_code,
    urgency_level,
)

NINJS = "ninjs"
_START = re.compile(r"\A[\s\ufeff]*\{")
_SCHEMA = re.compile(r'"(?:\$schema|schema)"\s*:\s*"[^"]{0,300}ninjs', re.IGNORECASE)
_URI = re.compile(r'"uri"\s*:\s*"', re.IGNORECASE)
# A body under ninjs's own names: a producer's plain JSON with a "uri" and a "text" stays JSON.
_NINJS_KEYS = re.compile(r'"(?:body_html|body_text|bodies)"\s*:', re.IGNORECASE)
_MAX_ASSOCIATIONS = 100


def sniff(head: Head) -> float:
    """A JSON object naming the ninjs schema, or with a ``uri`` and a ninjs body field."""
    text = head.text
    if head.filename.lower().endswith((".jsonl", ".ndjson")) or not _START.match(text):
        return NO
    if _SCHEMA.search(text) or (_URI.search(text) and _NINJS_KEYS.search(text)):
        return CERTAIN
    return NO


def parse(source: Source) -> Parsed:
    item = _loads(source.text)
    if not isinstance(item, dict):
        raise MissingText("the ninjs file holds a JSON array or value, not a news item object")
    fields = {str(k).lower(): v for k, v in item.items()}
    body, body_kind = _body(fields)
    if body is None:
        keys = ", ".join(sorted(map(str, item))[:20])
        raise MissingText(
            f"the ninjs item has no body_text, body_html or bodies value (fields: {keys})", uri=_str(fields, "uri")
        )
    parsed = Parsed(NINJS, body)
    parsed.title = _headline(fields, "main") or as_line(fields.get("headline")) or as_line(fields.get("title"))
    parsed.author = _byline(fields)
    parsed.date_raw = _str(fields, "firstcreated") or _str(fields, "versioncreated") or _str(fields, "contentcreated")
    parsed.language = _str(fields, "language")
    parsed.located = _str(fields, "located")
    dateline = fields.get("dateline")  # not in the schema, but agency feeds send it (a string or {"text"})
    parsed.dateline_raw = as_line(dateline.get("text") if isinstance(dateline, dict) else dateline)
    parsed.tags = [t for t in (as_line(k) for k in _list(fields.get("keywords"))) if t][:100]
    parsed.metadata = _metadata(fields, body_kind, parsed.warnings)
    parsed.urgency = parsed.metadata.get("urgency")
    parsed.pubstatus = parsed.metadata.get("pubstatus")
    parsed.genre = primary_genre(parsed.metadata.get("genres", []))
    parsed.embargoed = embargo_time(parsed.metadata.get("embargoed"), parsed.warnings)
    parsed.item_id = as_line(fields.get("uri"))
    parsed.item_version = as_line(fields.get("version"))
    parsed.version_created = _str(fields, "versioncreated")
    return parsed


def _loads(text: str) -> Any:
    try:
        return json.loads(text.lstrip("\ufeff"), parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(
            f"the ninjs file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except RecursionError:
        raise InvalidJSON("the ninjs file is not readable: its JSON is nested too deeply") from None
    except ValueError as exc:
        raise InvalidJSON(f"the ninjs file is not valid JSON: {exc}") from None


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed in JSON")


def _str(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _body(fields: dict[str, Any]) -> tuple[str | None, str]:
    """The text, from ``body_text``, else ``body_html``, else the main of ``bodies``."""
    if text := _str(fields, "body_text"):
        return text, "text"
    if (html := _str(fields, "body_html")) and (text := html_text(html)):
        return text, "html"
    bodies = [b for b in _list(fields.get("bodies")) if isinstance(b, dict) and isinstance(b.get("value"), str)]
    bodies.sort(key=lambda b: 0 if str(b.get("role", "")).lower() in ("", "main", "body") else 1)
    for body in bodies:
        kind = str(body.get("contenttype") or body.get("contentType") or "text/plain").lower()
        value = html_text(body["value"]) if "html" in kind else body["value"].strip()
        if value:
            return value, "html" if "html" in kind else "text"
    return None, ""


def _headline(fields: dict[str, Any], role: str) -> str | None:
    headlines = [h for h in _list(fields.get("headlines")) if isinstance(h, dict)]
    for headline in headlines:
        if str(headline.get("role", "main" if role == "main" else "")).lower() == role:
            return as_line(headline.get("value"))
    return as_line(headlines[0].get("value")) if headlines and role == "main" else None


def _byline(fields: dict[str, Any]) -> str | None:
    if by := byline_name(as_line(fields.get("by")) or as_line(fields.get("byline"))):
        return by
    names = [as_line(b.get("byline") or b.get("name")) for b in _list(fields.get("bylines")) if isinstance(b, dict)]
    return ", ".join(n for n in names if n) or None


def _codes(fields: dict[str, Any], *keys: str) -> list[dict[str, str]]:
    """ninjs 1.x ``{scheme, code, name}`` and 2.x/3.x ``{uri, name, literal}`` alike."""
    out: list[dict[str, str]] = []
    for key in keys:
        for entry in _list(fields.get(key))[:MAX_CODES]:
            if not isinstance(entry, dict):
                continue
            lower = {str(k).lower(): v for k, v in entry.items()}
            found = subject_code(
                scheme=lower.get("scheme"),
                code=lower.get("code") or lower.get("qcode") or lower.get("literal"),
                name=lower.get("name"),
                uri=lower.get("uri"),
            )
            if found and found not in out:
                out.append(found)
    return out


def _metadata(fields: dict[str, Any], body_kind: str, warnings: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"provider_format": NINJS, "body_format": body_kind}
    for key in ("uri", "version", "type", "versioncreated", "firstcreated", "embargoed", "located", "slugline"):
        if (value := as_line(fields.get(key))) is not None:
            meta[key] = value
    if (subheadline := _headline(fields, "sub") or as_line(fields.get("subheadline"))) is not None:
        meta["subheadline"] = subheadline
    if (urgency := urgency_level(fields.get("urgency"))) is not None:
        meta["urgency"] = urgency
    if (status := status_word(fields.get("pubstatus"))) is not None:
        meta["pubstatus"] = status
    if subjects := _codes(fields, "subject", "subjects"):
        meta["subjects"] = subjects
    if genres := _codes(fields, "genre", "genres"):
        meta["genres"] = genres
    for key in ("copyrightnotice", "copyrightholder", "usageterms"):
        if (value := as_line(fields.get(key))) is not None:
            meta[key] = value
    if "rightsinfo" in fields:
        meta["rightsinfo"] = jsonable(fields["rightsinfo"], warnings, "rightsinfo")
    associations = fields.get("associations")
    if isinstance(associations, dict):  # 1.x: {name: item}
        associations = [{"name": k, **v} if isinstance(v, dict) else {"name": k} for k, v in associations.items()]
    if isinstance(associations, list) and associations:
        meta["associations"] = [_association(a) for a in associations[:_MAX_ASSOCIATIONS] if isinstance(a, dict)]
    return meta


def _association(item: dict[str, Any]) -> dict[str, Any]:
    """What an associated item is and where it lives; its content is not fetched."""
    lower = {str(k).lower(): v for k, v in item.items()}
    keep = {k: as_line(lower.get(k)) for k in ("name", "uri", "type", "version", "headline", "title")}
    return {k: v for k, v in keep.items() if v is not None}


FORMAT = Format(
    name=NINJS,
    label="IPTC ninjs 1.x–3.x (`ninjs`)",
    sniff=sniff,
    parse=parse,
    extensions=(),
    recognised="a JSON object naming the ninjs schema, or with `uri` and a ninjs body (`body_text`,"
    " `body_html`, `bodies`), whatever the extension",
    fields="headline/headlines → title; by/byline/bylines → author; firstcreated, else versioncreated → date;"
    " body_text, body_html or bodies → text; language; located → dateline; urgency, pubstatus, embargoed,"
    " the first genre → their own fields; subject(s), genre(s), copyright, usageterms, associations → metadata;"
    " uri, version, versioncreated → the item's id and version (a newer version is an update, docs/dedup.md)",
    failures=("invalid_json", "missing_text"),
)
