"""File-system access for the watched folder that never follows a link.

Everyone who can write into a folder of the inbox can replace that folder by a symbolic link
between the moment the watcher notes a file and the moment it claims it; a path string handed
to ``lstat``, ``rename`` or ``open`` follows links in every folder but the last (issue 19 §1:
a file outside the inbox was moved into the archive and stored).  So the watcher keeps a
handle on each of its roots (the inbox, its processing folder, the archive, failed/) and
reaches everything below them one name at a time, ``openat(..., O_NOFOLLOW | O_DIRECTORY)``,
then renames, stats, opens and unlinks relative to the folder handle it holds.  Python does not
expose ``openat2(RESOLVE_BENEATH)``; component-wise ``O_NOFOLLOW`` gives the same guarantee.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import uuid
from collections.abc import Callable, Iterable, Sequence

NAME_MAX = 255  # bytes in one path component on Linux filesystems
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
COPY_CHUNK = 1024 * 1024


def fit(name: str, suffix: str = "") -> str:
    """``name + suffix``, with ``name`` cut short so that the whole is at most NAME_MAX bytes."""
    raw, room = os.fsencode(name), NAME_MAX - len(os.fsencode(suffix))
    return os.fsdecode(raw[:room]) + suffix


def open_root(path: os.PathLike[str] | str) -> int:
    """A handle on one of the watcher's own roots (configured by the operator, so followed)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _component(part: str) -> str:
    if part in ("", ".", "..") or "/" in part:
        raise OSError(errno.EINVAL, f"not a single path component: {part!r}")
    return part


def open_beneath(root_fd: int, parts: Sequence[str]) -> int:
    """A handle on the folder ``root/parts[0]/parts[1]/…``, reached without following any link.

    A link among the parts raises ``ELOOP``, a file among them ``ENOTDIR``.  The caller closes
    the handle.
    """
    fd = os.open(".", DIR_FLAGS, dir_fd=root_fd)
    for part in parts:
        try:
            nxt = os.open(_component(part), DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def makedirs_beneath(root_fd: int, parts: Sequence[str], mode: int = 0o777) -> int:
    """``open_beneath``, creating missing folders on the way (``mode``, less the umask)."""
    fd = os.open(".", DIR_FLAGS, dir_fd=root_fd)
    for part in parts:
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(_component(part), mode, dir_fd=fd)
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def lstat_at(dir_fd: int, name: str) -> os.stat_result:
    return os.stat(_component(name), dir_fd=dir_fd, follow_symlinks=False)


def exists_at(dir_fd: int, name: str) -> bool:
    try:
        lstat_at(dir_fd, name)
    except FileNotFoundError:
        return False
    return True


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def free_name(
    dir_fd: int,
    name: str,
    tag: str,
    companions: Iterable[str] = ("",),
    mine: Callable[[str], bool] | None = None,
) -> str:
    """The name a file called ``name`` gets in a folder where names may be taken: ``name``
    itself, else ``<stem>.<tag><.ext>``, else ``<stem>.<tag>-2<.ext>``, … such that
    ``fit(name, companion)`` is free for every companion (the failed folder's ``.error.json``
    report is one; ``fit`` cuts a long name short to make room for it).

    The one rule for the archive and the failed folder alike: a file never replaces another,
    and a report never replaces a user's file that happens to carry the report's name.
    ``mine(candidate)`` may claim a name whose companions are the caller's own leftovers (a
    report written before a kill), as long as the name itself is free.
    """
    companions = tuple(companions)
    dot = name.rfind(".")
    suffix = name[dot:] if dot > 0 and len(name) - dot <= 16 else ""
    stem = name[: len(name) - len(suffix)]
    for attempt in range(1, 10_000):
        extra = "" if attempt == 1 else f".{tag}" if attempt == 2 else f".{tag}-{attempt - 1}"
        candidate = fit(stem, extra + suffix)
        if not any(exists_at(dir_fd, fit(candidate, c)) for c in companions):
            return candidate
        if mine is not None and not exists_at(dir_fd, candidate) and mine(candidate):
            return candidate
    raise OSError(errno.EEXIST, f"no free name for {name!r}")


def held_for_writing(dir_fd: int, name: str) -> bool | None:
    """Whether some process has this regular file open for writing (a writer that pauses longer
    than STABLE_SECONDS, issue 19 §5): the kernel grants a read lease only when nobody does.
    None when it will not say: we are not the file's owner (and lack CAP_LEASE), or the
    filesystem has no leases (NFS, FUSE)."""
    try:
        fd = os.open(_component(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        # A writer opening the file while the lease is held makes the kernel signal the holder,
        # by default with SIGIO, whose default action ends the process: the watcher would die
        # in that window.  SIGURG's default action is to ignore it.
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return True if exc.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def fsync_dir(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:  # some filesystems refuse fsync on a folder: the rename still stands
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise


def write_file_at(dir_fd: int, name: str, data: bytes, mode: int = 0o666) -> None:
    """``name`` holds exactly ``data`` or is untouched: written under a hidden temporary name,
    fsynced, renamed into place."""
    temp = _temp_name(name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(temp, _component(name), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _unlink_quietly(dir_fd, temp)
        raise
    fsync_dir(dir_fd)


def move_at(src_dir: int, src_name: str, dst_dir: int, dst_name: str, *, sync: bool = True) -> None:
    """Move a file from one folder handle to another so that the destination name only ever
    holds the whole file (issue 19 §11: ``shutil.move`` across filesystems left 0-byte and
    partial files under real names when the disk filled up).

    Same filesystem: one ``rename``, then the destination folder is fsynced, unless
    ``sync=False``: then the caller fsyncs it (``fsync_dir``) once after several moves into
    it (the watcher archiving a reply's files: one fsync per folder instead of one per file).
    Across filesystems: copy to a hidden temporary name in the destination, ``fsync``, rename
    it into place, fsync the destination folder (always: the source is unlinked next), then
    unlink the source; any error removes the temporary copy and leaves the source where it was.
    """
    try:
        os.rename(_component(src_name), _component(dst_name), src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        if sync:
            fsync_dir(dst_dir)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    temp = _temp_name(dst_name)
    src = os.open(src_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        st = os.fstat(src)
        dst = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            st.st_mode & 0o777,
            dir_fd=dst_dir,
        )
        try:
            try:
                while chunk := os.read(src, COPY_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(dst, view) :]
                os.fsync(dst)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dst)
            os.rename(temp, dst_name, src_dir_fd=dst_dir, dst_dir_fd=dst_dir)
        except BaseException:
            _unlink_quietly(dst_dir, temp)
            raise
    finally:
        os.close(src)
    fsync_dir(dst_dir)
    os.unlink(src_name, dir_fd=src_dir)


def _temp_name(name: str) -> str:
    return fit(f".{name}", f".{uuid.uuid4().hex[:8]}.part")


def _unlink_quietly(dir_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
