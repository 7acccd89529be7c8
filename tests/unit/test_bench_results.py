"""``bench/results.json`` keeps the layout docs/benchmarks.md documents: a results dict made by
the benchmark's own report code (rounds, stages, ratios, targets; the measurements built by
the same functions the real run uses, from made-up figures) has a ``schema`` and uses only
keys of the documented table, and every documented key of a part that ran is there."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench import ceiling, corpus, e2e, latency, report, run
from bench.tagging import TagThroughput

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def documented_keys() -> set[str]:
    """The first cell of each row of the ``results.json`` table: `a.b.c`, `.d` (a sibling of c)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## `results.json` (schema") :]
    section = section[: section.index("\n## ", 1)]
    keys: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        parent = ""
        for token in re.findall(r"`([^`]+)`", line.split(" | ")[0]):
            key = parent + token if token.startswith(".") else token
            key = re.sub(r"^(fast|full)\.", "<profile>.", key)
            parent = key.rsplit(".", 1)[0] if "." in key else ""
            keys.add(key)
    # every prefix of a documented key is documented too (the objects that hold them)
    for key in list(keys):
        parts = key.split(".")
        keys.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return {k.replace("[]", "") for k in keys} | keys


def _throughput(docs: int, cpu_ms: float, stages: dict[str, float] | None = None) -> ceiling.Throughput:
    return ceiling.Throughput(
        docs=docs,
        seconds=docs / 100,
        processes=2,
        per_process=[50.0, 50.0],
        cpu_seconds=docs * cpu_ms / 1000,
        stage_cpu_seconds={k: docs * v / 1000 for k, v in (stages or {}).items()},
        batch=16 if stages else 32,
        outcomes={"stored": docs - 3, "duplicate_exact": 1, "duplicate_near": 2} if stages else {},
    )


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A full results.json as ``bench.run.main`` writes it, three rounds per profile."""
    files = corpus.build(150)
    expected = corpus.expected(files)
    rss = e2e.RssSampler(root_pid=1, redis_pidfile=tmp_path / "none")
    rss.peaks = {"watcher": 60 << 20, "worker-child-1": 120 << 20}
    rss.cpu = {"watcher": 0.5, "worker-child-1": 3.0}
    rss.peak_total = 180 << 20
    stages = {"prepare": 1.1, "tag": 9.0, "store": 1.5}

    def measure_stages(profile: str, count: int, workdir: Path, **_: object) -> ceiling.Throughput:
        return _throughput(count, 12.0, stages)

    def measure_spacy(count: int, **_: object) -> ceiling.Throughput:
        return _throughput(count, 40.0)

    def measure_burst(profile: str, count: int, workdir: Path, **_: object) -> dict[str, Any]:
        types = Counter(
            {
                "stored": expected.stored,
                "duplicate": expected.duplicates,
                "duplicate_exact": expected.exact,
                "duplicate_near": expected.near,
            }
        )
        out = e2e.burst_result(profile, files, seconds=1.0, renamed=0.01, types=types, sampler=rss.as_dict())
        return out | {"expected": expected.as_dict(), "correct": e2e.counts_match(types, expected)}

    def measure_latency(profile: str, workdir: Path, **_: object) -> dict[str, Any]:
        return latency.summary(profile, 5.0, 3, [80.0, 90.0, 120.0])

    monkeypatch.setattr(ceiling, "measure_stages", measure_stages)
    monkeypatch.setattr(ceiling, "measure_spacy", measure_spacy)
    monkeypatch.setattr(e2e, "measure_burst", measure_burst)
    monkeypatch.setattr(latency, "measure_latency", measure_latency)
    args = run.parse_args(["--repeat", "3", "--files", "40", "--full-files", "40", "--set", "WATCH_BATCH=16"])
    console = Console(file=io.StringIO(), width=250)
    out: dict[str, Any] = {"machine": report.machine(), "notes": [], "settings": args.env}
    for profile in ("fast", "full"):
        out[profile] = run.run_profile(profile, args, tmp_path, console, out["notes"])
    out["tagging"] = [asdict(TagThroughput("fast", 64, 0.5, 128.0, 1, 7.5))]
    out["large"] = {
        "profile": "full",
        "bytes": 10,
        "outcome": "stored",
        "seconds": {"prepare": 0.1},
        "total_seconds": 0.1,
        "rss_before_mb": 1.0,
        "peak_rss_mb": 2.0,
        "rss_after_mb": 1.5,
        "tag_max_chars": 500_000,
    }
    out["machine"]["load_average_at_end"] = [0.0, 0.0, 0.0]
    out["wall_seconds"] = 1.0
    path = report.write(out, tmp_path / "results.json")
    written: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return written


def test_results_use_only_documented_keys_and_all_of_them(results: dict[str, Any]) -> None:
    assert results["schema"] == report.SCHEMA == 2
    documented = documented_keys()
    written = report.key_paths(results)
    assert written - documented == set(), "document these keys in docs/benchmarks.md"
    assert {k for k in documented if "[]" not in k} - {k.replace("[]", "") for k in written} == set(), (
        "documented keys the report no longer writes: raise the schema and fix the table"
    )


def test_stage_budgets_and_the_spacy_cpu_ratio_come_from_the_rounds(results: dict[str, Any]) -> None:
    fast, full = results["fast"], results["full"]
    stages = fast["stages"]
    assert stages["prepare"] == {
        "cpu_ms_per_doc": 1.1,
        "budget_ms": 1.2,
        "ratio": 0.92,
        "verdict": "PASS",
        "source": "ceiling",
        "rounds": [1.1, 1.1, 1.1],
    }
    assert stages["tag"]["verdict"] == "MISS" and stages["store"]["verdict"] == "MISS"
    e2e_cpu = fast["e2e"]["cpu_ms_per_doc"]
    assert stages["message_path"]["cpu_ms_per_doc"] == round(e2e_cpu - 11.6, 2)
    assert full["stages"]["tag"]["budget_ms"] is None and full["stages"]["tag"]["verdict"] == "n/a"
    assert full["ratio_to_spacy_by_cpu"] == round(40.0 / full["e2e"]["cpu_ms_per_doc"], 3)
    assert full["ceiling_to_spacy_by_cpu"] == round(40.0 / 12.0, 3)
    assert fast["e2e"]["correct"] is True and fast["e2e"]["expected"]["near"] > 0
    names = {t["target"]: t for t in results["targets"]}
    assert names["full: spaCy nlp.pipe CPU / end-to-end CPU per doc"]["bound"] == "≥ 0.85"
    assert names["fast: message path CPU ms/doc"]["bound"] == "≤ 1 ms"
