"""Update linking in ``make eval-dedup``: write-thrus found by containment, and their cost.

The issue's trial, through the real store (``DocumentStore.persist_document`` with the
near-duplicate and write-thru indexes, SQLite in a temporary file): articles are dropped
first as their opening paragraphs, then whole; each whole version must be stored as an update
of its first version (``Outcome.updates``).  Alongside, from the same seed:

* **trial**: 40 articles, first version = the opening 40-60 % of the paragraphs;
* **wide**: more articles, first versions of 30-75 % of the paragraphs, a third of them with
  the lede edited in the later version (a figure changed, a sentence added to the top), a
  sixth as HTML pages;
* **negatives** that must stay unlinked: same-topic different stories (same people, places
  and topic, another story) and different stories that share boilerplate (a short item and a
  long one with the same agency footer and newsletter banner).

Precision = correct links / links made (over every stored document, negatives included);
recall = correct links / write-thrus.  A later version that adds less than a quarter to its
first (Jaccard >= 0.8) is a near duplicate by definition and is counted apart (it joins the
first version's story as a ``document.duplicate``).  Cost: process CPU per stored document with and without
the write-thru index, interleaved, medians of rounds.
"""

# ruff: noqa: S311
from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.eval_dedup import (
    BOILER_BOTTOM,
    BOILER_TOP,
    Article,
    Sample,
    Vocab,
    Writer,
    _batch,
    _copy,
    _normalised,
    new_article,
    rates,
)
from worker.pipeline.dedup import DedupParams, jaccard, shingles
from worker.store.engine import make_engine
from worker.store.near_index import NearDuplicateIndex
from worker.store.repository import DocumentStore
from worker.store.writethru_index import WriteThruIndex


@dataclass
class Case:
    """One document to store and what it should become: an update of ``expects`` (a case
    index) or, with ``expects`` None, a document of its own."""

    sample: Sample
    group: str  # trial | wide | similar | boilerplate | first
    expects: int | None = None


def _first_take(rng: random.Random, a: Article, low: float, high: float) -> Article:
    first = _copy(a)
    first.body = first.body[: max(1, round(len(a.body) * rng.uniform(low, high)))]
    return first


def _edit_lede(w: Writer, rng: random.Random, a: Article) -> Article:
    """A write-thru's new top: a sentence added to the first paragraph and a figure changed."""
    a.body[0].insert(0, w.sentence(rng, a.story))
    for j, sentence in enumerate(a.body[0]):
        words = sentence.split(" ")
        for k, word in enumerate(words):
            if word.isdigit():
                words[k] = str(int(word) + rng.randint(1, 40))
                a.body[0][j] = " ".join(words)
                return a
    return a


def _sample(a: Article, name: str, kind: str, as_html: bool = False) -> Sample:
    raw = a.html() if as_html else a.text()
    name = name + (".html" if as_html else ".txt")
    text, chash = _normalised(raw, name)
    return Sample(name, kind, 0, text, chash)


def build_cases(seed: int, trial: int, wide: int, negatives: int) -> tuple[list[Case], list[Case]]:
    """(first versions, later documents): the first are stored first, the later in shuffled order."""
    rng = random.Random(seed)
    writer = Writer(Vocab.load())
    firsts: list[Case] = []
    later: list[Case] = []

    def pair(group: str, i: int, low: float, high: float, lede: float, html: float) -> None:
        a = new_article(writer, rng, writer.story(rng))
        a.body.extend(writer.paragraphs(rng, a.story, rng.randint(0, 3)))  # write-thrus run long
        first = _first_take(rng, a, low, high)
        whole = _edit_lede(writer, rng, _copy(a)) if rng.random() < lede else a
        firsts.append(Case(_sample(first, f"{group}-{i}-first", group), "first"))
        later.append(Case(_sample(whole, f"{group}-{i}-whole", group, rng.random() < html), group, len(firsts) - 1))
        for n in range(negatives):  # same people, places and topic: another story
            other = new_article(writer, rng, writer.story(rng, like=a.story))
            later.append(Case(_sample(other, f"similar-{group}-{i}-{n}", "similar"), "similar"))

    for i in range(trial):
        pair("trial", i, 0.4, 0.6, 0.0, 0.0)
    for i in range(wide):
        pair("wide", i, 0.3, 0.75, 0.33, 0.17)
    for i in range(max(1, (trial + wide) // 2)):  # different stories sharing boilerplate
        banner, footer = rng.choice(BOILER_TOP), rng.choice(BOILER_BOTTOM)
        short = new_article(writer, rng, writer.story(rng))
        short.body = short.body[:1]
        long = new_article(writer, rng, writer.story(rng))
        for art in (short, long):
            art.top = [banner]
            art.bottom = [footer.format(year=2026, agency="AP", name="Ana Silva", name2="Omar Haddad", name3="Li Wei")]
        firsts.append(Case(_sample(short, f"boiler-{i}-short", "boilerplate"), "first"))
        later.append(Case(_sample(long, f"boiler-{i}-long", "boilerplate"), "boilerplate"))
    rng.shuffle(later)
    return firsts, later


def _store(path: Path, params: DedupParams, writethru: bool) -> DocumentStore:
    store = DocumentStore(
        make_engine(f"sqlite:///{path}"),
        event_source="urn:eval",
        near=NearDuplicateIndex(params),
        writethru=WriteThruIndex(params) if writethru else None,
    )
    store.create_schema()
    return store


def linking(seed: int, trial: int, wide: int, negatives: int, workdir: Path) -> dict[str, Any]:
    params = DedupParams()
    firsts, later = build_cases(seed, trial, wide, negatives)
    store = _store(workdir / "updates.db", params, writethru=True)
    ids: list[str] = []
    for i, case in enumerate(firsts):
        outcome = store.persist_document(*_batch(case.sample, f"first:{i}"))
        if outcome.status != "stored" or outcome.updates is not None:
            raise RuntimeError(f"first version {case.sample.name} was not stored on its own: {outcome}")
        ids.append(str(outcome.document_id))
    groups: dict[str, dict[str, int]] = {}
    tp = fp = fn = 0
    jaccards: list[float] = []
    for n, case in enumerate(later):
        outcome = store.persist_document(*_batch(case.sample, f"later:{n}"))
        linked = outcome.updates
        expected = ids[case.expects] if case.expects is not None else None
        g = groups.setdefault(case.group, {"documents": 0, "linked": 0, "correct": 0, "missed": 0, "wrong": 0})
        g["documents"] += 1
        g["linked"] += linked is not None
        if expected is not None:
            first = firsts[case.expects or 0].sample.text
            jaccards.append(jaccard(shingles(first, 5), shingles(case.sample.text, 5)))
            if jaccards[-1] >= params.threshold:
                # Adds less than a quarter to the text: a near duplicate by definition (and in
                # the near-duplicate figures), joining the first version's story as one.
                g["near_duplicates"] = g.get("near_duplicates", 0) + 1
                g["near_duplicate_of_first"] = g.get("near_duplicate_of_first", 0) + (outcome.duplicate_of == expected)
                fp += linked is not None
                continue
        if linked is not None and linked == expected:
            tp += 1
            g["correct"] += 1
        elif linked is not None:
            fp += 1
            g["wrong"] += 1
        if expected is not None and linked != expected:
            fn += 1
            g["missed"] += 1
    store.engine.dispose()
    return {
        **rates(tp, fp, fn),
        "groups": groups,
        "first_vs_whole_jaccard": {
            "min": min(jaccards, default=0.0),
            "median": statistics.median(jaccards) if jaccards else 0.0,
            "max": max(jaccards, default=0.0),
        },
    }


def cost(seed: int, workdir: Path, documents: int = 300, rounds: int = 3) -> dict[str, Any]:
    """Process CPU per stored document, with and without the write-thru index: the same texts
    into two stores, interleaved one document at a time, medians over rounds."""
    params = DedupParams()
    firsts, later = build_cases(seed + 7, documents // 4, 0, 1)
    samples = [c.sample for c in firsts + later][:documents]
    per_round: dict[str, list[float]] = {"near": [], "near+writethru": []}
    for r in range(rounds):
        stores = {
            "near": _store(workdir / f"cost-near-{r}.db", params, writethru=False),
            "near+writethru": _store(workdir / f"cost-wt-{r}.db", params, writethru=True),
        }
        spent = dict.fromkeys(stores, 0.0)
        for i, sample in enumerate(samples):
            for name in sorted(stores, key=lambda k: (i + r) % 2 == (k == "near")):
                batch = _batch(sample, f"cost:{r}:{i}")
                t0 = time.process_time()
                stores[name].persist_document(*batch)
                spent[name] += time.process_time() - t0
        for name, store in stores.items():
            per_round[name].append(spent[name] / len(samples) * 1000)
            store.engine.dispose()
    med = {name: statistics.median(v) for name, v in per_round.items()}
    return {
        "documents": len(samples),
        "rounds": rounds,
        "cpu_ms_per_document_median": med,
        "extra_cpu_ms_per_document": med["near+writethru"] - med["near"],
        "per_round": per_round,
    }


def report(result: dict[str, Any]) -> None:
    link = result["linking"]
    jac = link["first_vs_whole_jaccard"]
    print(
        f"update linking (write-thrus, real store, SQLite): precision {link['precision']:.4f}  "
        f"recall {link['recall']:.4f}  (tp {link['tp']}, fp {link['fp']}, fn {link['fn']}; "
        f"Jaccard first vs whole: min {jac['min']:.3f}, median {jac['median']:.3f}, max {jac['max']:.3f})",
        flush=True,
    )
    for group, g in sorted(link["groups"].items()):
        print(f"  {group:<12} {g}", flush=True)
    if "cost" in result:
        c = result["cost"]
        med = c["cpu_ms_per_document_median"]
        print(
            f"  CPU ms per stored document (median of {c['rounds']} rounds, {c['documents']} documents): "
            f"near {med['near']:.2f}, near + write-thru {med['near+writethru']:.2f} "
            f"(+{c['extra_cpu_ms_per_document']:.2f})",
            flush=True,
        )


def evaluate(seed: int, workdir: Path, *, quick: bool = False, with_cost: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {
        "linking": linking(seed, 40, 60 if quick else 400, 1 if quick else 2, workdir),
    }
    if with_cost:
        result["cost"] = cost(seed, workdir, documents=120 if quick else 300, rounds=3)
    report(result)
    return result
