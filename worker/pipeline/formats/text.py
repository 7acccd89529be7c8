"""Plain text, with an optional inline ``date YYYY-MM-DD`` or a ``Key: value`` header block.

The fallback format: whatever no other format recognises is read as text.
"""

from __future__ import annotations

import re

from worker.pipeline.formats.base import (
    FIELD_ALIASES,
    HEADER,
    TEXT,
    Format,
    Parsed,
    apply_fields,
    field_name,
    never,
)
from worker.pipeline.textclean import clean_text

_MAX_HEADER_LINES = 50
_HEADER_LINE = re.compile(r"([A-Za-z][A-Za-z0-9 _-]{0,40}?)[ \t]*:[ \t]*(.*)")
_INLINE_DATE = re.compile(
    r"date:?[ \t]+(\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)"
    r"(?=[ \t\n]|\Z)[ \t]*",
    re.IGNORECASE,
)


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
        if not match or (not fields and field_name(match[1]) not in FIELD_ALIASES):
            return None
        key, value = field_name(match[1]), match[2].strip()
        if FIELD_ALIASES.get(key) == "tags" and key in fields:
            value = f"{fields[key]}, {value}"
        fields[key] = value
        if end < 0:  # the file is all header: a header with an empty body, if 2+ lines
            return (fields, "") if count >= 2 else None
        pos = end + 1
    return None


FORMAT = Format(
    name=TEXT,
    label="Plain text (`text`, `header`)",
    sniff=never,
    parse=lambda source: parse_text(source.text),
    extensions=(),
    recognised="anything no other format recognises (`.txt`, no extension, ...)",
    fields="`Key: value` header block or inline `date YYYY-MM-DD` → title, date, author, language, tags, "
    "other keys → metadata; a short first line → title; wire byline/dateline → author, dateline",
    failures=("empty", "binary", "undecodable"),
)
