"""The refactoring of normalisation into one module per format changed no output: every
sample of the formats that existed before it (and the example article) normalises to the
bytes recorded from the code before the change (``golden/normalised_before.json``).

Regenerate only on purpose: ``python -m tests.unit.test_formats_golden`` rewrites the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from worker.pipeline.normalise import normalise_records

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "examples" / "formats"
GOLDEN = Path(__file__).with_name("golden") / "normalised_before.json"
#: The samples of the formats seedworker read before the format package (text, header,
#: Markdown, JSON, JSON Lines, HTML); samples of later formats are not part of the record.
BEFORE = (
    "header.txt",
    "dateline.txt",
    "post.md",
    "post-toml.md",
    "story.json",
    "batch.jsonl",
    "page.html",
    "sniffed-page.txt",
    "sniffed-front-matter.txt",
)


def _outputs(path: Path) -> list[dict[str, object]]:
    return [
        {
            "record": record,
            "result": result.as_dict() if isinstance(result, Exception) else result.model_dump(mode="json"),
        }
        for record, result in normalise_records(path.read_bytes(), filename=path.name)
    ]


def _all() -> dict[str, list[dict[str, object]]]:
    return {"example": _outputs(EXAMPLE), **{name: _outputs(SAMPLES / name) for name in BEFORE}}


@pytest.mark.parametrize("name", ["example", *BEFORE])
def test_existing_formats_normalise_exactly_as_before(name: str) -> None:
    recorded = json.loads(GOLDEN.read_text(encoding="utf-8"))[name]
    now = _outputs(EXAMPLE) if name == "example" else _outputs(SAMPLES / name)
    assert json.dumps(now, sort_keys=True, ensure_ascii=False) == json.dumps(
        recorded, sort_keys=True, ensure_ascii=False
    )


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(_all(), indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
