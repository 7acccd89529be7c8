"""Reading a claimed file safely: never through a link, never a FIFO, never more than the limit."""

from __future__ import annotations

import errno
import os
import stat

from worker.errors import TooLarge, UnreadableFile, UnsafePath
from worker.inbox import fs
from worker.settings import Settings
from worker.watcher.claims import Claim, Claims, display_name


class Reader:
    def __init__(self, settings: Settings, claims: Claims) -> None:
        self.settings = settings
        self.claims = claims

    def read(self, claim: Claim) -> bytes:
        """Read the claimed file: never through a link, never a FIFO, never more than the limit.

        The claim's folders are walked one handle at a time with ``O_NOFOLLOW``; then
        ``lstat`` decides before anything is opened: a link is never followed (not even to
        learn what it points at beyond its target's name), a FIFO, socket, device or
        directory is never opened, a file with other hard links (perhaps to a file outside
        the inbox) is refused, and an oversized file is never read.  The open itself is
        ``O_NOFOLLOW | O_NONBLOCK`` and is checked again with ``fstat``, so a file swapped
        for a link or a FIFO after the ``lstat`` is refused too.
        """
        shown = claim.shown
        try:
            folder = self.claims.open_folder(claim)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(
                    f"a folder on the way to '{shown}' is a link; seedworker never follows links"
                ) from None
            raise UnreadableFile(f"'{shown}' vanished before it could be read: {exc.strerror}") from None
        try:
            data, st = self.read_at(folder, claim.entry, shown)
        finally:
            os.close(folder)
        claim.read_as = (st.st_size, st.st_mtime_ns)
        return data

    def read_at(self, folder: int, name: str, shown: str) -> tuple[bytes, os.stat_result]:
        """The bytes of a regular file, and its ``fstat`` from before they were read."""
        try:
            st = fs.lstat_at(folder, name)
        except OSError as exc:
            raise UnreadableFile(f"'{shown}' vanished before it could be read: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            target = display_name(os.readlink(name, dir_fd=folder))
            raise UnsafePath(f"'{shown}' is a symbolic link (to {target!r}); seedworker never follows links")
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"'{shown}' is not a regular file ({_kind(st.st_mode)})")
        self._check_links(st, shown)
        limit = self.settings.max_file_bytes
        if st.st_size > limit:
            raise TooLarge(
                f"'{shown}' is {st.st_size} bytes, over the limit of {limit} bytes", size=st.st_size, limit=limit
            )
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"'{shown}' became a symbolic link") from None
            raise UnreadableFile(f"cannot open '{shown}': {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            opened = os.fstat(fh.fileno())
            if not stat.S_ISREG(opened.st_mode) or not fs.same_file(opened, st):
                raise UnreadableFile(f"'{shown}' stopped being the same regular file before it was read")
            self._check_links(opened, shown)
            try:
                data = fh.read(limit + 1)
            except OSError as exc:
                raise UnreadableFile(f"cannot read '{shown}': {exc.strerror}") from None
        if len(data) > limit:
            raise TooLarge(f"'{shown}' grew over the limit of {limit} bytes while being read", limit=limit)
        return data, opened

    def _check_links(self, st: os.stat_result, shown: str) -> None:
        """A second hard link may be a file outside the inbox (issue 19 §1): its text would be
        stored and the archived copy would stay linked to it."""
        if st.st_nlink > 1 and not self.settings.allow_hardlinks:
            raise UnsafePath(
                f"'{shown}' has {st.st_nlink} hard links; seedworker takes only files with one"
                " (SEEDWORKER_ALLOW_HARDLINKS=true to take them)"
            )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
