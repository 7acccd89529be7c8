"""JSON documents: one object per .json file, one object per line of a .jsonl file.

The text is the first non-empty string among ``text``, ``body`` and ``content``; known
fields (title, date, author, tags, url, source, language) fill the document and the rest
is kept as metadata.  Parsing is strict JSON: NaN, Infinity and absurdly deep nesting are
refused with the position, instead of surfacing later as a serializer or stack error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NoReturn

from worker.errors import EmptyDocument, InputError, InvalidJSON, MissingText, TooLarge
from worker.pipeline.formats.base import JSON, JSONL, MAX_RECORDS, Format, Parsed, Records, apply_fields, never

TEXT_FIELDS = ("text", "body", "content")


def parse_json(text: str, *, fmt: str = JSON, line: int | None = None) -> Parsed:
    """One JSON object as a document; ``line`` (1-based) names a JSON Lines record."""
    value = _loads(text, line)
    where = f"line {line}" if line is not None else "the JSON"
    if not isinstance(value, dict):
        raise MissingText(
            f"{where} holds {_kind(value)}, not an object with a text, body or content field",
            **_line(line),
        )
    key = next((k for k in TEXT_FIELDS if isinstance(value.get(k), str) and value[k].strip()), None)
    if key is None:
        keys = ", ".join(sorted(map(str, value))[:20]) or "none"
        raise MissingText(
            f"{where} has no non-empty text, body or content string field (fields: {keys})",
            **_line(line),
        )
    parsed = Parsed(fmt, value[key])
    apply_fields(parsed, {k: v for k, v in value.items() if k != key})
    return parsed


def parse_json_lines(text: str) -> Records:
    """One record per non-blank line; a bad line is its own failure, naming the line."""
    if count_records(text, MAX_RECORDS) > MAX_RECORDS:
        raise TooLarge(
            f"the JSON Lines file holds more than {MAX_RECORDS} records, the most one file may hold;"
            " split it into smaller files",
            limit=MAX_RECORDS,
        )
    records: Records = []
    for number, line in json_lines(text):
        try:
            records.append((number, parse_json(line, fmt=JSONL, line=number)))
        except InputError as error:
            records.append((number, error))
    if not records:
        raise EmptyDocument("the JSON Lines file holds only blank lines")
    return records


def json_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for every non-blank line, without splitting the whole text."""
    start, number = 0, 1
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        line = text[start:end]
        if line.strip():
            yield number, line
        start, number = end + 1, number + 1


def count_records(text: str, limit: int) -> int:
    """Non-blank lines, counted only up to ``limit + 1`` (enough to know it is over)."""
    if text.count("\n") < limit:
        return limit  # cannot be over: at most limit lines
    count = 0
    for _ in json_lines(text):
        count += 1
        if count > limit:
            break
    return count


def _loads(text: str, line: int | None) -> Any:
    where = f"line {line} is" if line is not None else "the file is"
    try:
        return json.loads(text.lstrip("\ufeff"), parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        position = f"column {exc.colno}" if line is not None else f"line {exc.lineno}, column {exc.colno}"
        raise InvalidJSON(
            f"{where} not valid JSON: {exc.msg} at {position}",
            **_line(line),
            **({} if line is not None else {"line": exc.lineno}),
            column=exc.colno,
        ) from None
    except RecursionError:
        raise InvalidJSON(f"{where} not readable: its JSON is nested too deeply", **_line(line)) from None
    except ValueError as exc:  # NaN/Infinity, or an integer with thousands of digits
        raise InvalidJSON(f"{where} not valid JSON: {exc}", **_line(line)) from None


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed in JSON")


def _kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}
    return "null" if value is None else names.get(type(value), "a number")


def _line(line: int | None) -> dict[str, int]:
    return {"line": line} if line is not None else {}


JSON_FORMAT = Format(
    name=JSON,
    label="JSON (`json`)",
    sniff=never,
    parse=lambda source: parse_json(source.text),
    extensions=(".json",),
    recognised="`.json` (unless it is ninjs)",
    fields="first non-empty `text`/`body`/`content` → text; title/headline, date/published, author/byline,"
    " language, tags/keywords → their fields; url, source and every other key → metadata",
    failures=("invalid_json", "missing_text"),
)
JSONL_FORMAT = Format(
    name=JSONL,
    label="JSON Lines (`jsonl`)",
    sniff=never,
    parse=lambda source: parse_json_lines(source.text),
    extensions=(".jsonl", ".ndjson"),
    record_name="line",
    recognised="`.jsonl`, `.ndjson`",
    fields="each non-blank line is a JSON document (as `json`), record = its line number",
    failures=("invalid_json", "missing_text", "too_large", "empty"),
)
