"""The samples of the formats that existed before the format package (and the example
article) normalise to the bytes recorded in ``golden/normalised.json``.

Recorded from the code before normalisation became a package (the refactoring passed
against it unchanged), then re-recorded once on purpose for issue 17 §7: a dateline's
``country`` is the gazetteer's ISO code (Washington -> US, "KYIV, Ukraine" -> UA), and an
HTML page's ``MILAN (AP) —`` under its headline is a dateline, no longer text.
Regenerate only on purpose: ``python -m tests.unit.test_formats_golden`` rewrites the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.paths import EXAMPLE
from worker.pipeline.normalise import normalise_records

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "examples" / "formats"
GOLDEN = Path(__file__).with_name("golden") / "normalised.json"
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

#: Document fields added after the record (issue 22, updates: a versioned item's id and
#: version): left out of the comparison, and None for every one of these formats.
ADDED_SINCE = frozenset({"item_id", "item_version", "version_created"})


#: Document fields added after the record, which these formats never fill (issue 22's news
#: fields come from ninjs and NewsML-G2 only): checked to be null, then left out of the comparison.
ADDED_LATER = ("urgency", "genre", "pubstatus", "embargoed_until", *sorted(ADDED_SINCE))


def _document(result: object) -> dict[str, object]:
    dumped = result.model_dump(mode="json")  # type: ignore[attr-defined]
    for name in ADDED_LATER:
        assert dumped.pop(name) is None, f"{name} is set for a format that has no such field"
    return dict(dumped)


def _outputs(path: Path) -> list[dict[str, object]]:
    return [
        {
            "record": record,
            "result": result.as_dict() if isinstance(result, Exception) else _document(result),
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
