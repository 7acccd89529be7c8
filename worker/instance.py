"""Which seedworker instance a command means, wherever it is run (like git finds its repository).

1. ``SEEDWORKER_DATA_DIR`` (the environment, or ``.env`` in the working directory) names the
   data directory outright.
2. Else a ``seedworker.toml`` in the working directory or any parent marks an instance: its
   directory is the root, with ``data/`` and ``inbox/`` beside the file unless it says
   otherwise.  The file may set any setting by its lower-case name (``data_dir = "/srv/x"``);
   relative paths in it are relative to the file.  The repository ships one, so a clone is
   an instance of its own.
3. Else the per-user default: ``platformdirs.user_data_dir("seedworker")``
   (``~/.local/share/seedworker`` on Linux), with the inbox inside it.

Whatever a command starts, it starts there; a command that only reads never creates an
instance: it says where it looked (:func:`not_found`).  ``seedworker run`` holds
:class:`RunLock` on the data directory, so a second one refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import AlreadyRunning, ConfigError, InstanceNotFound

CONFIG_NAME = "seedworker.toml"
APP_NAME = "seedworker"
LOCK_NAME = "seedworker.lock"


def user_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def find_config(start: Path | None = None) -> Path | None:
    """The nearest ``seedworker.toml`` in ``start`` (default: the working directory) or above."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Discovery:
    """Where the instance is, and how it was found (for messages)."""

    config_file: Path | None
    searched_from: Path

    @property
    def root(self) -> Path:
        return self.config_file.parent if self.config_file is not None else user_data_dir()

    def defaults(self, path_fields: set[str], known: set[str]) -> dict[str, Any]:
        """The settings this instance gives when neither the environment nor .env does."""
        root = self.root
        values: dict[str, Any] = (
            {"data_dir": root / "data", "inbox": root / "inbox"}
            if self.config_file is not None
            else {"data_dir": root, "inbox": root / "inbox"}
        )
        if self.config_file is None:
            return values
        try:
            table = tomllib.loads(self.config_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{self.config_file}: {exc}") from exc
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"{self.config_file}: unknown setting(s) {', '.join(unknown)} (see `seedworker config`)")
        for name, value in table.items():
            relative = name in path_fields and isinstance(value, str) and value
            values[name] = root / value if relative else value  # an absolute path stays as it is
        return values

    def describe(self) -> str:
        if self.config_file is not None:
            return f"found by {self.config_file}"
        return f"the per-user default (no {CONFIG_NAME} in {self.searched_from} or above)"


def discover(cwd: Path | None = None) -> Discovery:
    start = (cwd or Path.cwd()).resolve()
    return Discovery(config_file=find_config(start), searched_from=start)


def data_dir_from_environment() -> bool:
    return bool(os.environ.get("SEEDWORKER_DATA_DIR"))


def not_found(data_dir: Path, missing: str) -> InstanceNotFound:
    """The error of a read-only command that found no instance: where it looked."""
    if data_dir_from_environment():
        how = f"SEEDWORKER_DATA_DIR={os.environ['SEEDWORKER_DATA_DIR']}"
    else:
        found = discover()
        how = f"SEEDWORKER_DATA_DIR unset; {found.describe()}"
    return InstanceNotFound(
        f"no seedworker instance at {data_dir} ({missing}; {how}): start one there with `seedworker run`, "
        f"or point to one with SEEDWORKER_DATA_DIR or a {CONFIG_NAME}"
    )


class RunLock:
    """An exclusive lock on a data directory, held by ``seedworker run`` for its lifetime.

    ``flock`` belongs to the open file, so the kernel releases it when the process dies,
    even by SIGKILL: a stale lock file never blocks the next start.  The file holds the pid
    for the message; children are started without it (``close_fds``).
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(
                f"seedworker is already running on {self.path.parent}, pid {pid} "
                f"(stop it with Ctrl-C in its terminal or `kill {pid}`)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None
