"""Who may read the data: every stored document is in the database, the archive and failed/.

Issue 19 §12: under the usual umask 022, ``seedworker.db``, ``archive/``, ``failed/`` and
``flower.db`` were 0644/0755, so any local user could read every document.  Each long-running
process (``run``, ``worker``, ``publish``, ``watch``, ``flower``) starts with ``apply``: the
umask from ``SEEDWORKER_UMASK`` (default 077: files 0600, folders 0700, as ``data/redis``
always was), inherited by its children (Celery's pool, Flower), and the data folder, archive,
failed folder and database files brought to that mode.  A SQLite file is created 0600 by
the store engine whoever creates it first.  Shared deployments set 027 (group may read).
"""

from __future__ import annotations

import os
from pathlib import Path

from worker.settings import Settings

#: Files in the data folder that hold documents or task arguments.
DATA_FILES = ("seedworker.db", "seedworker.db-wal", "seedworker.db-shm", "flower.db")


def dir_mode(settings: Settings) -> int:
    return 0o777 & ~settings.umask_bits


def file_mode(settings: Settings) -> int:
    return 0o666 & ~settings.umask_bits


def private_dir(path: Path, settings: Settings) -> None:
    """``path`` exists (created with its parents) and has the configured folder mode."""
    path.mkdir(parents=True, exist_ok=True, mode=dir_mode(settings))
    os.chmod(path, dir_mode(settings))


def apply(settings: Settings) -> None:
    """This process's umask, and the mode of the data folders and files that exist already
    (a deployment from before the setting, or one whose mode was changed)."""
    os.umask(settings.umask_bits)
    for directory in (settings.data_dir, settings.archive_dir, settings.failed_dir):
        if directory is not None and Path(directory).is_dir() and not Path(directory).is_symlink():
            os.chmod(directory, dir_mode(settings))
    if not settings.data_dir.is_dir():
        return
    for path in settings.data_dir.iterdir():
        if (path.name in DATA_FILES or path.name.startswith("flower.db.")) and not path.is_symlink():
            os.chmod(path, file_mode(settings))
