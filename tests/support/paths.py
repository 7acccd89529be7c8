"""Where the repository and its example corpus are, for tests in any folder."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "examples" / "articles"
EXAMPLE = CORPUS / "000_fd88bd66912dc591.txt"
