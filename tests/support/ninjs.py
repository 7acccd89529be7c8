"""The part of IPTC ninjs 2.1 that ``worker.export.ninjs`` writes, as a JSON Schema written
from the specification (http://www.iptc.org/std/ninjs/ninjs-schema_2.1.json, read December
2026): each property's type, enumeration and range as the specification gives them, and no
other property (the 2.1 schema admits none: ``unevaluatedProperties: false``).  The IPTC
file itself is not shipped; this is what the renderer is held to."""

from __future__ import annotations

from typing import Any

_STR: dict[str, Any] = {"type": "string"}
_DATE_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}


def _objects(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": properties,
            "required": list(required),
            "additionalProperties": False,
        },
    }


_CONCEPT = {"name": _STR, "rel": _STR, "uri": _STR, "literal": _STR}

NINJS_21_EMITTED: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["uri"],
    "additionalProperties": False,
    "properties": {
        "uri": _STR,
        "standard": {
            "type": "object",
            "properties": {"name": _STR, "version": _STR, "schema": _STR},
            "additionalProperties": False,
        },
        "type": {"enum": ["text", "audio", "video", "picture", "graphic", "composite", "component"]},
        "representationtype": {"enum": ["full", "partial"]},
        "version": _STR,
        "versioncreated": _DATE_TIME,
        "firstcreated": _DATE_TIME,
        "embargoed": _DATE_TIME,
        "pubstatus": {"enum": ["usable", "withheld", "canceled"]},
        "urgency": {"type": "integer", "minimum": 1, "maximum": 9},
        "language": _STR,
        "headlines": _objects({"role": _STR, "contenttype": _STR, "value": _STR}, ("value",)),
        "by": _STR,
        "located": _STR,
        "slugline": _STR,
        "bodies": _objects(
            {
                "role": _STR,
                "contenttype": _STR,
                "charcount": {"type": "number"},
                "wordcount": {"type": "number"},
                "value": _STR,
            },
            ("value",),
        ),
        "copyrightholder": _STR,
        "copyrightnotice": _STR,
        "usageterms": _STR,
        "genres": _objects({"name": _STR, "uri": _STR, "literal": _STR}),
        "subjects": _objects(
            {
                **_CONCEPT,
                "creator": _STR,
                "relevance": {"type": "integer", "minimum": 0, "maximum": 100},
                "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
            }
        ),
        "people": _objects(_CONCEPT),
        "organisations": _objects(_CONCEPT),
        "places": _objects(_CONCEPT),
        "altids": _objects({"role": _STR, "value": _STR}),
    },
}


def ninjs_problems(item: dict[str, Any]) -> list[str]:
    """What in ``item`` breaks the emitted part of ninjs 2.1 (formats checked too)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(NINJS_21_EMITTED, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(item)]


def store_file(store: Any, raw: bytes, filename: str, extra_tags: tuple[Any, ...] = ()) -> list[str]:
    """Normalise a file as the worker does and store each document with its provider
    subject tags (and ``extra_tags``); the ids of the stored documents."""
    from worker.models import FileSummary, IngestRequest, NormalisedDocument, PipelineBatch, StageItem
    from worker.pipeline.normalise import normalise_records
    from worker.pipeline.tag import provider_subjects

    request = IngestRequest.from_bytes(raw, filename=filename, idempotency_key=f"k-{filename}")
    batch = PipelineBatch(request=request, key=f"k-{filename}", summary=FileSummary.of(filename, raw))
    ids = []
    for record, doc in normalise_records(raw, filename=filename):
        if isinstance(doc, NormalisedDocument):
            item = StageItem(record=record, document=doc, tags=[*provider_subjects(doc), *extra_tags])
            outcome = store.persist_document(batch, item, raw)
            if outcome.status == "stored":
                ids.append(outcome.document_id)
    return ids


def date_time_problems(item: dict[str, Any]) -> list[str]:
    """ninjs date-times must be RFC 3339 with an offset (the schema's ``format: date-time``)."""
    import datetime as dt

    problems = []
    for key in ("versioncreated", "firstcreated", "embargoed"):
        if key in item:
            try:
                parsed = dt.datetime.fromisoformat(item[key])
            except ValueError:
                problems.append(f"{key}: {item[key]!r} is not a date-time")
                continue
            if parsed.tzinfo is None or "T" not in item[key]:
                problems.append(f"{key}: {item[key]!r} has no offset or no time")
    return problems
