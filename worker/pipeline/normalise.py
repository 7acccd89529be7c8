"""The normalise stage: raw bytes in, one typed ``NormalisedDocument`` (or many) out.

Pure and deterministic: no I/O, no clock, no globals that change the answer.  Bad input
raises (or, for ``normalise_records``, returns) an ``InputError`` subclass with a stable
reason code; anything else escaping from here is a bug.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from worker.errors import EmptyDocument, InputError, InvalidJSON, TooLarge
from worker.models import NormalisedDocument
from worker.pipeline.datelines import Lead, split_lead
from worker.pipeline.dates import parse_date
from worker.pipeline.decode import Decoded, decode
from worker.pipeline.formats import (
    HEADER,
    HTML,
    JSON,
    JSONL,
    MARKDOWN,
    TEXT,
    Parsed,
    detect_format,
    first_line_title,
    parse_markdown,
    parse_text,
)
from worker.pipeline.htmldoc import parse_html
from worker.pipeline.jsondoc import count_records, json_lines, parse_json
from worker.pipeline.language import detect_language, language_code
from worker.pipeline.textclean import canonical_hash, clean_text, count_words

__all__ = ["canonical_hash", "normalise", "normalise_records"]

Record = tuple[int | None, NormalisedDocument | InputError]

#: Records one JSON Lines file may hold.  Each record is a document (or a failure) with its
#: own transaction and event, all in one task: a file of millions of tiny lines would hold a
#: worker for hours and its errors alone take gigabytes.  Bigger exports are split.
MAX_RECORDS = 10_000
#: Longest fields kept (the store's columns are sized for them; longer ones are cut, with a warning).
MAX_TITLE_CHARS = 1000
MAX_AUTHOR_CHARS = 300
MAX_DATE_RAW_CHARS = 200


def normalise(raw: bytes, *, filename: str = "") -> NormalisedDocument:
    """One document.  Raises an InputError subclass, never anything else, for bad input.

    A JSON Lines file is accepted only when it holds exactly one record; use
    ``normalise_records`` for the general case.
    """
    return _single(decode(raw), filename)


def normalise_records(raw: bytes, *, filename: str = "") -> list[tuple[int | None, NormalisedDocument | InputError]]:
    """Every document in a file.  Never raises InputError.

    For .jsonl/.ndjson files: one entry per non-blank line with its 1-based line number; a
    bad line gets its own InputError (naming the line) and does not affect the others.
    For any other file: exactly one entry, ``(None, document-or-error)``.
    """
    try:
        decoded = decode(raw)
        if detect_format(filename, decoded.text) == JSONL:
            return _json_lines(decoded)
        return [(None, _single(decoded, filename))]
    except InputError as error:
        return [(None, error)]


def _single(decoded: Decoded, filename: str) -> NormalisedDocument:
    fmt = detect_format(filename, decoded.text)
    if fmt == JSONL:
        records = _json_lines(decoded)
        if len(records) != 1:
            raise InvalidJSON(
                f"the JSON Lines file holds {len(records)} records, not one document",
                records=len(records),
            )
        result = records[0][1]
        if isinstance(result, InputError):
            raise result
        return result
    return _document(_parse(fmt, decoded.text, filename), decoded)


def _json_lines(decoded: Decoded) -> list[Record]:
    if count_records(decoded.text, MAX_RECORDS) > MAX_RECORDS:
        return [
            (
                None,
                TooLarge(
                    f"the JSON Lines file holds more than {MAX_RECORDS} records, the most one file may hold;"
                    " split it into smaller files",
                    limit=MAX_RECORDS,
                ),
            )
        ]
    records: list[Record] = []
    for number, line in json_lines(decoded.text):
        try:
            records.append((number, _document(parse_json(line, fmt=JSONL, line=number), decoded)))
        except InputError as error:
            records.append((number, _name_line(error, number)))
    if not records:
        records.append((None, EmptyDocument("the JSON Lines file holds only blank lines")))
    return records


def _name_line(error: InputError, number: int) -> InputError:
    """Make sure a record's error says which line it is about."""
    if re.search(rf"\bline {number}\b", error.message):
        return error
    return type(error)(f"line {number}: {error.message}", **{**error.details, "line": number})


def _parse(fmt: str, text: str, filename: str) -> Parsed:
    if fmt == JSON:
        return parse_json(text)
    if fmt == HTML:
        return parse_html(text)
    if fmt == MARKDOWN:
        sniffed = PurePath(filename).suffix.lower() not in (".md", ".markdown")
        return parse_markdown(text, sniffed=sniffed)
    return parse_text(text)


def _document(parsed: Parsed, decoded: Decoded) -> NormalisedDocument:
    """Clean the body, take off byline and dateline, and fill every field of the document."""
    warnings = [*decoded.warnings, *parsed.warnings]
    lead = _lead(clean_text(parsed.body), parsed.format)
    text = lead.text
    if not text:
        raise EmptyDocument("the document has no text once headers, dateline and control characters are removed")
    title = parsed.title
    if title is None and parsed.format in (TEXT, HEADER):
        title = first_line_title(text)
    date, date_warning = parse_date(parsed.date_raw) if parsed.date_raw else (None, None)
    if date_warning:
        warnings.append(date_warning)
    return NormalisedDocument(
        text=text,
        title=_clip(title, "title", MAX_TITLE_CHARS, warnings),
        date=date,
        date_raw=_clip(" ".join((parsed.date_raw or "").split()) or None, "date", MAX_DATE_RAW_CHARS, warnings),
        dateline=lead.dateline,
        author=_clip(parsed.author or lead.author, "author", MAX_AUTHOR_CHARS, warnings),
        language=_language(parsed.language, text, warnings),
        word_count=count_words(text),
        canonical_hash=canonical_hash(text),
        format=parsed.format,
        encoding=decoded.encoding,
        metadata=parsed.metadata,
        producer_tags=parsed.tags,
        warnings=warnings,
    )


def _clip(value: str | None, name: str, limit: int, warnings: list[str]) -> str | None:
    """A field cut to ``limit`` characters (at a space where one is near), with a warning."""
    if value is None or len(value) <= limit:
        return value
    cut = value[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    warnings.append(f"{name}: {len(value)} characters, cut to {limit}")
    return cut.rstrip(" ,;") + "…"


def _lead(body: str, fmt: str) -> Lead:
    """Byline and dateline at the start, or right after a headline line in plain text."""
    lead = split_lead(body)
    if lead.author or lead.dateline or fmt not in (TEXT, HEADER) or not first_line_title(body):
        return lead
    headline, _, rest = body.partition("\n\n")
    inner = split_lead(rest)
    if inner.author is None and inner.dateline is None:
        return lead
    return Lead(f"{headline}\n\n{inner.text}".strip(), inner.author, inner.dateline)


def _language(declared: str | None, text: str, warnings: list[str]) -> str:
    """A declared language wins when it is an ISO 639-1 code; otherwise detect it."""
    if declared:
        code = language_code(declared)
        if code:
            return code
        warnings.append(f"language: {declared!r} is not an ISO 639-1 code; detected from the text instead")
    return detect_language(text)
