"""The published event schemas: current, compatible, and honest about breaking changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import create_model

from worker.errors import ConfigError
from worker.events import contract
from worker.events.cloudevents import (
    DATA_MODELS,
    SCHEMA_VERSION,
    DocumentDeletedData,
    DocumentDuplicateData,
    DocumentRetaggedData,
    TagData,
    dataschema_uri,
    make_event,
)

REGENERATE = "run `seedworker schema events --write` and commit worker/events/schemas/"


def test_shipped_schema_files_are_current() -> None:
    shipped = contract.load_shipped()
    generated = contract.generate()
    assert sorted(shipped) == sorted(generated), REGENERATE
    for name, schema in generated.items():
        text = (contract.schema_dir() / f"{name}.json").read_text()
        assert text == contract.render(schema), f"{name}.json is stale: {REGENERATE}"


def test_models_do_not_break_the_shipped_schemas_without_a_version_bump() -> None:
    problems = contract.check_against_shipped(contract.load_shipped(), contract.generate())
    assert problems == [], "breaking change without a SCHEMA_VERSION bump:\n" + "\n".join(problems)


def test_every_schema_carries_the_current_version_and_is_valid_json_schema() -> None:
    for name, schema in contract.load_shipped().items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema[contract.VERSION_KEY] == SCHEMA_VERSION
        if name.endswith(contract.DATA_SUFFIX):
            assert "specversion" not in schema["properties"]
        else:
            assert schema["properties"]["type"]["const"] == "org.seedworker." + name


def test_every_event_type_ships_a_data_schema_named_by_its_dataschema() -> None:
    """CloudEvents: dataschema names the schema that ``data`` adheres to, not the envelope's."""
    by_uri = contract.by_uri(contract.load_shipped())
    for name in DATA_MODELS:
        schema = by_uri[dataschema_uri(name)]
        assert schema["required"] == contract.load_shipped()[name]["properties"]["data"]["required"]
        assert dataschema_uri(name) != contract.load_shipped()[name]["$id"]


# -- the checker itself, on variants of a real model ---------------------------------------------
Base = DocumentDuplicateData


def _variant(**fields: Any) -> type[Any]:
    """DocumentDuplicateData with fields replaced (None removes one)."""
    spec: dict[str, Any] = {}
    for name, info in Base.model_fields.items():
        spec[name] = (info.annotation, info)
    for name, value in fields.items():
        if value is None:
            spec.pop(name)
        else:
            spec[name] = value
    return create_model("DocumentDuplicateData", __config__=Base.model_config, **spec)


def _problems(model: type[Any], version: int = SCHEMA_VERSION) -> list[str]:
    old = {"document.duplicate": contract.event_schema("document.duplicate")}
    new = {"document.duplicate": contract.event_schema("document.duplicate", model, version)}
    return contract.check_against_shipped(old, new, version)


def test_adding_an_optional_field_is_not_breaking() -> None:
    assert _problems(_variant(cluster_ref=(str | None, None))) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"filename": None}, "data.filename: removed"),
        ({"filename": None, "file_name": (str, ...)}, "data.filename: removed"),
        ({"similarity": (str, ...)}, "data.similarity"),
        ({"kind": (Literal["exact", "near", "fuzzy"], ...)}, "data.kind"),
        ({"id": (str | None, None)}, "data.id: no longer required"),
        ({"cluster_ref": (str, ...)}, "data.cluster_ref: new required field"),
        ({"raw_sha256": (str | None, ...)}, "data.raw_sha256"),
    ],
    ids=["removed", "renamed", "retyped", "enum-widened", "required-to-optional", "new-required", "now-nullable"],
)
def test_breaking_changes_are_caught(change: dict[str, Any], expected: str) -> None:
    problems = _problems(_variant(**change))
    assert any(expected in p for p in problems), problems


def test_making_an_optional_field_required_is_caught() -> None:
    from worker.events.cloudevents import DocumentStoredData

    old = {"document.stored": contract.event_schema("document.stored")}
    spec: dict[str, Any] = {n: (i.annotation, i) for n, i in DocumentStoredData.model_fields.items()}
    spec["story_id"] = (str | None, ...)
    model = create_model("DocumentStoredData", __config__=DocumentStoredData.model_config, **spec)
    new = {"document.stored": contract.event_schema("document.stored", model)}
    assert "document.stored: data.story_id: now required" in contract.check_against_shipped(old, new)


def test_a_version_bump_allows_a_breaking_change() -> None:
    assert _problems(_variant(filename=None), version=SCHEMA_VERSION + 1) == []


def test_a_removed_event_type_is_breaking() -> None:
    old = {"document.gone": contract.event_schema("document.duplicate")}
    assert contract.check_against_shipped(old, {}) == ["document.gone: event type removed"]


def test_write_refuses_a_breaking_change_and_writes_compatible_ones(tmp_path: Path) -> None:
    assert {p.name for p in contract.write(tmp_path)} == {f"{n}{s}.json" for n in DATA_MODELS for s in ("", ".data")}
    assert contract.write(tmp_path) == []  # idempotent
    path = tmp_path / "document.duplicate.json"
    schema = contract.load_shipped(tmp_path)["document.duplicate"]
    schema["properties"]["data"]["properties"]["colour"] = {"type": "string"}
    schema["properties"]["data"]["required"].append("colour")
    path.write_text(contract.render(schema))
    with pytest.raises(ConfigError, match="colour: removed"):
        contract.write(tmp_path)


# -- events as emitted validate against the shipped schemas -----------------------------------------
def _validate(event: dict[str, Any]) -> None:
    """The whole event against the envelope schema, ``data`` against the schema its dataschema names."""
    name = event["type"].removeprefix("org.seedworker.")
    shipped = contract.load_shipped()
    checker = jsonschema.FormatChecker()
    jsonschema.Draft202012Validator(shipped[name], format_checker=checker).validate(event)
    data_schema = contract.by_uri(shipped)[event["dataschema"]]
    jsonschema.Draft202012Validator(data_schema, format_checker=checker).validate(event["data"])


def test_events_without_a_store_path_yet_validate() -> None:
    tag = TagData(kind="topic", name="economy")
    events = [
        make_event(
            "document.retagged",
            key="retag:1:doc_1",
            subject="doc_1",
            source="urn:test",
            data=DocumentRetaggedData(id="doc_1", added=[tag], removed=[], run_id="r1", reason="taxonomy changed"),
        ),
        make_event(
            "document.deleted",
            key="delete:doc_1",
            subject="doc_1",
            source="urn:test",
            data=DocumentDeletedData(id="doc_1", canonical_hash="ab" * 32, reason="operator"),
        ),
    ]
    for event in events:
        payload = event.model_dump(mode="json")
        _validate(payload)
        assert payload["dataschema"] == f"urn:seedworker:schema:events:v{SCHEMA_VERSION}:{payload['type'][15:]}.data"


def test_a_wrong_event_fails_validation() -> None:
    event = make_event(
        "document.deleted",
        key="k",
        subject="doc_1",
        source="urn:test",
        data=DocumentDeletedData(id="doc_1", canonical_hash="x", reason="r"),
    ).model_dump(mode="json")
    event["data"].pop("reason")
    with pytest.raises(jsonschema.ValidationError, match="reason"):
        _validate(event)
    event["data"]["reason"] = "r"
    event["specversion"] = "0.3"
    with pytest.raises(jsonschema.ValidationError):
        _validate(event)
