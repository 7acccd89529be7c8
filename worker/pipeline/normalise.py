"""The normalise stage: raw bytes in, one typed ``NormalisedDocument`` (or many) out.

Pure and deterministic: no I/O, no clock, no globals that change the answer (a format's
time budget is the one exception: it only ever turns a pathological file into a failure).
Bad input raises (or, for ``normalise_records``, returns) an ``InputError`` subclass with a
stable reason code; anything else escaping from here is a bug.

Which format a file is in and how each format is parsed live in ``worker.pipeline.formats``;
this module turns what a parser found into documents.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from worker.errors import EmptyDocument, InputError, InvalidJSON, SeveralDocuments
from worker.models import Dateline, NormalisedDocument
from worker.pipeline.datelines import Lead, split_lead
from worker.pipeline.dates import parse_date
from worker.pipeline.decode import Decoded, decode
from worker.pipeline.formats import FALLBACK, Format, can_read, choose_bytes, choose_text
from worker.pipeline.formats.base import (
    HEADER,
    JSONL,
    MAX_RECORDS,
    TEXT,
    Declined,
    Embedded,
    Parsed,
    ParseResult,
    Source,
    first_line_title,
)
from worker.pipeline.language import detect_language, language_code
from worker.pipeline.textclean import canonical_hash, clean_text, count_words
from worker.pipeline.versions import MAX_ITEM_ID_CHARS, ItemVersion, item_identity_hash, version_number, version_time

__all__ = ["MAX_RECORDS", "canonical_hash", "normalise", "normalise_records"]

Record = tuple[int | None, NormalisedDocument | InputError]

#: Longest fields kept (the store's columns are sized for them; longer ones are cut, with a warning).
MAX_TITLE_CHARS = 1000
MAX_AUTHOR_CHARS = 300
MAX_DATE_RAW_CHARS = 200
MAX_DATELINE_RAW_CHARS = 300
_BYTES = Decoded("", "binary")


def normalise(raw: bytes, *, filename: str = "") -> NormalisedDocument:
    """One document.  Raises an InputError subclass, never anything else, for bad input.

    A file that holds several documents (JSON Lines, a feed, a news message, an email with
    attachments) is accepted only when it holds exactly one; use ``normalise_records`` for
    the general case.
    """
    fmt, result, decoded = _read(raw, filename)
    if isinstance(result, Parsed):
        return _document(result, decoded)
    records = _records(fmt, result, decoded)
    if len(records) != 1:
        error = InvalidJSON if fmt.name == JSONL else SeveralDocuments
        what = "JSON Lines file" if fmt.name == JSONL else f"{fmt.name} file"
        raise error(f"the {what} holds {len(records)} records, not one document", records=len(records))
    document = records[0][1]
    if isinstance(document, InputError):
        raise document
    return document


def normalise_records(raw: bytes, *, filename: str = "") -> list[tuple[int | None, NormalisedDocument | InputError]]:
    """Every document in a file.  Never raises InputError.

    For files of several records (.jsonl/.ndjson lines, feed items, NewsML-G2 items, an
    email and its attachments): one entry per record with its number (the 1-based line of a
    JSON Lines file, the 1-based position otherwise); a bad record gets its own InputError
    (naming the record) and does not affect the others.  For any other file: exactly one
    entry, ``(None, document-or-error)``.
    """
    try:
        fmt, result, decoded = _read(raw, filename)
        if isinstance(result, Parsed):
            return [(None, _document(result, decoded))]
        return _records(fmt, result, decoded)
    except InputError as error:
        return [(None, error)]


def _read(raw: bytes, filename: str, *, nested: bool = False) -> tuple[Format, ParseResult, Decoded]:
    """Pick the format (bytes formats before decoding, text formats after) and parse.

    ``nested``: the file is itself embedded (an attachment): its own attachments are not read.
    """
    fmt = choose_bytes(raw, filename)
    if fmt is not None:
        return fmt, fmt.parse(Source(raw, filename, can_read=can_read if not nested else _no_more)), _BYTES
    decoded = decode(raw)
    fmt = choose_text(raw, filename, decoded.text)
    source = Source(raw, filename, decoded.text)
    try:
        return fmt, fmt.parse(source), decoded
    except Declined:
        return FALLBACK, FALLBACK.parse(source), decoded


def _records(fmt: Format, results: list[tuple[int, Parsed | InputError | Embedded]], decoded: Decoded) -> list[Record]:
    records: list[Record] = []
    for number, result in results:
        try:
            if isinstance(result, InputError):
                raise result
            if isinstance(result, Embedded):
                records.append((number, _embedded(result)))
            else:
                records.append((number, _document(result, decoded)))
        except InputError as error:
            records.append((number, _name_record(error, fmt.record_name, number)))
    return records


def _embedded(embedded: Embedded) -> NormalisedDocument:
    """A file inside a file (an email attachment), as one document of its own format."""
    fmt, result, decoded = _read(embedded.raw, embedded.filename, nested=True)
    if not isinstance(result, Parsed):
        raise SeveralDocuments(
            f"the attachment {embedded.filename!r} is a {fmt.name} file of several documents; only"
            " single documents are read from attachments",
            filename=embedded.filename,
        )
    result.metadata.update(embedded.metadata)
    return _document(result, decoded)


def _no_more(raw: bytes, filename: str) -> bool:
    return False


def _name_record(error: InputError, noun: str, number: int) -> InputError:
    """Make sure a record's error says which record (``line 3``, ``item 7``) it is about."""
    if re.search(rf"\b{noun} {number}\b", error.message):
        return error
    return type(error)(f"{noun} {number}: {error.message}", **{**error.details, noun: number})


def _identity_hash(identity: str) -> str:
    """The exact-duplicate identity of an item that names itself (a feed item's guid)."""
    return hashlib.sha256(b"seedworker-item-identity\x00" + identity.encode("utf-8", "surrogatepass")).hexdigest()


def _document(parsed: Parsed, decoded: Decoded) -> NormalisedDocument:
    """Clean the body, take off byline and dateline, and fill every field of the document."""
    warnings = [*decoded.warnings, *parsed.warnings]
    lead = _lead(clean_text(parsed.body), parsed.format, parsed.title)
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
        dateline=_dateline(lead.dateline, parsed),
        author=_clip(parsed.author or lead.author, "author", MAX_AUTHOR_CHARS, warnings),
        language=_language(parsed.language, text, warnings),
        word_count=count_words(text),
        canonical_hash=_document_hash(parsed, text),
        format=parsed.format,
        encoding=parsed.encoding or decoded.encoding,
        metadata=parsed.metadata,
        producer_tags=parsed.tags,
        warnings=warnings,
        urgency=parsed.urgency,
        genre=parsed.genre,
        pubstatus=parsed.pubstatus,
        embargoed_until=parsed.embargoed,
        **_item_fields(parsed),
    )


def _item_fields(parsed: Parsed) -> dict[str, Any]:
    """A self-identified item's id and version (ninjs, NewsML-G2), for update detection."""
    item_id = (parsed.item_id or "")[:MAX_ITEM_ID_CHARS] or None
    if item_id is None:
        return {}
    return {
        "item_id": item_id,
        "item_version": version_number(parsed.item_version),
        "version_created": version_time(parsed.version_created),
    }


def _document_hash(parsed: Parsed, text: str) -> str:
    """What exact duplicates are found by: a feed item's guid, one version of a versioned item
    (so a new version with an unchanged body is still a new row), else the canonical text."""
    if parsed.identity:
        return _identity_hash(parsed.identity)
    fields = _item_fields(parsed)
    version = ItemVersion(fields.get("item_version"), fields.get("version_created"))
    if fields and version.known:
        return item_identity_hash(fields["item_id"], version)
    return canonical_hash(text)


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


def _lead(body: str, fmt: str, title: str | None) -> Lead:
    """Byline and dateline at the start, or right after a headline line: in plain text a
    short first line and a blank line; in any format a first line that is the title (an
    HTML page's ``<h1>``, a Word heading), so ``MILAN (AP) —`` under it is a dateline too."""
    lead = split_lead(body)
    if lead.author or lead.dateline:
        return lead
    if fmt in (TEXT, HEADER) and first_line_title(body):
        headline, _, rest = body.partition("\n\n")
        inner = split_lead(rest)
        if inner.author is not None or inner.dateline is not None:
            return Lead(f"{headline}\n\n{inner.text}".strip(), inner.author, inner.dateline)
    if title:
        headline, _, rest = body.partition("\n")
        if " ".join(headline.split()).casefold() == " ".join(title.split()).casefold():
            gap = "\n\n" if rest.startswith("\n") else "\n"
            inner = split_lead(rest.lstrip("\n"))
            if inner.author is not None or inner.dateline is not None:
                return Lead(f"{headline}{gap}{inner.text}".strip(), inner.author, inner.dateline)
    return lead


def _dateline(found: Dateline | None, parsed: Parsed) -> Dateline | None:
    """The dateline of the text, else the provider's (NewsML-G2 ``dateline``/``located``,
    ninjs ``located``); its country from the gazetteer entity tagging uses."""
    dateline = found
    if dateline is None and parsed.dateline_raw:
        raw = parsed.dateline_raw[:MAX_DATELINE_RAW_CHARS]
        probe = split_lead(f"{raw} — x").dateline
        place = probe.place if probe else parsed.located
        agency = probe.agency if probe else None
        dateline = Dateline(place=place, country=probe.country if probe else None, agency=agency, raw=raw)
    elif dateline is None and parsed.located:
        located = parsed.located[:MAX_DATELINE_RAW_CHARS]
        dateline = Dateline(place=located, raw=located)
    if dateline is None or dateline.place is None:
        return dateline
    return dateline.model_copy(update={"country": place_country(dateline.place, dateline.country)})


def place_country(place: str, written: str | None) -> str | None:
    """The ISO 3166 code of a dateline's country: of the country written in it ("KYIV,
    Ukraine" -> UA), else of its place (WASHINGTON -> US), looked up in the same gazetteer
    (``worker.pipeline.entities``) that gives place entities their country; what was
    written when the gazetteer knows neither."""
    from worker.pipeline.entities import default_gazetteer

    gazetteer = default_gazetteer()
    for name in (written, place):
        found = gazetteer.lookup(name) if name else None
        if found is not None and found.country:
            return found.country
    return written


def _language(declared: str | None, text: str, warnings: list[str]) -> str:
    """A declared language wins when it is an ISO 639-1 code; otherwise detect it."""
    if declared:
        code = language_code(declared)
        if code:
            return code
        warnings.append(f"language: {declared!r} is not an ISO 639-1 code; detected from the text instead")
    return detect_language(text)
