"""docs/operations.md lists every setting with its default and description, generated from
``worker.settings.Settings`` so the two cannot drift: this test fails when they differ.

Regenerate the table after changing a setting: ``UPDATE_DOCS=1 pytest -k settings_docs``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from worker.settings import ENV_PREFIX, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
START = "<!-- settings table: generated from worker/settings.py -->\n"
END = "<!-- end of settings table -->\n"


def _default(value: Any) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool | list | dict):
        return json.dumps(value)
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value) or "(empty)"


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | `{_default(default)}` | {field.description or ''} |")
    return "\n".join(rows) + "\n"


def test_operations_md_lists_every_setting() -> None:
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    current, tail = rest.split(END, 1)
    wanted = settings_table()
    if os.environ.get("UPDATE_DOCS") == "1":
        DOC.write_text(head + START + wanted + END + tail, encoding="utf-8")
        current = wanted
    assert current == wanted, "docs/operations.md settings table is stale: run UPDATE_DOCS=1 pytest -k settings_docs"
