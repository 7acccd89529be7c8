"""The benchmark's own pieces (``make bench`` is not a test; these keep it from rotting):
the corpus is deterministic and realistic, the ceiling runs the real stage code in a child
process, and the targets are judged and rendered from whatever was measured."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench import ceiling, corpus, e2e, report, run
from bench.ceiling import batches_of, measure_stages
from bench.latency import percentile


def test_corpus_is_deterministic_news_sized_with_exact_copies_and_light_edits() -> None:
    files = corpus.build(400)
    assert corpus.fingerprint(files) == corpus.fingerprint(corpus.build(400))
    assert files[0].kind == "example" and files[0].data == corpus.examples()[0][1]  # the shipped article first
    copies = [f for f in files if f.kind == "exact"]
    edits = [f for f in files if f.kind == "near"]
    originals = [f for f in files if f.duplicate_of is None]
    assert 0.01 <= len(copies) / len(files) <= 0.06
    assert 0.02 <= len(edits) / len(files) <= 0.09
    assert {f.edit for f in edits} == set(corpus.EDITS)
    assert len({f.data for f in originals}) == len(originals)
    assert all(f.data == files[f.duplicate_of].data for f in copies if f.duplicate_of is not None)
    assert all(f.data != files[f.duplicate_of].data for f in edits if f.duplicate_of is not None)
    # Each pair stands alone: a source is copied or edited once, before, and is an original.
    sources = [f.duplicate_of for f in files if f.duplicate_of is not None]
    assert len(sources) == len(set(sources))
    assert all(files[i].duplicate_of is None for i in sources)
    assert all(f.duplicate_of < int(f.name[:6]) for f in files if f.duplicate_of is not None)
    sizes = sorted(len(f.data) for f in originals if f.kind == "original")
    assert sizes[0] >= 2_000 and sizes[-1] <= 4_500  # like the shipped example article (~3 KB)
    first = originals[1].data.decode("utf-8")
    assert first.startswith(" date 20") and "(" in first.splitlines()[0] and "—" in first


def test_generated_articles_have_a_news_vocabulary_and_do_not_resemble_each_other() -> None:
    from worker.pipeline.dedup import jaccard, shingles

    texts = [corpus.article(i).decode("utf-8") for i in range(60)]
    vocabulary: set[str] = set()
    for text in texts:
        words = set(re.findall(r"[a-z]+", text.lower()))
        assert 150 <= len(words) <= 400  # distinct words in one ~3 KB article
        vocabulary |= words
    assert len(vocabulary) >= 800  # 869 words over these 60 (the template corpus before: 396)
    sets = [shingles(t) for t in texts]
    assert max(jaccard(a, b) for i, a in enumerate(sets) for b in sets[:i]) < 0.3  # far below 0.8


def test_expected_outcomes_use_the_store_thresholds_and_reach_the_exact_jaccard() -> None:
    files = corpus.build(400)
    expected = corpus.expected(files)
    edits = sum(1 for f in files if f.kind == "near")
    assert expected.near_intended == edits and expected.near + expected.near_rejected <= edits
    assert expected.exact >= sum(1 for f in files if f.kind == "exact")
    assert expected.stored + expected.exact + expected.near == len(files)
    assert expected.near >= 0.8 * edits  # light edits: nearly all are near duplicates
    assert expected.near_by_exact_jaccard > 0  # some are close enough to the threshold to need it
    assert {"typo", "reorder", "sentence"} <= set(expected.edits)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_quick_and_set_options() -> None:
    args = run.parse_args(["--quick", "--set", "WATCH_BATCH=1", "--set", "SEEDWORKER_LOG_LEVEL=WARNING"])
    assert args.files == 400 and args.full_files == 100 and args.latency_seconds == 10.0
    assert args.env == {"SEEDWORKER_WATCH_BATCH": "1", "SEEDWORKER_LOG_LEVEL": "WARNING"}
    with pytest.raises(SystemExit):
        run.parse_args(["--set", "novalue"])


def test_a_burst_is_capped_by_the_budget_and_says_so() -> None:
    notes: list[str] = []
    assert run._burst_size(10_000, 40.0, 150.0, notes, "fast") == 6_000
    assert "6000 files instead of 10000" in notes[0]
    assert run._burst_size(2_000, 40.0, 150.0, notes, "full") == 2_000
    assert run._burst_size(10_000, 1.0, 150.0, notes, "full") == 500


def test_rounds_take_each_ratio_within_a_round_and_report_the_medians(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ceiling 100, 50, 80 and end to end 90, 45, 40 docs/s: within-round ratios 0.9, 0.9, 0.5
    # (median 0.9), where the ratio of the medians would say 45 / 80 = 0.56.
    ceilings, bursts = iter([100.0, 50.0, 80.0]), iter([90.0, 45.0, 40.0])
    seen: list[tuple[str, Path, int]] = []

    class Ceiling:
        def __init__(self, rate: float) -> None:
            self.rate = rate

        def as_dict(self) -> dict[str, float]:
            return {"docs_per_second": self.rate, "cpu_ms_per_doc": 10.0, "docs": 10, "processes": 2}

    def stages(profile: str, count: int, workdir: Path, **_: object) -> Ceiling:
        seen.append(("ceiling", workdir, count))
        return Ceiling(next(ceilings))

    def burst(profile: str, count: int, workdir: Path, **_: object) -> dict[str, object]:
        seen.append(("e2e", workdir, count))
        rss = {"per_process_mb": {"watcher": 50.0}, "peak_total_mb": 500.0, "peak_pss_total_mb": 400.0}
        rate = next(bursts)
        return {
            "docs_per_second": rate,
            "cpu_ms_per_doc": 20.0,
            "files": count,
            "seconds": count / rate,
            "correct": True,
            "rss": rss,
        }

    monkeypatch.setattr(ceiling, "measure_stages", stages)
    monkeypatch.setattr(e2e, "measure_burst", burst)
    args = run.parse_args(["--profile", "fast", "--repeat", "3", "--files", "10000", "--skip", "latency"])
    notes: list[str] = []
    out = run.run_profile("fast", args, tmp_path, Console(file=io.StringIO()), notes)
    assert out["ratio_to_ceiling"] == 0.9 and out["ratio_by_cpu"] == 0.5
    assert [r["ratio_to_ceiling"] for r in out["rounds"]] == [0.9, 0.9, 0.5]
    assert out["ceiling"]["docs_per_second"] == 80.0 and out["e2e"]["docs_per_second"] == 45.0
    # Every round in a directory of its own (a ceiling reusing a database would replay, not
    # process); the burst keeps round 1's size, capped by its ceiling (100 docs/s x 150 s).
    assert [(kind, path.name) for kind, path, _ in seen] == [
        (kind, f"round{i}") for i in range(3) for kind in ("ceiling", "e2e")
    ]
    assert {count for kind, _, count in seen if kind == "e2e"} == {10_000}
    assert any("ratio_to_ceiling in each of 3 rounds: 0.900, 0.900, 0.500; median 0.900" in n for n in notes)
    printed = io.StringIO()
    report.render({"machine": report.machine(), "fast": out}, Console(file=printed, width=250))
    assert "median of 3 rounds, each measured within its round: 0.900, 0.900, 0.500" in printed.getvalue()


def test_targets_are_judged_from_what_was_measured_and_rendered(tmp_path: Path) -> None:
    results = {
        "machine": report.machine(),
        "notes": ["a note"],
        "fast": {
            "ceiling": {
                "docs": 10,
                "processes": 2,
                "docs_per_second": 50.0,
                "cpu_ms_per_doc": 40.0,
                "stage_cpu_ms_per_doc": {"prepare": 1.0, "tag": 30.0, "store": 1.2},
            },
            "e2e": {
                "files": 100,
                "seconds": 2.5,
                "docs_per_second": 40.0,
                "correct": True,
                "events": {"stored": 100},
                "cpu_ms_per_doc": 50.0,
                "rss": {"per_process_mb": {"watcher": 50.0}, "peak_total_mb": 650.0, "peak_pss_total_mb": 500.0},
            },
            "ratio_to_ceiling": 0.8,
            "ratio_by_cpu": 0.8,
            "latency": {"rate_per_second": 5, "p50_ms": 120.0, "p99_ms": 250.0, "max_ms": 260.0, "measured": 50},
        },
        "tagging": [
            {"profile": "fast", "documents": 64, "seconds": 2.0, "docs_per_second": 32.0, "batch_size": 1},
            {"profile": "ner-batch", "documents": 64, "seconds": 8.0, "docs_per_second": 8.0, "batch_size": 32},
        ],
    }
    fast: dict[str, Any] = results["fast"]  # type: ignore[assignment]
    fast["stages"] = report.stage_costs("fast", fast)
    # The message path: end-to-end CPU per document minus the ceiling's three stages.
    assert fast["stages"]["message_path"]["cpu_ms_per_doc"] == 17.8  # 50.0 - (1.0 + 30.0 + 1.2)
    assert fast["stages"]["store"]["ratio"] == 1.0
    verdicts = {t.name: t.verdict for t in report.targets(results)}
    assert verdicts["fast: end-to-end docs/s (stretch 500)"] == "MISS"
    assert verdicts["fast: prepare CPU ms/doc"] == "PASS"
    assert verdicts["fast: tag CPU ms/doc"] == "MISS"
    assert verdicts["fast: store CPU ms/doc"] == "PASS"  # at the budget
    assert verdicts["fast: message path CPU ms/doc"] == "MISS"
    assert verdicts["p99 latency at 5 docs/s (fast)"] == "PASS"
    assert verdicts["fast: total RSS (peak)"] == "MISS"
    assert verdicts["full: spaCy nlp.pipe CPU / end-to-end CPU per doc"] == "n/a"
    out = io.StringIO()
    report.render(results, Console(file=out, width=200))
    assert "PASS" in out.getvalue() and "MISS" in out.getvalue() and "a note" in out.getvalue()
    assert "full: NER, nlp.pipe batches" in out.getvalue() and "32.0" in out.getvalue()  # the tag stage
    path = report.write(results, tmp_path / "results.json")
    written = json.loads(path.read_text())
    assert written["schema"] == report.SCHEMA and written["machine"]["cores"] and len(written["targets"]) == 8
    assert "CPU per document by stage" in out.getvalue() and "message path" in out.getvalue()


@pytest.mark.timeout(120)
def test_the_ceiling_runs_the_real_stage_code_in_a_child(tmp_path: Path) -> None:
    result = measure_stages("fast", 6, tmp_path, processes=1, env={"SEEDWORKER_WATCH_BATCH": "4"})
    assert result.docs == 6 and result.docs_per_second > 0
    assert set(result.as_dict()["stage_cpu_ms_per_doc"]) == {"prepare", "tag", "store"}
    assert result.cpu_ms_per_doc > 0
    assert result.batch == 4 and result.outcomes == {"stored": 6}  # in batches as the watcher sends them


@pytest.mark.timeout(120)
def test_the_ceiling_stores_a_batch_as_the_batch_task_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ceiling's stage CPU is subtracted from the end-to-end CPU to give the message path,
    so it must run what the worker runs: ``seedworker.ingest_batch`` stores a batch with one
    ``process.store_many`` (one transaction), ``seedworker.ingest`` a file alone with ``process.store``."""
    from worker import process
    from worker.runtime import Runtime
    from worker.services import ensure_schema

    settings = ceiling._settings("fast", tmp_path, f"sqlite:///{tmp_path / 'seedworker.db'}")
    ensure_schema(settings)
    rt = Runtime.build(settings, "redis://127.0.0.1:1/0")  # the stages send nothing through it
    calls: list[tuple[str, int]] = []
    store_many, store = process.store_many, process.store

    def spy_many(batches: list[Any], *args: Any, **kw: Any) -> Any:
        calls.append(("store_many", len(batches)))
        return store_many(batches, *args, **kw)

    def spy_one(batch: Any, *args: Any, **kw: Any) -> Any:
        calls.append(("store", 1))
        return store(batch, *args, **kw)

    monkeypatch.setattr(process, "store_many", spy_many)
    monkeypatch.setattr(process, "store", spy_one)
    files = corpus.build(4)
    try:
        stages, results = ceiling.stage_batch(rt, settings, [(f.name, f.data, f"claim:t-{f.name}") for f in files[:3]])
        _, alone = ceiling.stage_batch(rt, settings, [(files[3].name, files[3].data, "claim:t-alone")])
    finally:
        rt.close()
    assert calls == [("store_many", 3), ("store", 1)]
    assert set(stages) == {"prepare", "tag", "store"} and all(v >= 0 for v in stages.values())
    assert [o.status for r in [*results, *alone] for o in r.outcomes] == ["stored"] * 4


def test_the_ceiling_batches_like_the_watcher() -> None:
    files = corpus.build(40)
    groups = batches_of(files, 16)
    assert [len(g) for g in groups] == [16, 16, 8] and [f for g in groups for f in g] == files
    limit = sum(len(f.data) for f in files[:3])
    by_bytes = batches_of(files[:10], 16, max_bytes=limit)
    assert by_bytes[0] == files[:3] and all(sum(len(f.data) for f in g) <= limit for g in by_bytes)
    assert [f for g in by_bytes for f in g] == files[:10]


def test_update_linking_evaluation_runs_through_the_real_store(tmp_path: Path) -> None:
    """``make eval-dedup``'s write-thru case on a few articles: first takes stored alone, the
    wholes linked to them, same-topic stories and shared-boilerplate stories left alone."""
    from bench.eval_updates import linking

    result = linking(seed=3, trial=3, wide=3, negatives=1, workdir=tmp_path)
    groups = result["groups"]
    assert groups["similar"]["linked"] == 0 and groups["boilerplate"]["linked"] == 0
    assert groups["trial"]["documents"] == 3 and result["fp"] == 0
    assert result["tp"] + result["fn"] + sum(g.get("near_duplicates", 0) for g in groups.values()) == 6
    assert result["recall"] >= 0.8


def test_the_bench_stack_is_built_from_its_fields(tmp_path: Path) -> None:
    """``BenchStack`` is a dataclass over ``RunChild`` (a decorator on the wrong class once made
    every burst fail with a TypeError before it started)."""
    from bench.e2e import BenchStack

    stack = BenchStack(tmp_path, "fast", extra_env={"SEEDWORKER_WATCH_BATCH": "4"})
    assert stack.inbox == tmp_path / "inbox" and stack.proc is None and stack.extra_env["SEEDWORKER_WATCH_BATCH"] == "4"
    assert stack.tail() == ""  # no log yet
    stack.stop()  # nothing started: nothing to stop
