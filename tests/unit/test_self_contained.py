"""The repository is self-contained: a user's clone has nothing beside it.

CI clones the repository next to a folder of helper material; anything that reads it passes
there and fails for every user.  This test fails when a tracked file names that folder.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Built from parts so that this file does not match itself.
_OUTSIDE = re.compile(r"\.\./" + r"shared|parent\s*/\s*\"" + r"shared\"|[\"']\.\.[\"'],\s*[\"']" + r"shared[\"']")


def _tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False, text=True
    ).stdout.split("\0")
    files = [REPO / name for name in listed if name]
    if not files:  # not a git checkout (an sdist): scan the tree
        files = [p for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]
    return files


def test_no_file_reads_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if not path.is_file() or path.suffix in {".lock", ".ftz", ".db"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if _OUTSIDE.search(text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == [], f"these files refer to a folder outside the repository: {offenders}"


def test_the_example_article_ships_inside_the_repository() -> None:
    example = REPO / "examples" / "articles" / "000_fd88bd66912dc591.txt"
    raw = example.read_bytes()
    assert raw.startswith(b" date 2024-02-06 WASHINGTON (AP)")
    assert not raw.endswith(b"\n")
