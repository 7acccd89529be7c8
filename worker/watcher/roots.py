"""Handles on the watcher's four roots: the inbox, its own processing folder, archive/, failed/.

Everything below a root is reached one name at a time through these handles, never by a path
string (``worker/inbox/fs.py`` says why).  Each handle is opened on first use and kept until
``close``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from worker import datamode
from worker.inbox import fs
from worker.settings import Settings


class Roots:
    def __init__(self, settings: Settings, own_dir: Path) -> None:
        self.settings = settings
        self.inbox_dir = settings.inbox.resolve()
        self.own_dir = own_dir
        self._fds: dict[str, int] = {}

    @property
    def inbox(self) -> int:
        return self._get("inbox")

    @property
    def own(self) -> int:
        return self._get("own")

    def archive_or_failed(self, name: str) -> int:
        assert name in ("archive", "failed")
        return self._get(name)

    def open_all(self) -> None:
        """At start: the inbox made if missing (the users' folder: its mode is theirs), archive/
        and failed/ made or brought to the configured mode, then every handle opened."""
        self.inbox_dir.mkdir(parents=True, exist_ok=True)
        for directory in (self.settings.archive_dir, self.settings.failed_dir):
            datamode.private_dir(Path(str(directory)), self.settings)
        for name in ("inbox", "own", "archive", "failed"):
            self._get(name)

    def _get(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is not None:
            return fd
        if name == "inbox":
            fd = fs.open_root(self.inbox_dir)
        elif name == "own":
            # Below the inbox, where its writers could plant a link: reached without links, and
            # private (0700, also when an older version left it open), as claim ids are keys.
            fd = self.inbox
            for part in self.own_dir.relative_to(self.inbox_dir).parts:
                parent, fd = fd, fs.makedirs_beneath(fd, [part], 0o700)
                with contextlib.suppress(OSError):
                    os.fchmod(fd, 0o700)
                if parent != self._fds["inbox"]:
                    os.close(parent)
        else:
            folder = Path(str(self.settings.archive_dir if name == "archive" else self.settings.failed_dir))
            if not folder.is_dir():
                datamode.private_dir(folder, self.settings)
            fd = fs.open_root(folder)
        self._fds[name] = fd
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
