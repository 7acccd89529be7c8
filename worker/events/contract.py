"""The published shape of every event: JSON Schemas per type, generated from the models.

The schemas ship in the package and are what consumers in any language validate against:
``worker/events/schemas/<type>.data.json`` is the schema of ``data``, the one an event's
``dataschema`` attribute names (CloudEvents: "the schema that data adheres to");
``<type>.json`` is the schema of the whole event, envelope and data.  ``breaking_changes`` compares a shipped schema
with the one the models produce today, from a consumer's point of view: old events (replayed
from the outbox) must still validate under the new schema and new events under the old one,
so removing, renaming or retyping a field, or changing whether it is required, is breaking;
adding an optional field is not (consumers must ignore fields they do not know, so the
schemas never say ``additionalProperties: false``).
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from worker.errors import ConfigError
from worker.events.cloudevents import DATA_MODELS, SCHEMA_VERSION, TYPE_PREFIX, dataschema_uri, envelope_schema_uri

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
VERSION_KEY = "x-seedworker-schema-version"
#: Keys that document a schema without constraining the JSON it accepts.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment", "$id", "$schema", VERSION_KEY})

Schema = dict[str, Any]
#: Key (and file name stem) of the data schema of an event type: ``document.stored.data``.
DATA_SUFFIX = ".data"


def schema_dir() -> Path:
    return Path(str(resources.files("worker.events").joinpath("schemas")))


def event_schema(name: str, data_model: type[BaseModel] | None = None, version: int = SCHEMA_VERSION) -> Schema:
    """The CloudEvents 1.0 structured-mode envelope of one event type, with ``data`` typed."""
    model = data_model or DATA_MODELS[name]
    data = model.model_json_schema(mode="validation")
    defs = data.pop("$defs", None)
    data = _open(data)
    envelope: Schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": envelope_schema_uri(name, version),
        "title": TYPE_PREFIX + name,
        "description": f"A CloudEvents 1.0 event (structured JSON) of type {TYPE_PREFIX + name}. "
        "Consumers must ignore attributes and data fields they do not know.",
        VERSION_KEY: version,
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "description": "Stable per outcome; drop repeats by id."},
            "source": {"type": "string", "minLength": 1},
            "type": {"const": TYPE_PREFIX + name},
            "subject": {"type": "string", "minLength": 1, "description": "The document (or failure) id."},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {
                "type": "string",
                "description": "The schema data adheres to: urn:seedworker:schema:events:v<N>:<type>.data",
            },
            "data": data,
        },
    }
    if defs:
        envelope["$defs"] = {k: _open(v) for k, v in defs.items()}
    return envelope


def data_schema(name: str, data_model: type[BaseModel] | None = None, version: int = SCHEMA_VERSION) -> Schema:
    """The schema of ``data`` alone, with ``$id`` = the ``dataschema`` of the event type."""
    model = data_model or DATA_MODELS[name]
    body = model.model_json_schema(mode="validation")
    defs = body.pop("$defs", None)
    schema: Schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": dataschema_uri(name, version),
        "title": f"data of {TYPE_PREFIX + name}",
        "description": f"The data of a CloudEvent of type {TYPE_PREFIX + name}, named by its dataschema. "
        "Consumers must ignore fields they do not know.",
        VERSION_KEY: version,
        **{k: v for k, v in _open(body).items() if k not in ("title", "description")},
    }
    if defs:
        schema["$defs"] = {k: _open(v) for k, v in defs.items()}
    return schema


def _open(schema: Any) -> Any:
    """Drop ``additionalProperties: false`` (pydantic's extra=forbid): new optional fields must not break readers."""
    if isinstance(schema, dict):
        return {k: _open(v) for k, v in schema.items() if not (k == "additionalProperties" and v is False)}
    if isinstance(schema, list):
        return [_open(v) for v in schema]
    return schema


def generate() -> dict[str, Schema]:
    """Every shipped schema by key: ``<type>`` (the whole event) and ``<type>.data`` (its data)."""
    out: dict[str, Schema] = {}
    for name in sorted(DATA_MODELS):
        out[name] = event_schema(name)
        out[name + DATA_SUFFIX] = data_schema(name)
    return out


def by_uri(schemas: dict[str, Schema]) -> dict[str, Schema]:
    """The same schemas keyed by ``$id``: what a ``dataschema`` attribute is looked up by."""
    return {str(s["$id"]): s for s in schemas.values()}


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def load_shipped(directory: Path | None = None) -> dict[str, Schema]:
    directory = directory or schema_dir()
    if not directory.is_dir():
        return {}
    return {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What in ``new`` would break a consumer built on ``old`` (empty: compatible)."""
    return _diff(_deref(old, old), _deref(new, new), "")


def check_against_shipped(
    shipped: dict[str, Schema], generated: dict[str, Schema], version: int = SCHEMA_VERSION
) -> list[str]:
    """Breaking differences not covered by a version bump (empty: safe to ship)."""
    problems: list[str] = []
    for name, old in shipped.items():
        old_version = int(old.get(VERSION_KEY, 0))
        if old_version > version:
            problems.append(f"{name}: shipped schema is v{old_version}, newer than SCHEMA_VERSION {version}")
            continue
        if old_version < version:
            continue  # a deliberate major bump: anything goes
        if name not in generated:
            problems.append(f"{name}: event type removed")
            continue
        problems += [f"{name}: {p}" for p in breaking_changes(old, generated[name])]
    return problems


def write(directory: Path | None = None) -> list[Path]:
    """Regenerate the shipped files; refuses a breaking change without a SCHEMA_VERSION bump."""
    directory = directory or schema_dir()
    generated = generate()
    problems = check_against_shipped(load_shipped(directory), generated)
    if problems:
        raise ConfigError(
            "the event models break the shipped schemas; bump SCHEMA_VERSION in "
            "worker/events/cloudevents.py (and say so in docs/events.md):\n  " + "\n  ".join(problems)
        )
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generated.items():
        path = directory / f"{name}.json"
        text = render(schema)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def _deref(node: Any, root: Schema) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = copy.deepcopy(root["$defs"][ref.removeprefix("#/$defs/")])
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _deref({**target, **rest}, root)
        return {k: _deref(v, root) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_deref(v, root) for v in node]
    return node


def _diff(old: Any, new: Any, path: str) -> list[str]:
    where = path or "(root)"
    if isinstance(old, dict) and isinstance(new, dict):
        problems: list[str] = []
        if "properties" in old or "properties" in new:
            old_props, new_props = old.get("properties", {}), new.get("properties", {})
            old_req, new_req = set(old.get("required", [])), set(new.get("required", []))
            for key, sub in old_props.items():
                field = f"{path}.{key}" if path else key
                if key not in new_props:
                    problems.append(f"{field}: removed")
                    continue
                if (key in old_req) != (key in new_req):
                    problems.append(f"{field}: {'no longer required' if key in old_req else 'now required'}")
                problems += _diff(sub, new_props[key], field)
            for key in new_props.keys() - old_props.keys():
                if key in new_req:
                    problems.append(f"{path + '.' if path else ''}{key}: new required field")
        for key in sorted((old.keys() | new.keys()) - _ANNOTATIONS - {"properties", "required"}):
            if key not in new:
                problems.append(f"{where}: constraint {key!r} removed")
            elif key not in old:
                problems.append(f"{where}: constraint {key!r} added")
            else:
                problems += _diff(old[key], new[key], f"{path}/{key}" if key not in ("items",) else f"{path}[]")
        return problems
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [p for i, (a, b) in enumerate(zip(old, new, strict=True)) for p in _diff(a, b, f"{path}[{i}]")]
    if old != new:
        return [f"{where}: {json.dumps(old)} -> {json.dumps(new)}"]
    return []
