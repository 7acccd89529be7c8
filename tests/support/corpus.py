"""Generated inputs with known outcomes: many distinct articles with exact copies and failing
files among them (the scale and routing tests), and rewrites of an article that the
near-duplicate index must recognise (the dedup tests)."""

from __future__ import annotations

import random
from collections import Counter

from tests.support.paths import EXAMPLE

DUPLICATE_SHARE = 0.25  # exact copies of earlier articles under new names
FAILING_SHARE = 0.025  # empty or binary files


def _vocabulary() -> list[str]:
    words = {w.strip(".,;:()“”\"'’—-").lower() for w in EXAMPLE.read_text(encoding="utf-8").split()}
    return sorted(w for w in words if w.isalpha() and len(w) > 2)


def _article(rng: random.Random, vocab: list[str], number: int) -> bytes:
    paragraphs = []
    for _ in range(3):
        sentences = []
        for _ in range(rng.randint(3, 5)):
            words = rng.choices(vocab, k=rng.randint(9, 16))
            sentences.append(" ".join(words).capitalize() + ".")
        paragraphs.append(" ".join(sentences))
    title = f"Report {number}: " + " ".join(rng.choices(vocab, k=5))
    return (title + "\n\n" + "\n\n".join(paragraphs) + "\n").encode()


def generate(count: int, seed: int = 7) -> tuple[dict[str, bytes], Counter[str]]:
    """``count`` files by name, and how many of them should end stored/duplicate/failed."""
    rng = random.Random(seed)
    vocab = _vocabulary()
    failing = max(1, int(count * FAILING_SHARE))
    duplicates = int(count * DUPLICATE_SHARE)
    distinct = count - failing - duplicates
    files: dict[str, bytes] = {}
    articles = [_article(rng, vocab, i) for i in range(distinct)]
    for i, body in enumerate(articles):
        files[f"article-{i:05d}.txt"] = body
    for i in range(duplicates):
        files[f"copy-{i:05d}.txt"] = rng.choice(articles)
    for i in range(failing):
        files[f"bad-{i:05d}.txt"] = b"" if i % 2 else b"\x00\x01\x02 not text \x00" * 8
    expected: Counter[str] = Counter(stored=distinct, duplicate=duplicates, failed=failing)
    return files, expected


def near_copy(text: str, seed: int = 1) -> str:
    """A rewrite: new dateline and byline, one sentence changed, a boilerplate line added."""
    rng = random.Random(seed)
    body = text.replace("WASHINGTON (AP) —", "WASHINGTON (Reuters) -", 1)
    paragraphs = body.split("\n\n")
    i = rng.randrange(2, len(paragraphs) - 2)
    paragraphs[i] = "Officials declined to comment further on the talks, citing the sensitivity of the matter."
    return "By Staff Writer\n\n" + "\n\n".join(paragraphs) + "\n\nCopyright 2024 Example News. All rights reserved."


def typo_copy(text: str, seed: int) -> str:
    """A light rewrite: another byline and three typos, different for every seed."""
    rng = random.Random(seed)
    words = text.split(" ")
    for _ in range(3):
        i = rng.randrange(20, len(words))
        words[i] = words[i][::-1] + "x"
    return f"By Reporter {seed}\n\n" + " ".join(words)
