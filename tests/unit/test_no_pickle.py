"""Security properties that are cheap to lose by accident: no pickle anywhere.  The Celery
app (and so Flower, which is given the same app) accepts and writes JSON only, a pickled
message is refused before it is decoded, and no module of the project imports a
code-executing deserializer or loads YAML with an unsafe loader.  (Credentials never shown
by ``seedworker config`` or in a real worker's, watcher's and Flower's logs:
tests/security/test_credentials.py.)

(A symbolic link never makes the worker read outside the inbox: tests/chaos/test_hostile.py
and tests/integration/test_watcher.py.)
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml
from kombu.exceptions import ContentDisallowed
from kombu.serialization import loads, prepare_accept_content

from tests.support.paths import REPO
from worker.app import create_app
from worker.settings import Settings

SOURCE_DIRS = ("worker", "tasks", "bench", "tests")
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle", "joblib"}
UNSAFE_YAML = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "load_all"}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _python_files() -> list[Path]:
    files = [p for d in SOURCE_DIRS if (REPO / d).is_dir() for p in (REPO / d).rglob("*.py")]
    assert len(files) > 20
    return sorted(files)


def _settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


# -- no pickle -----------------------------------------------------------------------------------


def test_celery_accepts_and_writes_json_only() -> None:
    app = create_app(_settings(), "redis://127.0.0.1:1/0")
    conf = app.conf
    assert list(conf.accept_content) == ["json"]
    assert conf.result_accept_content in (None, ["json"])  # None: the same as accept_content
    assert (conf.task_serializer, conf.result_serializer, conf.event_serializer) == ("json", "json", "json")


def test_a_pickled_message_is_refused_before_it_is_decoded() -> None:
    app = create_app(_settings(), "redis://127.0.0.1:1/0")
    accept = prepare_accept_content(app.conf.accept_content)  # what the worker's consumer is given
    pickled_none = b"\x80\x04N."  # the pickle of None, written out so that nothing here imports pickle
    with pytest.raises(ContentDisallowed):
        loads(pickled_none, "application/x-python-serialize", "binary", accept=accept)
    assert loads(b'{"ok": true}', "application/json", "utf-8", accept=accept) == {"ok": True}


def test_no_module_imports_a_code_executing_deserializer() -> None:
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
    assert not found


def test_yaml_is_only_loaded_with_safe_loaders_and_numpy_never_unpickles() -> None:
    problems = []
    for path in _python_files():
        tree = ast.parse(path.read_bytes(), filename=str(path))
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    problems.append(f"{where}: allow_pickle is not False")
            is_yaml = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "yaml"
            if not is_yaml:
                continue
            if name in UNSAFE_YAML:
                problems.append(f"{where}: yaml.{name}")
            if name == "load":
                loader = next((kw.value for kw in node.keywords if kw.arg == "Loader"), None)
                if loader is None and len(node.args) > 1:
                    loader = node.args[1]
                if not _is_safe_loader(loader, module):
                    problems.append(f"{where}: yaml.load with {ast.unparse(loader) if loader else 'no Loader'}")
    assert not problems


def _is_safe_loader(node: ast.expr | None, module: str) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in SAFE_LOADERS:
        return True
    if isinstance(node, ast.Name):
        if node.id in SAFE_LOADERS:
            return True
        loader = getattr(importlib.import_module(module), node.id, None)
        return isinstance(loader, type) and issubclass(loader, yaml.SafeLoader)
    return False
