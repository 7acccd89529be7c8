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
        Target("fast: end-to-end docs/s", get("fast", "e2e", "docs_per_second"), 500, True, " docs/s"),
        Target("fast: end-to-end / ceiling", get("fast", "ratio_to_ceiling"), 0.6, True),
        Target("full: end-to-end / spaCy nlp.pipe", get("full", "ratio_to_spacy"), 0.7, True),
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
        part = results.get(profile)
        if not part:
            continue
        c = part.get("ceiling")
        if c:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in c.get("stage_cpu_ms_per_doc", {}).items())
            table.add_row(
                profile,
                "in-process ceiling",
                f"{c['docs_per_second']:.1f} docs/s",
                f"{c['docs']} docs, {c['processes']} processes, no broker; "
                f"CPU {c['cpu_ms_per_doc']:.1f} ms/doc ({stages})",
            )
        s = part.get("spacy")
        if s:
            table.add_row(
                profile,
                "spaCy nlp.pipe alone",
                f"{s['docs_per_second']:.1f} docs/s",
                f"{s['docs']} texts, {s['processes']} processes",
            )
        e = part.get("e2e")
        if e:
            ok = "all accounted for" if e["correct"] else f"WRONG COUNTS {e['events']}"
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
    console.print(table)
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
    for column in ("profile", "documents", "per call", "docs/s"):
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
        )
    console.print(tag_table)
