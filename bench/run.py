"""``make bench``: how close seedworker runs to the machine's limit.

For each profile (fast: no NER; full: NER with the shipped spaCy pipeline):

1. the in-process ceiling (:mod:`bench.ceiling`): the worker's stage code in a loop, one
   process per core, no broker;
2. (full) spaCy's own ``nlp.pipe`` throughput over the same texts;
3. end to end (:mod:`bench.e2e`): a burst of files into the inbox of ``seedworker run``
   until the last event is on the stream, with peak RSS and CPU of every process;
4. latency at light load (:mod:`bench.latency`): p50/p99 from file close to event.

Prints a table with each target's PASS/MISS and writes ``bench/results.json``.
A burst is capped by ``--budget``: at most ceiling × budget files (never fewer than 500),
so a slow profile still finishes in minutes; the output says when the cap applied.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import ceiling, e2e, latency, report

PROFILES = {"fast": ["fast"], "full": ["full"], "both": ["fast", "full"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="both")
    p.add_argument("--files", type=int, default=10_000, help="burst size, fast profile (default 10000)")
    p.add_argument("--full-files", type=int, default=2_000, help="burst size, full profile (default 2000)")
    p.add_argument("--ceiling-files", type=int, default=1_000, help="documents for the fast ceiling")
    p.add_argument("--full-ceiling-files", type=int, default=400, help="documents for the full ceiling and spaCy")
    p.add_argument("--budget", type=float, default=150.0, help="seconds a burst may take at the ceiling's rate")
    p.add_argument("--latency-seconds", type=float, default=60.0)
    p.add_argument("--latency-rate", type=float, default=5.0, help="documents per second")
    p.add_argument(
        "--latency-profiles", choices=sorted(PROFILES), default="fast", help="profiles to measure latency for"
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["ceiling", "spacy", "e2e", "latency", "tagging"],
        help="repeatable",
    )
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a SEEDWORKER_ setting for the stacks, e.g. --set WATCH_BATCH=1 (repeatable)",
    )
    p.add_argument("--repeat", type=int, default=1, help="end-to-end runs per profile; the median is reported")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run in about two minutes")
    p.add_argument("--output", type=Path, default=report.RESULTS)
    p.add_argument("--workdir", type=Path, help="keep the stacks' directories here (default: a temporary one)")
    args = p.parse_args(argv)
    args.env = {}
    for item in args.settings:
        name, sep, value = item.partition("=")
        if not sep or not name:
            p.error(f"--set wants NAME=VALUE, not {item!r}")
        args.env["SEEDWORKER_" + name.upper().removeprefix("SEEDWORKER_")] = value
    if args.quick:
        args.files, args.full_files = min(args.files, 400), min(args.full_files, 100)
        args.ceiling_files, args.full_ceiling_files = min(args.ceiling_files, 200), min(args.full_ceiling_files, 60)
        args.latency_seconds = min(args.latency_seconds, 10.0)
        args.budget = min(args.budget, 60.0)
    return args


def _burst_size(requested: int, ceiling_rate: float | None, budget: float, notes: list[str], profile: str) -> int:
    if ceiling_rate is None or ceiling_rate * budget >= requested:
        return requested
    capped = max(min(500, requested), int(ceiling_rate * budget))
    notes.append(
        f"{profile}: burst of {capped} files instead of {requested}: at the ceiling's "
        f"{ceiling_rate:.0f} docs/s, {requested} would take over {budget:.0f} s (--budget)"
    )
    return capped


def run_profile(
    profile: str, args: argparse.Namespace, workdir: Path, console: Console, notes: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    full = profile == "full"
    ceiling_rate: float | None = None
    if "ceiling" not in args.skip:
        n = args.full_ceiling_files if full else args.ceiling_files
        console.print(f"\\[{profile}] in-process ceiling over {n} documents…")
        c = ceiling.measure_stages(profile, n, workdir, env=args.env)
        out["ceiling"] = c.as_dict()
        ceiling_rate = c.docs_per_second
    if full and "spacy" not in args.skip:
        console.print(f"\\[{profile}] spaCy nlp.pipe over {args.full_ceiling_files} texts…")
        out["spacy"] = ceiling.measure_spacy(args.full_ceiling_files).as_dict()
    if "e2e" not in args.skip:
        requested = args.full_files if full else args.files
        n = _burst_size(requested, ceiling_rate, args.budget, notes, profile)
        console.print(f"\\[{profile}] end to end: burst of {n} files into seedworker run…")
        runs = []
        for i in range(args.repeat):
            runs.append(
                e2e.measure_burst(profile, n, workdir / f"run{i}", timeout=max(600.0, 10 * args.budget), env=args.env)
            )
        runs.sort(key=lambda r: r["docs_per_second"])
        out["e2e"] = runs[len(runs) // 2]  # the median run
        if len(runs) > 1:
            out["e2e_runs"] = [
                {k: r[k] for k in ("docs_per_second", "cpu_ms_per_doc", "seconds", "correct")} for r in runs
            ]
            notes.append(
                f"{profile}: end to end is the median of {len(runs)} runs: "
                + ", ".join(f"{r['docs_per_second']:.1f}" for r in runs)
                + " docs/s"
            )
        for r in runs:
            if not r["correct"]:
                notes.append(f"{profile}: events do not account for every file: {r['events']}")
    if "e2e" in out and "ceiling" in out:
        out["ratio_to_ceiling"] = round(out["e2e"]["docs_per_second"] / out["ceiling"]["docs_per_second"], 3)
    if "e2e" in out and "ceiling" in out and out["e2e"]["cpu_ms_per_doc"]:
        # What the ratio would be on an idle machine if every process were CPU-bound: the
        # ceiling's CPU per document over the whole stack's.  Robust to other load.
        out["ratio_by_cpu"] = round(out["ceiling"]["cpu_ms_per_doc"] / out["e2e"]["cpu_ms_per_doc"], 3)
    if "e2e" in out and "spacy" in out:
        out["ratio_to_spacy"] = round(out["e2e"]["docs_per_second"] / out["spacy"]["docs_per_second"], 3)
    if "latency" not in args.skip and profile in PROFILES[args.latency_profiles]:
        console.print(f"\\[{profile}] latency at {args.latency_rate:g} docs/s for {args.latency_seconds:g} s…")
        out["latency"] = latency.measure_latency(
            profile, workdir, rate=args.latency_rate, seconds=args.latency_seconds, env=args.env
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = report.wide_console()
    started = time.monotonic()
    results: dict[str, Any] = {"machine": report.machine(), "notes": []}
    if args.quick:
        results["notes"].append("--quick: small sizes, a smoke run; the figures are not the benchmark")
    if args.env:
        results["notes"].append(f"stacks ran with {args.env}")
    results["settings"] = args.env
    with tempfile.TemporaryDirectory(prefix="seedworker-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for profile in PROFILES[args.profile]:
            results[profile] = run_profile(profile, args, workdir, console, results["notes"])
    if "tagging" not in args.skip:
        from dataclasses import asdict

        from bench import tagging

        count = 16 if args.quick else 64
        console.print(f"tag stage alone over {count} documents (fast, NER one by one, NER in batches, auto)…")
        results["tagging"] = [asdict(r) for r in tagging.measure_tagging(tagging.default_texts(count))]
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["notes"].append(
        f"load average {results['machine']['load_average_at_start']} at start, "
        f"{results['machine']['load_average_at_end']} at end, on {os.cpu_count()} cores"
    )
    report.render(results, console)
    path = report.write(results, args.output)
    console.print(f"wrote {path} ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
