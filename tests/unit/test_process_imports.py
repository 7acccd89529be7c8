"""What each long-running process loads: memory is per process, so a module that only the
worker needs must not ride along into the publisher or the watcher (docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The worker's heavy dependencies: the topic classifier (numpy), MinHash (rensa), the tag stage.
_WORKER_ONLY = (
    "numpy",
    "rensa",
    "worker.pipeline.tag",
    "worker.pipeline.classifier",
    "worker.store.near_index",
    "worker.store.writethru_index",
)


@pytest.mark.parametrize(
    "modules",
    [
        pytest.param(
            ("worker.relay", "worker.relay.publisher", "worker.store.outbox", "worker.store.repository"), id="publisher"
        ),
        pytest.param(("worker.watcher",), id="watcher"),
    ],
)
def test_the_publisher_and_the_watcher_do_not_load_the_worker_stages(modules: tuple[str, ...]) -> None:
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
        f"print(sorted(m for m in {_WORKER_ONLY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
