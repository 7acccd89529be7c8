"""What every format parser shares, below all of them: the ``Parsed`` record a parser
returns, the ``Format`` entry it registers, and the field helpers that make "Title",
"title" and "headline" mean the same thing in every format.

Parsers import from here (and from ``textclean``), never from each other: a format that
needs another format's parser (an email attachment) hands the bytes back as ``Embedded``
and the registry parses them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.errors import InputError, TooSlow
from worker.pipeline.textclean import one_line, tidy

TEXT, HEADER, MARKDOWN, JSON, JSONL, HTML = "text", "header", "markdown", "json", "jsonl", "html"

#: Sniffing answers.  ``CERTAIN``: the content says what it is (a PDF's magic bytes, a
#: NewsML-G2 root element) and wins over the file name.  ``LIKELY``: the content looks like
#: it (``<html`` at the start of a .txt), used only when the extension says nothing.
CERTAIN = 1.0
LIKELY = 0.5
NO = 0.0

#: Documents one file may hold (JSON Lines records, feed items, NewsML-G2 items, email
#: attachments).  Each is a document (or a failure) with its own transaction and event, all
#: in one task: a file of millions of tiny records would hold a worker for hours.
MAX_RECORDS = 10_000

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
MAX_TAGS = 100
_MAX_TAG_CHARS = 100
_MAX_DEPTH = 20
_MAX_NODES = 10_000
_MAX_KEY_CHARS = 200
_TITLE_MAX_CHARS = 150
_TITLE_MAX_WORDS = 20


@dataclass
class Parsed:
    """A body still to be cleaned, and what the input said about itself.

    ``identity``: for items that carry their own id (a feed item's guid or link), the
    string exact-duplicate detection uses instead of the text, so the same item in a later
    feed file is a duplicate even when its summary was edited.
    """

    format: str
    body: str
    title: str | None = None
    date_raw: str | None = None
    author: str | None = None
    language: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    identity: str | None = None
    encoding: str | None = None
    located: str | None = None  # where the provider says the story was filed ("Washington")
    dateline_raw: str | None = None  # the provider's own dateline ("WASHINGTON, Nov 24 (AP)")
    # The news industry's own fields (ninjs, NewsML-G2), typed: see ``provider``.
    urgency: int | None = None  # 1 (most urgent) to 9
    genre: str | None = None  # the first genre: its QCode ("genre:Current"), else its name
    pubstatus: str | None = None  # usable | withheld | canceled
    embargoed: dt.datetime | None = None  # UTC; not to be published before
    # An item that names itself and counts its versions (ninjs ``uri``/``version``/
    # ``versioncreated``, NewsML-G2 ``guid``/``version``/``versionCreated``): a newer version of
    # a stored item is an update of it (worker.pipeline.versions, docs/dedup.md "Updates").
    item_id: str | None = None
    item_version: str | None = None
    version_created: str | None = None


@dataclass(frozen=True)
class Embedded:
    """A file inside a file (an email attachment): parsed by the registry as its own
    document, with ``metadata`` (e.g. ``parent``) added to whatever its format gives."""

    raw: bytes
    filename: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Head:
    """What sniffing sees: the first bytes of the file, its name, and (once the file has
    been decoded, for the formats that read text) the first characters of its text."""

    raw: bytes
    filename: str
    text: str = ""


def _reads_nothing(raw: bytes, filename: str) -> bool:
    return False


@dataclass(frozen=True)
class Source:
    """One input as a parser sees it: the bytes, the file name and, for text formats, the
    decoded text (empty for formats that read bytes).  ``can_read(raw, name)`` tells a
    parser whether the registry reads an embedded file (an email attachment) without the
    parser importing the registry."""

    raw: bytes
    filename: str
    text: str = ""
    can_read: Callable[[bytes, str], bool] = _reads_nothing


#: A parser's answer: one document (``Parsed``), or a list of numbered records --
#: documents, typed failures of single records, and embedded files.  The number is the
#: record's line (JSON Lines) or its 1-based position (feed items, news items, email parts).
Records = list[tuple[int, Parsed | InputError | Embedded]]
ParseResult = Parsed | Records


class Declined(Exception):
    """A parser chosen on a weak sniff found the input is not its format after all (front
    matter that never closes): the registry falls back to plain text."""


@dataclass(frozen=True)
class Format:
    """One input format: how it is recognised, how it is parsed, and what the docs say."""

    name: str
    label: str
    sniff: Callable[[Head], float]
    parse: Callable[[Source], ParseResult]
    extensions: tuple[str, ...] = ()
    reads_bytes: bool = False  # True: parsed from bytes, never decoded as text first
    record_name: str = "record"  # what one of several records is called in messages ("line N")
    recognised: str = ""
    fields: str = ""
    failures: tuple[str, ...] = ()


def never(head: Head) -> float:
    """A sniff for formats chosen only by extension (or as the fallback)."""
    return NO


class Deadline:
    """A parser's time budget, checked between pages, items or parts: a file crafted to be
    slow fails as ``too_slow`` instead of holding a worker."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TooSlow(
                f"reading the {self.what} took more than {self.seconds:g} s, its time budget;"
                " the file is damaged or crafted to be slow",
                limit_seconds=self.seconds,
            )


def field_name(key: str) -> str:
    return "_".join(key.lower().split()).replace("-", "_")


def apply_fields(parsed: Parsed, fields: Mapping[Any, Any]) -> None:
    """Known fields fill the document; every other field lands in metadata.

    At most ``_MAX_NODES`` values in all are kept: the fields after that are dropped with
    one warning (a JSON object with half a million keys must not cost minutes).
    """
    budget = [_MAX_NODES]
    dropped = 0
    for raw_key, value in fields.items():
        key = str(raw_key).strip()
        target = FIELD_ALIASES.get(field_name(key))
        if target == "title" and parsed.title is None:
            parsed.title = as_line(value)
        elif target == "date" and parsed.date_raw is None:
            parsed.date_raw = _as_date_raw(value)
        elif target == "author" and parsed.author is None:
            parsed.author = as_author(value)
        elif target == "language" and parsed.language is None:
            parsed.language = as_line(value)
        elif target == "tags":
            parsed.tags = merge_tags(parsed.tags, as_tags(value))
        elif target in ("source", "url") or target is None:
            if budget[0] <= 0:
                dropped += 1
                continue
            name = target or tidy(key.lower())[:_MAX_KEY_CHARS]
            parsed.metadata[name] = to_jsonable(value, parsed.warnings, key, budget)
    if dropped:
        parsed.warnings.append(f"metadata: {dropped} more field(s) dropped; at most {_MAX_NODES} values are kept")


def as_line(value: Any) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return one_line(str(value)) or None
    return None


def _as_date_raw(value: Any) -> str | None:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return as_line(value)


def as_author(value: Any) -> str | None:
    """ "Jane Doe", {"name": "Jane Doe"} or a list of either."""
    items = value if isinstance(value, list) else [value]
    names = [name for item in items[:20] if (name := _author_name(item))]
    return ", ".join(names) or None


def _author_name(value: Any) -> str | None:
    return as_line(value.get("name")) if isinstance(value, Mapping) else as_line(value)


def as_tags(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return []
    tags = []
    for item in items[:MAX_TAGS]:
        tag = as_line(item) if not isinstance(item, str) else one_line(item)
        if tag and len(tag) <= _MAX_TAG_CHARS:
            tags.append(tag)
    return tags


def merge_tags(old: list[str], new: list[str]) -> list[str]:
    return list(dict.fromkeys([*old, *new]))[:MAX_TAGS]


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


def jsonable(value: Any, warnings: list[str], key: str) -> Any:
    """``to_jsonable`` with a fresh budget, for one metadata value a parser sets itself."""
    return to_jsonable(value, warnings, key, [_MAX_NODES])


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


_XML_PROLOG = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]{0,200}\?>\s*)?"
    rb"(?:<!--.{0,2000}?-->\s*|<!DOCTYPE[^\[>]{0,500}(?:\[.{0,60000}?\])?\s*>\s*)*",
    re.S,
)
_XML_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")


def xml_root(head: bytes) -> str | None:
    """The local name of the first element of an XML document, if the head is XML."""
    prolog = _XML_PROLOG.match(head)
    start = prolog.end() if prolog else 0
    root = _XML_ROOT.match(head, start)
    return root[1].decode("ascii") if root else None


_XML_ENCODING = re.compile(
    rb"""\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']"""
)
_BYLINE_PREFIX = re.compile(r"^by\s+", re.IGNORECASE)


def xml_encoding(raw: bytes) -> str:
    """The encoding an XML document declares (UTF-8 when it declares none), lower case."""
    declared = _XML_ENCODING.match(raw)
    return declared[1].decode("ascii").lower() if declared else "utf-8"


def byline_name(value: str | None) -> str | None:
    """``By Sam Reyes`` -> ``Sam Reyes``: a provider's byline without its "By"."""
    return _BYLINE_PREFIX.sub("", value).strip() or None if value else None
