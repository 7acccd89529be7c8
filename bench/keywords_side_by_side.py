"""Keywords old and new on 20 articles, as the markdown table in docs/benchmarks.md
("Keywords: old and new, side by side").

Old: YAKE through yake-rust 1.2.1 with the filters the extractor had until 3 Dec 2026 (no
all-capitalised candidates, none inside a better-ranked one).  yake-rust is no longer a
dependency: ``pip install yake-rust==1.2.1`` into the virtualenv for the old column (the
script prints "(yake-rust not installed)" there otherwise).  New: ``PhraseKeywords``.

    python -m bench.keywords_side_by_side > /tmp/side_by_side.md
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import corpus
from worker.errors import InputError
from worker.models import NormalisedDocument
from worker.pipeline.keywords import PhraseKeywords
from worker.pipeline.normalise import normalise_records

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GENERATED = (0, 57, 113, 170, 226, 283, 339)


def documents() -> list[tuple[str, NormalisedDocument]]:
    """The shipped example article, the first document of each shipped format example
    (13), and 7 generated benchmark articles: 20 in all."""
    files = [(p.name, p.read_bytes()) for p in sorted((EXAMPLES / "articles").glob("*.txt"))]
    files += [(p.name, p.read_bytes()) for p in sorted((EXAMPLES / "formats").iterdir()) if p.is_file()]
    files += [(f"corpus article {i}", corpus.article(i)) for i in GENERATED]
    docs: list[tuple[str, NormalisedDocument]] = []
    seen: set[str] = set()
    for name, raw in files:
        for _, result in normalise_records(raw, filename=name if "." in name else "article.txt"):
            if isinstance(result, InputError) or not result.text.strip() or result.canonical_hash in seen:
                continue
            seen.add(result.canonical_hash)
            docs.append((name, result))
            break
    generated = [d for d in docs if d[0].startswith("corpus")]
    shipped = [d for d in docs if not d[0].startswith("corpus")][: 20 - len(generated)]
    return shipped + generated


def old_extractor() -> Callable[[NormalisedDocument], list[str]] | None:
    try:
        import yake_rust
    except ImportError:
        return None
    extractors: dict[str, object] = {}

    def extract(doc: NormalisedDocument) -> list[str]:
        code = doc.language if doc.language not in ("", "und") else "en"
        if code not in extractors:
            extractors[code] = yake_rust.Yake(
                language=code, ngrams=2, remove_duplicates=True, deduplication_threshold=0.8
            )
        found = extractors[code].get_n_best(doc.text, n=40)  # type: ignore[attr-defined]
        chosen: list[str] = []
        for phrase, _ in found:
            words = phrase.split()
            if not words or all(w[:1].isupper() for w in words):
                continue
            if all(len(w) < 3 or not any(c.isalpha() for c in w) for w in words):
                continue
            folded = {w.casefold() for w in words}
            if any(folded <= {w.casefold() for w in kept.split()} for kept in chosen):
                continue
            chosen.append(phrase)
            if len(chosen) == 8:
                break
        return sorted(p.casefold() for p in chosen)

    return extract


def main() -> None:
    old = old_extractor()
    new = PhraseKeywords()
    print("| # | article | old: YAKE (yake-rust) | new: phrases x rarity |")
    print("| --- | --- | --- | --- |")
    for i, (name, doc) in enumerate(documents(), 1):
        before = ", ".join(old(doc)) if old else "(yake-rust not installed)"
        after = ", ".join(t.name for t in new(doc))
        print(f"| {i} | {name} ({doc.language}, {len(doc.text):,} chars) | {before} | {after} |")


if __name__ == "__main__":
    main()
