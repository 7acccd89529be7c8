"""Names the watcher never takes: system clutter, editors' and copy tools' temporary files.

Patterns are shell globs (``fnmatch``), matched case-insensitively against each name on a
file's path below the inbox: a pattern that ends in ``/`` names a folder and everything under
it (``@eaDir/``), any other pattern a file or a folder.  The defaults are what paperless-ngx
ignores plus the names used while a file is still being written (the safe way to drop a file,
docs/delivery.md: write it as ``.name.part`` or ``name.tmp``, then rename it).  An ignored
file is left where it is: no claim, no document, no failure, no event.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

#: ``SEEDWORKER_IGNORE``'s default.
DEFAULT_IGNORE: tuple[str, ...] = (
    # hidden names: the safe-write temporary (.name.part), .DS_Store, ._x (macOS resource
    # forks), .~lock.x# (LibreOffice), .stversions/ (Syncthing), .Trash-1000/ ...
    ".*",
    ".DS_Store",
    "._*",
    ".~lock.*#",
    ".stversions/",
    # Microsoft Office owner files, Windows and Synology clutter
    "~$*",
    "desktop.ini",
    "Thumbs.db",
    "@eaDir/",
    # temporary names of editors, browsers and copy tools
    "*.tmp",
    "*.temp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.download",
    "*.swp",
    "*.swx",
    "*~",
)

#: Never taken whatever the setting says: the watcher's own claims live there.
PROCESSING_FOLDER = ".seedworker-processing"


@dataclass(frozen=True)
class IgnoreRules:
    patterns: tuple[str, ...] = DEFAULT_IGNORE

    @classmethod
    def of(cls, patterns: Sequence[str]) -> IgnoreRules:
        return cls(tuple(patterns))

    def folder(self, name: str) -> bool:
        """A folder the watcher never enters."""
        lowered = name.lower()
        return name == PROCESSING_FOLDER or any(
            fnmatch.fnmatchcase(lowered, pattern.rstrip("/").lower()) for pattern in self.patterns
        )

    def file(self, name: str) -> bool:
        """A file (or link, FIFO …) the watcher never takes."""
        lowered = name.lower()
        return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in self.patterns if not p.endswith("/"))

    def path(self, parts: Sequence[str]) -> bool:
        """A file at ``parts`` below the inbox (folders first, its own name last)."""
        if not parts:
            return True
        return any(self.folder(part) for part in parts[:-1]) or self.file(parts[-1])
