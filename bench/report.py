"""The benchmark's machine description, targets, table and ``bench/results.json``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results.json"

#: Version of the layout of ``results.json`` (docs/benchmarks.md has the key table); raise it
#: when a documented key changes meaning or goes away.
SCHEMA = 2

#: Per-document CPU budgets (ms) of issue 21, by stage; ``None``: no budget for that profile.
BUDGETS_MS: dict[str, dict[str, float | None]] = {
    "fast": {"prepare": 1.2, "tag": 1.5, "store": 1.2, "message_path": 1.0},
    "full": {"prepare": 1.2, "tag": None, "store": 1.2, "message_path": 1.0},
}
STAGES = ("prepare", "tag", "store", "message_path")


#: Keys whose value is a map of data-dependent names (process roles, event types, stages…):
#: documented as one key, not descended into by :func:`key_paths`.
MAP_KEYS = frozenset(
    {
        "settings",
        "per_process_mb",
        "cpu_seconds",
        "events",
        "outcomes",
        "near_by_edit",
        "stage_cpu_ms_per_doc",
        "cpu_ms_per_doc",
        "seconds",
    }
)


def key_paths(results: dict[str, Any]) -> set[str]:
    """Every key of a results dict as a dotted path, with ``<profile>`` for ``fast``/``full``,
    ``<stage>`` for a stage under ``stages`` and ``[]`` for the items of a list of objects:
    what docs/benchmarks.md's key table lists."""
    paths: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    walk(item, path + "[]")
            return
        if not isinstance(value, dict):
            return
        for key, item in value.items():
            name = key
            if not path and key in ("fast", "full"):
                name = "<profile>"
            elif path.endswith(".stages"):
                name = "<stage>"
            full = f"{path}.{name}" if path else name
            paths.add(full)
            if not (isinstance(item, dict) and key in MAP_KEYS):
                walk(item, full)

    walk(results, "")
    return paths


def stage_costs(profile: str, measured: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """CPU ms per document of each stage against its budget, from one round.

    prepare, tag and store are the ceiling's stage CPU (the worker's stage code over the same
    corpus in the same batches, timed around each stage with ``time.process_time``); the
    message path (watcher, Redis, the worker's Celery machinery, publisher, supervisor) is
    the whole stack's CPU per document end to end minus the sum of those three stages."""
    ceiling, e2e = measured.get("ceiling") or {}, measured.get("e2e") or {}
    stages: dict[str, float] = dict(ceiling.get("stage_cpu_ms_per_doc") or {})
    if stages and e2e.get("cpu_ms_per_doc"):
        stages["message_path"] = round(e2e["cpu_ms_per_doc"] - sum(stages.values()), 2)
    return {stage: stage_row(profile, stage, stages[stage]) for stage in STAGES if stage in stages}


def stage_row(profile: str, stage: str, value: float) -> dict[str, Any]:
    """One stage's CPU ms/doc, its budget, their ratio and the verdict."""
    budget = BUDGETS_MS.get(profile, {}).get(stage)
    return {
        "cpu_ms_per_doc": value,
        "budget_ms": budget,
        "ratio": round(value / budget, 2) if budget else None,
        "verdict": ("PASS" if value <= budget else "MISS") if budget else "n/a",
        "source": "e2e − ceiling stages" if stage == "message_path" else "ceiling",
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _redis_server_version() -> str:
    from worker.broker import redis_server_binary

    try:
        out = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"unknown ({exc})"
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip()


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "python": platform.python_version(),
        "celery": _version("celery"),
        "redis_py": _version("redis"),
        "redis_server": _redis_server_version(),
        "spacy": _version("spacy"),
        "sqlalchemy": _version("sqlalchemy"),
        "platform": platform.platform(),
        "commit": _git_commit(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    bound: float
    higher_is_better: bool
    unit: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        ok = self.value >= self.bound if self.higher_is_better else self.value <= self.bound
        return "PASS" if ok else "MISS"

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "value": self.value,
            "bound": ("≥ " if self.higher_is_better else "≤ ") + f"{self.bound:g}{self.unit}",
            "verdict": self.verdict,
        }


def targets(results: dict[str, Any]) -> list[Target]:
    """The issue's targets for a 2-core machine, from whatever parts were measured."""

    def get(*path: str) -> float | None:
        value: Any = results
        for part in path:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return float(value) if isinstance(value, (int, float)) else None

    return [
        Target("fast: end-to-end docs/s (stretch 500)", get("fast", "e2e", "docs_per_second"), 400, True, " docs/s"),
        *(
            Target(
                f"fast: {stage.replace('_', ' ')} CPU ms/doc",
                get("fast", "stages", stage, "cpu_ms_per_doc"),
                bound,
                False,
                " ms",
            )
            for stage, bound in BUDGETS_MS["fast"].items()
            if bound is not None
        ),
        Target("full: spaCy nlp.pipe CPU / end-to-end CPU per doc", get("full", "ratio_to_spacy_by_cpu"), 0.85, True),
        Target("p99 latency at 5 docs/s (fast)", get("fast", "latency", "p99_ms"), 300, False, " ms"),
        Target("fast: total RSS (peak)", get("fast", "e2e", "rss", "peak_total_mb"), 600, False, " MB"),
    ]


def wide_console() -> Console:
    """Wide enough for the table even when stdout is a pipe or a file (``make bench | tee``)."""
    return Console(width=max(150, Console().width))


def render(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or wide_console()
    m = results["machine"]
    console.print(
        f"[bold]seedworker benchmark[/bold]  {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"celery {m['celery']}, redis-server {m['redis_server']}, spaCy {m['spacy']}, commit {m['commit']}; "
        f"load average at start {m['load_average_at_start']}"
    )
    table = Table(title="throughput and latency", show_lines=False)
    table.add_column("profile")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("detail")
    for profile in ("fast", "full"):
        if results.get(profile):
            _profile_rows(table, profile, results[profile])
    console.print(table)
    render_stages(results, console)
    if results.get("tagging"):
        render_tagging(results["tagging"], console)
    verdicts = Table(title="targets (2-core machine)")
    for col in ("target", "value", "bound", "verdict"):
        verdicts.add_column(col)
    for t in targets(results):
        colour = {"PASS": "green", "MISS": "red"}.get(t.verdict, "dim")
        verdicts.add_row(
            t.name,
            "—" if t.value is None else f"{t.value:g}",
            t.as_dict()["bound"],
            f"[{colour}]{t.verdict}[/{colour}]",
        )
    console.print(verdicts)
    for note in results.get("notes", []):
        console.print(f"note: {note}")


def _profile_rows(table: Table, profile: str, part: dict[str, Any]) -> None:
    """The throughput, ratio, latency, memory and CPU rows of one profile."""
    c = part.get("ceiling")
    if c:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in c.get("stage_cpu_ms_per_doc", {}).items())
        table.add_row(
            profile,
            "in-process ceiling",
            f"{c['docs_per_second']:.1f} docs/s",
            f"{c['docs']} docs, {c['processes']} processes, batches of {c.get('batch', 1)}, no broker; "
            f"CPU {c['cpu_ms_per_doc']:.1f} ms/doc ({stages}); outcomes {c.get('outcomes', {})}",
        )
    s = part.get("spacy")
    if s:
        table.add_row(
            profile,
            "spaCy nlp.pipe alone",
            f"{s['docs_per_second']:.1f} docs/s",
            f"{s['docs']} texts, {s['processes']} processes, batch_size {s.get('batch', 32)}; "
            f"CPU {s['cpu_ms_per_doc']:.1f} ms/doc",
        )
    e = part.get("e2e")
    if e:
        ev, exp = e.get("events", {}), e.get("expected", {})
        seen = f"stored {ev.get('stored', 0)}, exact {ev.get('duplicate_exact', 0)}, near {ev.get('duplicate_near', 0)}"
        want = f"expected {exp.get('stored')}, {exp.get('exact')}, {exp.get('near')}"
        ok = f"{seen} ({want}: " + ("as expected)" if e["correct"] else f"WRONG COUNTS; all events {ev})")
        table.add_row(
            profile,
            "end to end (burst → last event)",
            f"{e['docs_per_second']:.1f} docs/s",
            f"{e['files']} files in {e['seconds']:.1f} s; {ok}",
        )
    if part.get("ratio_to_ceiling") is not None:
        table.add_row(
            profile, "end to end / ceiling", f"{part['ratio_to_ceiling']:.2f}", _rounds(part, "ratio_to_ceiling")
        )
    if part.get("ratio_by_cpu") is not None:
        table.add_row(
            profile,
            "ceiling CPU / end-to-end CPU per doc",
            f"{part['ratio_by_cpu']:.2f}",
            f"{part['ceiling']['cpu_ms_per_doc']:.1f} ms vs {part['e2e']['cpu_ms_per_doc']:.1f} ms "
            "(the ratio on an idle machine; robust to other load)" + _rounds(part, "ratio_by_cpu", "; "),
        )
    if part.get("ratio_to_spacy") is not None:
        table.add_row(
            profile, "end to end / spaCy nlp.pipe", f"{part['ratio_to_spacy']:.2f}", _rounds(part, "ratio_to_spacy")
        )
    if part.get("ratio_to_spacy_by_cpu") is not None:
        table.add_row(
            profile,
            "spaCy nlp.pipe CPU / end-to-end CPU per doc",
            f"{part['ratio_to_spacy_by_cpu']:.2f}",
            f"{part['spacy']['cpu_ms_per_doc']:.1f} ms vs {part['e2e']['cpu_ms_per_doc']:.1f} ms"
            + _rounds(part, "ratio_to_spacy_by_cpu", "; "),
        )
    if part.get("ceiling_to_spacy_by_cpu") is not None:
        table.add_row(
            profile,
            "spaCy nlp.pipe CPU / ceiling CPU per doc",
            f"{part['ceiling_to_spacy_by_cpu']:.2f}",
            "the stage code alone, no message path" + _rounds(part, "ceiling_to_spacy_by_cpu", "; "),
        )
    lat = part.get("latency")
    if lat:
        table.add_row(
            profile,
            f"latency at {lat['rate_per_second']:g} docs/s",
            f"p50 {lat['p50_ms']:.0f} ms",
            f"p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms over {lat['measured']} files",
        )
    if e:
        rss = e["rss"]
        per = ", ".join(f"{k} {v:.0f}" for k, v in rss["per_process_mb"].items())
        table.add_row(
            profile,
            "peak RSS, total",
            f"{rss['peak_total_mb']:.0f} MB",
            f"PSS total {rss['peak_pss_total_mb']:.0f} MB; per process RSS (MB): {per}",
        )
        cpu = e["rss"].get("cpu_seconds", {})
        if cpu:
            per_doc = ", ".join(f"{k} {1000 * v / e['files']:.1f}" for k, v in cpu.items())
            table.add_row(profile, "CPU per document", f"{1000 * sum(cpu.values()) / e['files']:.1f} ms", per_doc)


def render_stages(results: dict[str, Any], console: Console) -> None:
    """Per-stage CPU ms per document against the budgets (``<profile>.stages``)."""
    rows = [
        (profile, results[profile]["stages"]) for profile in ("fast", "full") if results.get(profile, {}).get("stages")
    ]
    if not rows:
        return
    table = Table(title="CPU per document by stage, against the budgets (medians of the rounds)")
    for column in ("profile", "stage", "CPU ms/doc", "budget ms", "ratio", "verdict", "measured as"):
        table.add_column(column, justify="right" if column in ("CPU ms/doc", "budget ms", "ratio") else "left")
    for profile, stages in rows:
        for stage, row in stages.items():
            colour = {"PASS": "green", "MISS": "red"}.get(row["verdict"], "dim")
            table.add_row(
                profile,
                stage.replace("_", " "),
                f"{row['cpu_ms_per_doc']:.2f}",
                "—" if row["budget_ms"] is None else f"{row['budget_ms']:g}",
                "—" if row["ratio"] is None else f"{row['ratio']:.2f}",
                f"[{colour}]{row['verdict']}[/{colour}]",
                row["source"],
            )
    console.print(table)


def _rounds(part: dict[str, Any], ratio: str, sep: str = "") -> str:
    """Each round's value of ``ratio`` after a "median of N rounds" label, when the profile ran
    rounds (``--repeat``); else the empty string."""
    rounds = part.get("rounds") or []
    values = [r[ratio] for r in rounds if ratio in r]
    if len(values) < 2:
        return ""
    return f"{sep}median of {len(values)} rounds, each measured within its round: " + ", ".join(
        f"{v:.3f}" for v in values
    )


def write(results: dict[str, Any], path: Path = RESULTS) -> Path:
    results = {
        "schema": SCHEMA,
        **results,
        "targets": [t.as_dict() for t in targets(results)],
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
    }
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def render_tagging(rows: list[dict[str, Any]], console: Console) -> None:
    """The tag stage alone, per profile (bench/tagging.py)."""
    tag_table = Table(title="tag stage alone (no broker, no store; median of 3 rounds)")
    for column in ("profile", "documents", "per call", "docs/s", "CPU ms/doc"):
        tag_table.add_column(column, justify="left" if column == "profile" else "right")
    names = {
        "fast": "fast: rules, keywords, folders (no NER)",
        "ner-single": "full: NER, one document per call",
        "ner-batch": "full: NER, nlp.pipe batches",
        "auto": "fast + learned auto topics",
    }
    for r in rows:
        tag_table.add_row(
            names.get(r["profile"], r["profile"]),
            str(r["documents"]),
            str(r["batch_size"]),
            f"{r['docs_per_second']:.1f}",
            f"{r.get('cpu_ms_per_doc', 0.0):.2f}",
        )
    console.print(tag_table)
