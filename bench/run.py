"""``make bench``: how close seedworker runs to the machine's limit.

For each profile (fast: no NER; full: NER with the shipped spaCy pipeline):

1. the in-process ceiling (:mod:`bench.ceiling`): the worker's stage code in a loop, one
   process per core, no broker;
2. (full) spaCy's own ``nlp.pipe`` throughput over the same texts;
3. end to end (:mod:`bench.e2e`): a burst of files into the inbox of ``seedworker run``
   until the last event is on the stream, with peak RSS and CPU of every process;
4. latency at light load (:mod:`bench.latency`): p50/p99 from file close to event.

Per round, each stage's CPU per document is judged against issue 21's budgets (prepare,
tag and store from the ceiling; the message path as the whole stack's CPU per document end
to end minus those three: :func:`bench.report.stage_costs`).  Prints tables with each
target's PASS/MISS and writes ``bench/results.json`` (schema in docs/benchmarks.md).
A burst is capped by ``--budget``: at most ceiling × budget files (never fewer than 500),
so a slow profile still finishes in minutes; the output says when the cap applied.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
        choices=["ceiling", "spacy", "e2e", "latency", "tagging", "large"],
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
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds per profile (ceiling, spaCy, burst); each ratio is taken within a round, the medians reported",
    )
    p.add_argument("--large-mb", type=float, default=20.0, help="size of the one large file (default 20 MB)")
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
        args.large_mb = min(args.large_mb, 2.0)
    return args


def _burst_size(requested: int, ceiling_rate: float | None, budget: float, notes: list[str], profile: str) -> int:
    if ceiling_rate is None or ceiling_rate * budget >= requested:
        return requested
    capped = max(min(500, requested), int(ceiling_rate * budget))
    if capped >= requested:
        return requested
    notes.append(
        f"{profile}: burst of {capped} files instead of {requested}: at the ceiling's "
        f"{ceiling_rate:.0f} docs/s, {requested} would take over {budget:.0f} s (--budget)"
    )
    return capped


RATIOS = ("ratio_to_ceiling", "ratio_by_cpu", "ratio_to_spacy", "ratio_to_spacy_by_cpu", "ceiling_to_spacy_by_cpu")


def _ratios(measured: dict[str, Any]) -> dict[str, float]:
    """End to end against its yardsticks, all measured in the same round."""
    e2e, ceil, spacy = measured.get("e2e"), measured.get("ceiling"), measured.get("spacy")
    ratios: dict[str, float] = {}
    if e2e and ceil:
        ratios["ratio_to_ceiling"] = round(e2e["docs_per_second"] / ceil["docs_per_second"], 3)
        if e2e["cpu_ms_per_doc"]:
            # What the ratio would be on an idle machine if every process were CPU-bound: the
            # ceiling's CPU per document over the whole stack's.  Robust to other load.
            ratios["ratio_by_cpu"] = round(ceil["cpu_ms_per_doc"] / e2e["cpu_ms_per_doc"], 3)
    if e2e and spacy:
        ratios["ratio_to_spacy"] = round(e2e["docs_per_second"] / spacy["docs_per_second"], 3)
        if e2e["cpu_ms_per_doc"]:
            # The full-profile target: spaCy's own CPU per document over the whole stack's.
            ratios["ratio_to_spacy_by_cpu"] = round(spacy["cpu_ms_per_doc"] / e2e["cpu_ms_per_doc"], 3)
    if ceil and spacy and ceil["cpu_ms_per_doc"]:
        ratios["ceiling_to_spacy_by_cpu"] = round(spacy["cpu_ms_per_doc"] / ceil["cpu_ms_per_doc"], 3)
    return ratios


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["docs_per_second"])[len(runs) // 2]


def _measure_round(
    profile: str, args: argparse.Namespace, workdir: Path, console: Console, notes: list[str], burst: int | None
) -> dict[str, Any]:
    """One round: the ceiling (and spaCy alone, full profile), then a burst end to end, in a
    directory of its own, so each ratio compares measurements taken minutes apart, not more."""
    full = profile == "full"
    measured: dict[str, Any] = {}
    if "ceiling" not in args.skip:
        n = args.full_ceiling_files if full else args.ceiling_files
        console.print(f"\\[{profile}] in-process ceiling over {n} documents…")
        measured["ceiling"] = ceiling.measure_stages(profile, n, workdir, env=args.env).as_dict()
    if full and "spacy" not in args.skip:
        console.print(f"\\[{profile}] spaCy nlp.pipe over {args.full_ceiling_files} texts…")
        measured["spacy"] = ceiling.measure_spacy(args.full_ceiling_files).as_dict()
    if "e2e" not in args.skip:
        if burst is None:
            requested = args.full_files if full else args.files
            rate = measured["ceiling"]["docs_per_second"] if "ceiling" in measured else None
            burst = _burst_size(requested, rate, args.budget, notes, profile)
        console.print(f"\\[{profile}] end to end: burst of {burst} files into seedworker run…")
        run = e2e.measure_burst(profile, burst, workdir, timeout=max(600.0, 10 * args.budget), env=args.env)
        measured["e2e"] = run
        if not run["correct"]:
            notes.append(f"{profile}: events do not account for every file: {run['events']}")
    stages = report.stage_costs(profile, measured)
    return {**measured, **_ratios(measured), **({"stages": stages} if stages else {})}


def _round_summary(r: dict[str, Any]) -> dict[str, Any]:
    """One round as ``rounds[]`` keeps it: throughputs, ratios, CPU per document by part and by stage."""
    parts = [part for part in ("ceiling", "spacy", "e2e") if part in r]
    summary: dict[str, Any] = {f"{part}_docs_per_second": r[part]["docs_per_second"] for part in parts}
    summary.update({ratio: r[ratio] for ratio in RATIOS if ratio in r})
    summary["cpu_ms_per_doc"] = {part: r[part]["cpu_ms_per_doc"] for part in parts}
    if "stages" in r:
        summary["stage_cpu_ms_per_doc"] = {k: v["cpu_ms_per_doc"] for k, v in r["stages"].items()}
    return summary


def _median_stages(profile: str, rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each stage's median CPU ms/doc over the rounds, judged against its budget."""
    out: dict[str, dict[str, Any]] = {}
    for stage in rounds[0]["stages"]:
        values = [r["stages"][stage]["cpu_ms_per_doc"] for r in rounds if stage in r.get("stages", {})]
        out[stage] = {**report.stage_row(profile, stage, round(statistics.median(values), 2)), "rounds": values}
    return out


def run_profile(
    profile: str, args: argparse.Namespace, workdir: Path, console: Console, notes: list[str]
) -> dict[str, Any]:
    """``--repeat`` rounds of :func:`_measure_round`; the median round's figures and the median
    of each ratio over the rounds (every round's are kept under ``rounds``)."""
    rounds: list[dict[str, Any]] = []
    for i in range(args.repeat):
        if args.repeat > 1:
            console.print(f"\\[{profile}] round {i + 1} of {args.repeat}")
        burst = rounds[0]["e2e"]["files"] if rounds and "e2e" in rounds[0] else None  # the same size each round
        rounds.append(_measure_round(profile, args, workdir / f"round{i}", console, notes, burst))
    out: dict[str, Any] = {}
    for part in ("ceiling", "spacy", "e2e"):
        if part in rounds[0]:
            out[part] = _median_run([r[part] for r in rounds])
    for ratio in RATIOS:
        if ratio in rounds[0]:
            out[ratio] = round(statistics.median(r[ratio] for r in rounds), 3)
    if "stages" in rounds[0]:
        out["stages"] = _median_stages(profile, rounds)
    if len(rounds) > 1:
        out["rounds"] = [_round_summary(r) for r in rounds]
        for ratio in RATIOS:
            if ratio in out:
                values = ", ".join(f"{r[ratio]:.3f}" for r in rounds)
                notes.append(f"{profile}: {ratio} in each of {len(rounds)} rounds: {values}; median {out[ratio]:.3f}")
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
    if "large" not in args.skip:
        from bench import large

        size = int(args.large_mb * 1_000_000)
        console.print(f"one {size / 1e6:g} MB text file through prepare, tag (full) and store, in a fresh process…")
        results["large"] = large.measure(size, "full")
        r = results["large"]
        console.print(
            f"large file: {r['total_seconds']} s ({r['seconds']}), peak RSS {r['peak_rss_mb']} MB, "
            f"{r['rss_after_mb']} MB held afterwards (from {r['rss_before_mb']} MB), {r['outcome']}"
        )
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
