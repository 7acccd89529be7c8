"""Which format a file is in, and the text-based formats: plain text, headers, Markdown.

Every parser returns a ``Parsed``: the body still to be cleaned plus the fields the input
declared about itself.  ``apply_fields`` is shared by header blocks, front matter and JSON,
so "Title", "title" and "headline" mean the same thing everywhere.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import yaml

from worker.pipeline.textclean import clean_text, one_line, tidy

TEXT, HEADER, MARKDOWN, JSON, JSONL, HTML = "text", "header", "markdown", "json", "jsonl", "html"
_EXTENSIONS = {
    ".json": JSON,
    ".jsonl": JSONL,
    ".ndjson": JSONL,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
}
_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)

# Field names a producer may use, mapped to the one field they fill.
FIELD_ALIASES = {
    "title": "title",
    "headline": "title",
    "date": "date",
    "published": "date",
    "published_at": "date",
    "pubdate": "date",
    "pub_date": "date",
    "publish_date": "date",
    "date_published": "date",
    "datepublished": "date",
    "author": "author",
    "authors": "author",
    "byline": "author",
    "by": "author",
    "language": "language",
    "lang": "language",
    "tags": "tags",
    "keywords": "tags",
    "source": "source",
    "url": "url",
    "link": "url",
}
_MAX_TAGS = 100
_MAX_TAG_CHARS = 100
_MAX_DEPTH = 20
_MAX_NODES = 10_000
_MAX_KEY_CHARS = 200
_MAX_FRONT_MATTER = 64 * 1024
_MAX_HEADER_LINES = 50
_HEADER_LINE = re.compile(r"([A-Za-z][A-Za-z0-9 _-]{0,40}?)[ \t]*:[ \t]*(.*)")
_INLINE_DATE = re.compile(
    r"date:?[ \t]+(\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)"
    r"(?=[ \t\n]|\Z)[ \t]*",
    re.IGNORECASE,
)
_FRONT_MATTER_END = {
    "---": re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE),
    "+++": re.compile(r"^\+\+\+[ \t]*$", re.MULTILINE),
}
_ATX_HEADING = re.compile(r"#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*(?:\n|\Z)")
_TITLE_MAX_CHARS = 150
_TITLE_MAX_WORDS = 20


@dataclass
class Parsed:
    """A body still to be cleaned, and what the input said about itself."""

    format: str
    body: str
    title: str | None = None
    date_raw: str | None = None
    author: str | None = None
    language: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def detect_format(filename: str, text: str) -> str:
    """The extension decides; a .txt (or unnamed) file may still turn out HTML or Markdown."""
    by_extension = _EXTENSIONS.get(PurePath(filename).suffix.lower())
    if by_extension:
        return by_extension
    head = text[:1024].lstrip(" \t\r\n\ufeff")
    if _HTML_START.match(head):
        return HTML
    if head.startswith(("---\n", "---\r\n", "+++\n", "+++\r\n")):
        return MARKDOWN
    return TEXT


def parse_text(text: str) -> Parsed:
    """Plain text, with an optional inline ``date YYYY-MM-DD`` or a ``Key: value`` block."""
    text = clean_text(text)
    inline = _INLINE_DATE.match(text)
    if inline and text[inline.end() : inline.end() + 1] not in ("", "\n"):
        return Parsed(TEXT, text[inline.end() :], date_raw=inline[1])  # "date 2024-02-06 BODY"
    header = split_header_block(text)
    if header is not None:
        fields, body = header
        parsed = Parsed(HEADER, body)
        apply_fields(parsed, fields)
        return parsed
    if inline:
        return Parsed(TEXT, text[inline.end() :], date_raw=inline[1])
    return Parsed(TEXT, text)


def split_header_block(text: str) -> tuple[dict[str, str], str] | None:
    """``Key: value`` lines up to a blank line, if the first key is a known field name.

    Requiring a known first key keeps "Note: the meeting..." in the body.
    """
    fields: dict[str, str] = {}
    pos = 0
    for count in range(1, _MAX_HEADER_LINES + 1):
        end = text.find("\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        if not line.strip():
            return (fields, text[end + 1 :]) if fields else None
        match = _HEADER_LINE.fullmatch(line)
        if not match or (not fields and _field_name(match[1]) not in FIELD_ALIASES):
            return None
        key, value = _field_name(match[1]), match[2].strip()
        if FIELD_ALIASES.get(key) == "tags" and key in fields:
            value = f"{fields[key]}, {value}"
        fields[key] = value
        if end < 0:  # the file is all header: a header with an empty body, if 2+ lines
            return (fields, "") if count >= 2 else None
        pos = end + 1
    return None


def _field_name(key: str) -> str:
    return "_".join(key.lower().split()).replace("-", "_")


def parse_markdown(text: str, *, sniffed: bool = False) -> Parsed:
    """Markdown kept as written, minus YAML (---) or TOML (+++) front matter.

    ``sniffed``: the file was not named .md, only started like front matter; without a
    closing delimiter it is plain text after all.
    """
    text = clean_text(text)
    parsed = Parsed(MARKDOWN, text)
    front = _split_front_matter(text)
    if front is None and sniffed:
        return parse_text(text)
    if front is not None:
        kind, block, parsed.body = front
        fields = _load_front_matter(kind, block, parsed.warnings)
        apply_fields(parsed, fields)
    if parsed.title is None and (heading := _ATX_HEADING.match(parsed.body.lstrip("\n"))):
        parsed.title = one_line(heading[1]) or None
    return parsed


def _split_front_matter(text: str) -> tuple[str, str, str] | None:
    delimiter = text[:3]
    if delimiter not in _FRONT_MATTER_END or text[3:4] != "\n":
        return None
    end = _FRONT_MATTER_END[delimiter].search(text, 4, _MAX_FRONT_MATTER)
    if end is None:
        return None
    return delimiter, text[4 : end.start()], text[end.end() :]


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as the strings they were written as."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_front_matter(kind: str, block: str, warnings: list[str]) -> Mapping[str, Any]:
    """Front matter that does not parse is a warning; the body is still a document."""
    language = "YAML" if kind == "---" else "TOML"
    try:
        loaded: Any = (
            yaml.load(block, Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader subclass
            if kind == "---"
            else tomllib.loads(block)
        )
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.append(f"front matter: ignored, the {language} does not parse: {first_line}")
        return {}
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        warnings.append(f"front matter: ignored, the {language} is not a mapping of fields")
        return {}
    return loaded


def apply_fields(parsed: Parsed, fields: Mapping[Any, Any]) -> None:
    """Known fields fill the document; every other field lands in metadata.

    At most ``_MAX_NODES`` values in all are kept: the fields after that are dropped with
    one warning (a JSON object with half a million keys must not cost minutes).
    """
    budget = [_MAX_NODES]
    dropped = 0
    for raw_key, value in fields.items():
        key = str(raw_key).strip()
        target = FIELD_ALIASES.get(_field_name(key))
        if target == "title" and parsed.title is None:
            parsed.title = _as_line(value)
        elif target == "date" and parsed.date_raw is None:
            parsed.date_raw = _as_date_raw(value)
        elif target == "author" and parsed.author is None:
            parsed.author = _as_author(value)
        elif target == "language" and parsed.language is None:
            parsed.language = _as_line(value)
        elif target == "tags":
            parsed.tags = _merge_tags(parsed.tags, _as_tags(value))
        elif target in ("source", "url") or target is None:
            if budget[0] <= 0:
                dropped += 1
                continue
            name = target or tidy(key.lower())[:_MAX_KEY_CHARS]
            parsed.metadata[name] = to_jsonable(value, parsed.warnings, key, budget)
    if dropped:
        parsed.warnings.append(f"metadata: {dropped} more field(s) dropped; at most {_MAX_NODES} values are kept")


def _as_line(value: Any) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return one_line(str(value)) or None
    return None


def _as_date_raw(value: Any) -> str | None:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return _as_line(value)


def _as_author(value: Any) -> str | None:
    """ "Jane Doe", {"name": "Jane Doe"} or a list of either."""
    items = value if isinstance(value, list) else [value]
    names = [name for item in items[:20] if (name := _author_name(item))]
    return ", ".join(names) or None


def _author_name(value: Any) -> str | None:
    return _as_line(value.get("name")) if isinstance(value, Mapping) else _as_line(value)


def _as_tags(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return []
    tags = []
    for item in items[:_MAX_TAGS]:
        tag = _as_line(item) if not isinstance(item, str) else one_line(item)
        if tag and len(tag) <= _MAX_TAG_CHARS:
            tags.append(tag)
    return tags


def _merge_tags(old: list[str], new: list[str]) -> list[str]:
    return list(dict.fromkeys([*old, *new]))[:_MAX_TAGS]


def to_jsonable(value: Any, warnings: list[str], key: str, budget: list[int], depth: int = 0) -> Any:
    """A metadata value Celery's JSON serializer and the store can carry.

    Dates become ISO strings, non-finite floats None, strings (and keys) lose control
    characters and lone surrogates (not valid UTF-8 text); YAML alias bombs and very deep
    nesting are cut off with a warning instead of exhausting memory or the stack.
    """
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_DEPTH:
        warning = f"metadata: {key!r} is too large or too deeply nested; cut short"
        if warning not in warnings:
            warnings.append(warning)
        return None
    if isinstance(value, str):
        return tidy(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {tidy(str(k)): to_jsonable(v, warnings, key, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, warnings, key, budget, depth + 1) for v in value]
    return str(value)


def first_line_title(text: str) -> str | None:
    """A first line that reads like a headline: short, no final period, a blank line after."""
    first, sep, rest = text.partition("\n\n")
    if not sep or not rest.strip() or "\n" in first:
        return None
    line = first.strip()
    if (
        len(line) > _TITLE_MAX_CHARS
        or len(line.split()) > _TITLE_MAX_WORDS
        or line.endswith((".", ",", ";", ":"))
        or not any(ch.isalpha() for ch in line)
    ):
        return None
    return line
