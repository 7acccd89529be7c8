"""The layers import downward only, and worker's packages form no import cycle.

A static scan of every ``import`` in ``worker/`` and ``tasks/`` (also those inside functions
and under ``TYPE_CHECKING``: a type reference upward is a dependency upward too), so it is fast
and sees imports that only run on some paths.  Layers, bottom first:

* **foundation**: errors, models, names, settings, logs, the events contract
  (``worker/events/``), retry policy, signals, counters (``metrics``), broker and Celery app
  factory, queues, inbox helpers -- what every layer above may use;
* **pipeline**: the stages (``worker/pipeline/``), pure functions of a document;
* **store**: the database (``worker/store/``, the outbox included);
* **relay/tasks**: moving events (``worker/relay/``), the Celery tasks (``tasks/``) and what
  they run (``process``, ``runtime``), the probes, the clients (``client``, ``consumer``) and
  the watcher;
* **processes/cli**: the long-running processes, ``seedworker status``, Flower, the metrics
  endpoint and the CLI (``worker/cli/``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("worker", "tasks")

#: Module name prefixes per layer, bottom first.  A module belongs to the layer of its longest
#: matching prefix; every module must belong to one.
LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": (
        "worker.errors",
        "worker.models",
        "worker.names",
        "worker.settings",
        "worker.logs",
        "worker.events",
        "worker.retry",
        "worker.signals",
        "worker.metrics",
        "worker.datamode",
        "worker.instance",
        "worker.outage",
        "worker.broker",
        "worker.app",
        "worker.queues",
        "worker.inbox",
    ),
    "pipeline": ("worker.pipeline",),
    "store": ("worker.store",),
    "relay/tasks": (
        "worker.relay",
        "worker.export",
        "tasks",
        "worker.process",
        "worker.runtime",
        "worker.probes",
        "worker.client",
        "worker.consumer",
        "worker.watcher",
    ),
    "processes/cli": (
        "worker.cli",
        "worker.services",
        "worker.supervisor",
        "worker.status",
        "worker.flower",
        "worker.metrics_server",
    ),
}
ORDER = list(LAYERS)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every worker/tasks module ``name`` imports (``from a import b`` counts as ``a.b`` when
    that is a module, else as ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        for imported in targets:
            target = imported
            while target and target not in MODULES:  # `from worker.store.schema import X` -> the module
                target = target.rpartition(".")[0]
            if target and target not in PACKAGES and target != name:
                yield target


GRAPH = {name: set(_imported(name, path)) for name, path in MODULES.items()}


def layer_of(module: str) -> str:
    best = max(
        ((prefix, layer) for layer, prefixes in LAYERS.items() for prefix in prefixes if _within(module, prefix)),
        key=lambda pair: len(pair[0]),
        default=None,
    )
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {Path(__file__).name}")
    return best[1]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def unit_of(module: str) -> str:
    """The package a module belongs to for the cycle check: ``worker.store.repository`` ->
    ``worker.store``; a top-level module is its own unit; ``tasks.*`` -> ``tasks``."""
    parts = module.split(".")
    if parts[0] == "tasks":
        return "tasks"
    if len(parts) >= 2 and f"worker.{parts[1]}" in MODULES and (ROOT / "worker" / parts[1]).is_dir():
        return f"worker.{parts[1]}"
    return module


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        if module not in PACKAGES:
            layer_of(module)


@pytest.mark.parametrize("layer", ORDER)
def test_a_layer_imports_only_its_own_and_lower_layers(layer: str) -> None:
    rank = ORDER.index(layer)
    upward = sorted(
        f"{module} ({layer}) imports {target} ({layer_of(target)})"
        for module, targets in GRAPH.items()
        if module not in PACKAGES and layer_of(module) == layer
        for target in targets
        if ORDER.index(layer_of(target)) > rank
    )
    assert upward == []


def test_no_import_cycle_between_packages() -> None:
    units: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        if module in PACKAGES:
            continue
        units.setdefault(unit_of(module), set()).update(unit_of(t) for t in targets if unit_of(t) != unit_of(module))
    cycles = _cycles(units)
    assert cycles == [], cycles


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                members.append(top)
                if top == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_scan_sees_imports() -> None:
    """The scan is not vacuous: known downward imports are seen, and an upward one would be."""
    assert "worker.store.outbox" in GRAPH["worker.store.repository"]
    assert "worker.store.outbox" in GRAPH["worker.relay.publisher"]
    assert ORDER.index(layer_of("worker.cli.status")) > ORDER.index(layer_of("worker.store.repository"))
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
