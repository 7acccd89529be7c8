"""The format package's structure: one table of formats that the docs are checked against,
and parsers that stand on the shared layer, never on each other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from worker.errors import REASON_CODES
from worker.pipeline.formats import FORMATS, table

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "worker" / "pipeline" / "formats"
#: Modules of the package every parser may use: the shared type, helpers and safe readers.
SHARED = {"base", "markup", "xmlsafe", "provider"}
BEGIN, END = "<!-- formats-table:begin -->", "<!-- formats-table:end -->"


def test_docs_table_of_formats_is_the_registry() -> None:
    doc = (REPO / "docs" / "formats.md").read_text(encoding="utf-8")
    assert BEGIN in doc and END in doc, "docs/formats.md lost its generated table of formats"
    written = doc.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert written == table(), "docs/formats.md's table differs: run python -m worker.pipeline.formats"


def test_every_format_names_real_reason_codes_and_unique_extensions() -> None:
    seen: dict[str, str] = {}
    for fmt in FORMATS:
        assert set(fmt.failures) <= set(REASON_CODES), fmt.name
        for ext in fmt.extensions:
            assert ext not in seen, f"{ext} claimed by {seen[ext]} and {fmt.name}"
            seen[ext] = fmt.name
    assert len({fmt.name for fmt in FORMATS}) == len(FORMATS)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_parser_imports_another_parser_or_the_stage_above_it() -> None:
    parsers = {p.stem for p in PACKAGE.glob("*.py")} - SHARED - {"__init__", "__main__"}
    assert parsers, "no parser modules found"
    for path in PACKAGE.glob("*.py"):
        if path.stem in ("__init__", "__main__"):
            continue
        imported = _imports(path)
        bad = sorted(
            m
            for m in imported
            if m in ("worker.pipeline.formats", "worker.pipeline.normalise")
            or (m.startswith("worker.pipeline.formats.") and m.rsplit(".", 1)[1] in parsers)
        )
        assert not bad, f"{path.name} imports {bad}: parsers share only {sorted(SHARED)}"


def test_the_shared_layer_imports_no_parser() -> None:
    for name in SHARED:
        path = PACKAGE / f"{name}.py"
        if path.exists():
            assert not any(re.match(r"worker\.pipeline\.formats\.(?!base$|markup$)", m) for m in _imports(path)), name
