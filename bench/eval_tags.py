"""``make eval-tags``: how well the learned ``auto`` topics agree with the user's folders.

A labelled corpus is generated deterministically (no downloads): six topics, each with its
own vocabulary, written as varied news-like sentences that also draw on a shared newsroom
vocabulary and on words several topics use ("minister", "record", "study", "budget", ...),
so topics overlap the way real sections do.  80 % of the documents go through the real
pipeline code (``worker.process``: normalise, tag, store) with their topic as a folder tag
(``inbox/<topic>/<file>``), exactly as the watcher sends them; ``auto`` is trained on the
store like ``seedworker tags train`` does; the other 20 % go through the same pipeline
without a folder and the tag they get from ``auto`` is compared with their true topic.

Prints accuracy (the best auto tag is the true topic), coverage (documents that got an auto
tag above the threshold) and a confusion table.  ``python -m bench.eval_tags [--per-topic N]``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _words(text: str) -> list[str]:
    return text.split()


TOPICS: dict[str, list[str]] = {
    "politics": _words(
        "parliament senator election ballot coalition opposition cabinet legislation campaign voters "
        "lawmakers referendum party leader constitution governor mayor debate veto bill amendment "
        "presidency majority caucus polls candidate incumbent speaker impeachment manifesto"
    ),
    "sport": _words(
        "match goal striker league championship tournament coach season stadium fans referee "
        "midfielder penalty final trophy squad injury transfer olympics medal sprint marathon "
        "tennis cricket innings playoff defender keeper victory fixture"
    ),
    "economy": _words(
        "inflation interest rates central bank gdp growth recession unemployment tariffs exports "
        "imports markets investors shares bonds currency deficit wages prices consumers retail "
        "earnings profits stocks manufacturing supply demand lending mortgage"
    ),
    "science": _words(
        "researchers telescope galaxy experiment laboratory physicists particle genome species "
        "fossil climate satellite orbit spacecraft molecule quantum astronomers evolution samples "
        "observatory asteroid planet reactor chemistry biology microscope hypothesis journal"
    ),
    "health": _words(
        "hospital patients vaccine doctors nurses disease outbreak infection treatment clinic "
        "surgery virus symptoms pandemic cancer diagnosis therapy medicine pharmacy wellbeing "
        "obesity diabetes dementia prescriptions emergency ward paramedics epidemic"
    ),
    "culture": _words(
        "festival album novel film director actress museum exhibition theatre concert band "
        "gallery painting orchestra premiere audience poet author screenplay opera choreographer "
        "sculpture bestseller soundtrack curator playwright documentary"
    ),
}
#: Words more than one section uses: what makes the task not trivially separable.
SHARED_TOPICAL = _words(
    "minister record study budget report funding crisis reform strike award record-breaking "
    "government public national plan policy research data results season director board "
    "investment launch programme agency council international global"
)
NEWSROOM = _words(
    "officials said on Tuesday according to a statement the latest figures showed people "
    "week year country city region local spokesperson told reporters announced expected "
    "continue despite concerns after months earlier this while many others added"
)
VERBS = _words(
    "announced criticised praised reviewed questioned welcomed delayed expanded cut unveiled "
    "examined defended rejected backed warned highlighted"
)
CONNECTORS = ["Meanwhile,", "However,", "On Monday,", "Later,", "In a statement,", "Separately,", "", "", ""]
CITIES = ["Lisbon", "Nairobi", "Toronto", "Osaka", "Lima", "Oslo", "Accra", "Perth", "Dublin", "Quito"]


@dataclass(frozen=True)
class LabelledDoc:
    filename: str
    topic: str
    text: str


def _sentence(rng: random.Random, topic: str, topical_share: float) -> str:
    def word() -> str:
        roll = rng.random()
        if roll < topical_share:
            return rng.choice(TOPICS[topic])
        if roll < topical_share + 0.25:
            return rng.choice(SHARED_TOPICAL)
        if roll < topical_share + 0.35:  # a word from another section: realistic noise
            return rng.choice(TOPICS[rng.choice([t for t in TOPICS if t != topic])])
        return rng.choice(NEWSROOM)

    n = rng.randint(6, 14)
    words = [word() for _ in range(n)]
    words.insert(rng.randint(1, len(words) - 1), rng.choice(VERBS))
    lead = rng.choice(CONNECTORS)
    body = " ".join(words)
    sentence = f"{lead} {body}" if lead else body[:1].upper() + body[1:]
    return sentence.strip() + "."


def make_corpus(
    per_topic: int = 60, *, seed: int = 4, topical_share: float = 0.1, topics: Sequence[str] = tuple(TOPICS)
) -> list[LabelledDoc]:
    """``per_topic`` documents for each of ``topics``, the same for the same arguments, shuffled."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    docs = []
    for topic in topics:
        for i in range(per_topic):
            city = rng.choice(CITIES)
            paragraphs = [
                " ".join(_sentence(rng, topic, topical_share) for _ in range(rng.randint(1, 3)))
                for _ in range(rng.randint(2, 3))
            ]
            text = f"{city.upper()} — " + "\n\n".join(paragraphs) + f"\n\nReport number {seed}-{topic}-{i}.\n"
            docs.append(LabelledDoc(f"{topic}-{i:04d}.txt", topic, text))
    rng.shuffle(docs)
    return docs


def run(per_topic: int = 60, *, threshold: float = 0.5, seed: int = 4) -> dict[str, Any]:
    """The whole evaluation on a fresh SQLite store in a temporary directory."""
    from worker import process
    from worker.models import IngestRequest
    from worker.pipeline.tag import FolderPolicy, Tagger
    from worker.pipeline.taxonomy import Taxonomy
    from worker.store.engine import make_engine
    from worker.store.repository import DocumentStore
    from worker.store.tagging import TagStore

    docs = make_corpus(per_topic, seed=seed)
    cut = int(len(docs) * 0.8)
    labelled, unlabelled = docs[:cut], docs[cut:]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'eval.db'}")
        store = DocumentStore(engine, event_source="urn:eval")
        store.create_schema()
        # no NER and no rules: the evaluation is about the learned model alone
        tagger = Tagger(taxonomy=Taxonomy.empty(), nlp=None, folders=FolderPolicy(), auto_threshold=threshold)

        def ingest(doc: LabelledDoc, folders: list[str]) -> Any:
            request = IngestRequest(text=doc.text, filename=doc.filename, source="inbox", folder_tags=folders)
            batch = process.prepare(request, f"eval:{doc.filename}", max_bytes=1 << 20)
            batch = process.tag(batch, tagger)
            return process.store(batch, store, max_bytes=1 << 20), batch

        started = time.perf_counter()
        for doc in labelled:
            ingest(doc, [doc.topic])
        tags = TagStore(store)
        trained_at = time.perf_counter()
        stored, report = tags.train(min_docs=10, threshold=threshold)
        train_seconds = time.perf_counter() - trained_at
        tagger.auto = tags.load_model(stored.version)
        confusion: Counter[tuple[str, str]] = Counter()
        for doc in unlabelled:
            _, batch = ingest(doc, [])
            autos = [t for t in batch.items[0].tags if t.source.startswith("auto")]
            best = max(autos, key=lambda t: t.score or 0.0).name if autos else "(none)"
            confusion[(doc.topic, best)] += 1
        elapsed = time.perf_counter() - started
        engine.dispose()
    correct = sum(n for (truth, got), n in confusion.items() if truth == got)
    covered = sum(n for (_, got), n in confusion.items() if got != "(none)")
    return {
        "documents": len(docs),
        "folder_tagged": len(labelled),
        "auto_tagged": len(unlabelled),
        "accuracy": round(correct / len(unlabelled), 4),
        "coverage": round(covered / len(unlabelled), 4),
        "threshold": threshold,
        "model_version": stored.version,
        "held_out_micro_f1": report.micro_f1,
        "held_out_top1": report.top1_accuracy,
        "train_seconds": round(train_seconds, 2),
        "total_seconds": round(elapsed, 2),
        "confusion": {f"{t}->{g}": n for (t, g), n in sorted(confusion.items())},
        "_confusion": confusion,
    }


def print_report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    confusion: Counter[tuple[str, str]] = result["_confusion"]
    predicted = [*TOPICS, "(none)"]
    table = Table("true \\ auto", *predicted, title="auto topic vs folder (held-out 20 %)")
    for truth in TOPICS:
        row = [str(confusion.get((truth, got), 0) or ".") for got in predicted]
        table.add_row(truth, *row)
    console = Console()
    console.print(table)
    console.print(
        f"{result['documents']} documents: {result['folder_tagged']} folder-tagged and stored, auto trained "
        f"(v{result['model_version']}, {result['train_seconds']} s; held-out micro-F1 "
        f"{result['held_out_micro_f1']:.2f}), {result['auto_tagged']} tagged by auto:\n"
        f"  accuracy {result['accuracy']:.1%}   coverage {result['coverage']:.1%} (threshold "
        f"{result['threshold']})   total {result['total_seconds']} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-topic", type=int, default=60, help="documents per topic (default 60)")
    parser.add_argument("--threshold", type=float, default=0.5, help="auto confidence threshold (default 0.5)")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    from worker.logs import configure_logging
    from worker.settings import Settings

    configure_logging(Settings(_env_file=None, log_level="WARNING"))  # type: ignore[call-arg]  # stdout: the report
    print_report(run(args.per_topic, threshold=args.threshold, seed=args.seed))


if __name__ == "__main__":
    main()
