"""Claims: a file taken out of the inbox by one atomic rename, and kept until its outcome.

Layout (issue 21: the previous one made and removed a folder per file inside the watched
tree, and ``os.rmdir`` was 28 % of the watcher's CPU): every claim of a watcher is one entry
of its own folder ``inbox/.seedworker-processing/<watcher>/``, named

    <claim id>_<path in the inbox, '%' as %25 and '/' as %2F>

e.g. ``3f0c…9a_politics%2Fx.txt`` for ``inbox/politics/x.txt``.  A claim is one ``renameat``
into a folder that exists (and is watched) already; finishing it is one rename out.  A file
whose encoded path would not fit in one name (255 bytes, with room for a version) is claimed
as before, into ``<watcher>/<claim id>/<its inbox folders>/x.txt``; that nested layout is also
what earlier versions left on disk, and ``recover`` takes both.

The guarantees:

* two watchers cannot both win: the claim is one ``rename`` of the inbox entry, so of two
  watchers exactly one moves it and the other sees ``ENOENT``;
* a file is taken only if it is still the one that was noted (same device and inode), through
  folder handles that never follow a link (``worker/inbox/fs.py``);
* claims survive a crash: they are on disk, and a restarted watcher re-sends each with the
  same idempotency key (the store turns the repeat into a no-op); the key is
  ``claim:<claim id>.<token>``, the token an HMAC of the id under a secret in DATA_DIR, so
  nobody who can read the processing folder can send a key of ours (docs/delivery.md).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import hmac
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.inbox import fs
from worker.logs import get_logger
from worker.models import FileSummary
from worker.names import CLAIM_SECRET_FILE
from worker.watcher.roots import Roots

if TYPE_CHECKING:
    from worker.watcher.detect import Candidate

log = get_logger("seedworker.watcher")

#: A claim id: a uuid4 in hex, then ``.<n>`` for the n-th version of a file that changed after
#: it was sent (``outcomes.supersede``).
CLAIM_ID = re.compile(r"[0-9a-f]{32}(\.[0-9]{1,6})?")
#: Bytes kept free in a flat claim's name for the version suffix of a later ``supersede``.
VERSION_ROOM = 7


def display_name(name: str) -> str:
    """A file or folder name as it may travel in messages, logs, events and the database.

    Names are bytes on Linux: bytes that are not UTF-8 (surrogate escapes after ``fsdecode``)
    become U+FFFD and a backslash becomes U+FF3C, so a hostile name can neither break JSON,
    PostgreSQL or a log line nor be refused by the request model.  The file on disk keeps
    its real name.  Control characters (a newline, an escape sequence) become their visible
    Control Pictures (U+2400 block), which the request model accepts where it refuses controls.
    """
    shown = os.fsencode(name).decode("utf-8", "replace").replace("\\", "\uff3c").translate(_CONTROL_PICTURES)
    return shown[:255] or "unnamed"


#: C0 controls to U+2400..U+241F, DEL to U+2421, C1 controls to U+FFFD.
_CONTROL_PICTURES = {
    **{code: 0x2400 + code for code in range(0x20)},
    0x7F: 0x2421,
    **{code: 0xFFFD for code in range(0x80, 0xA0)},
}


def flat_name(claim_id: str, rel: Path) -> str | None:
    """The claim's entry name in the watcher's folder, or None when its inbox path does not fit."""
    name = claim_id + "_" + "%2F".join(part.replace("%", "%25") for part in rel.parts)
    return name if len(os.fsencode(name)) <= fs.NAME_MAX - VERSION_ROOM else None


def parse_flat(name: str) -> tuple[str, Path] | None:
    """``flat_name`` read back: (claim id, inbox path), or None if ``name`` is not one."""
    claim_id, sep, encoded = name.partition("_")
    if not sep or not CLAIM_ID.fullmatch(claim_id):
        return None
    parts = [part.replace("%25", "%") for part in encoded.split("%2F")]
    if any(part in ("", ".", "..") or "/" in part for part in parts):
        return None
    return claim_id, Path(*parts)


def claim_secret(data_dir: Path) -> bytes:
    """The watcher's key for claim tokens: ``DATA_DIR/claim-key.secret``, made once (0600).

    It must outlive the watcher (a recovered claim is re-sent with the same key) and stay out of
    the inbox and of Redis, where producers can look."""
    path = Path(data_dir) / CLAIM_SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32).hex().encode())
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        secret = fh.read().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret; remove it and restart the watcher")
    return secret


def claim_token(secret: bytes, claim_id: str) -> str:
    return hmac.new(secret, claim_id.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass
class Claim:
    claim_id: str
    path: Path  # where the claimed entry sits now
    rel: Path  # its path relative to the inbox (folder tags, archive layout)
    sent_at: float = 0.0
    summary: FileSummary | None = None
    read_as: tuple[int, int] | None = None  # (size, mtime_ns) when the sent bytes were read
    supersedes: dict[str, Any] | None = None  # the partial outcome this claim's content replaces
    settling: Candidate | None = None  # superseded: waiting for the file to be quiet to re-send
    token: str = ""  # HMAC of the claim id under the watcher's secret (see claim_token)
    flat: bool = False  # one entry of the watcher's folder (else the nested layout)

    @property
    def key(self) -> str:
        """The idempotency key: ``claim:<claim id>.<token>``.  The claim id is visible in the
        processing folder; the token is not, so no producer can send this key (docs/delivery.md)."""
        return f"claim:{self.claim_id}.{self.token}" if self.token else f"claim:{self.claim_id}"

    @property
    def entry(self) -> str:
        """The claimed entry's name in the folder that holds it."""
        return self.path.name

    @functools.cached_property
    def name(self) -> str:
        """The file name as messages, events and logs show it (see ``display_name``); computed
        once (``rel`` never changes), as ``shown``."""
        return display_name(self.rel.name)

    @functools.cached_property
    def shown(self) -> str:
        """The path relative to the inbox, as messages, events and logs show it."""
        return "/".join(display_name(part) for part in self.rel.parts)

    @property
    def folders(self) -> list[str]:
        """Folder names that may become tags: shown names, 1 to 100 characters, at most 20."""
        names = (" ".join(display_name(p).split())[:100] for p in self.rel.parent.parts)
        return [name for name in names if name][:20]


class Claims:
    """This watcher's claims: on disk in its folder, in flight (sent, no reply yet) in memory."""

    def __init__(self, roots: Roots, secret: bytes) -> None:
        self.roots = roots
        self.inbox = roots.inbox_dir
        self.own_dir = roots.own_dir
        self._secret = secret
        self._lock = threading.Lock()
        self._in_flight: dict[str, Claim] = {}

    def _make(self, claim_id: str, path: Path, rel: Path, *, flat: bool) -> Claim:
        return Claim(claim_id=claim_id, path=path, rel=rel, token=claim_token(self._secret, claim_id), flat=flat)

    # -- taking ------------------------------------------------------------------------------
    def take(self, path: Path, noted: Candidate | None = None) -> Claim | None:
        """Move the file into this watcher's folder, by one atomic rename.

        Both ends are reached through folder handles that never follow a link (a user who
        may write into an inbox folder can swap that folder for a link to anywhere between
        the moment a file is noted and this one: issue 19 §1), and the file must still be
        the one that was noted, same device and inode, or it is not taken.
        """
        claim_id = uuid.uuid4().hex
        rel = path.relative_to(self.inbox)
        shown = "/".join(display_name(part) for part in rel.parts)
        flat = flat_name(claim_id, rel)
        try:
            src = fs.open_beneath(self.roots.inbox, rel.parent.parts)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                log.warning("not claimed: a folder on its path is not a folder any more", file=shown)
            return None
        try:
            st = fs.lstat_at(src, rel.name)
            if noted is not None and (st.st_dev, st.st_ino) != (noted.dev, noted.ino):
                log.warning("not claimed: another file took its place since it was noted", file=shown)
                return None  # the newcomer is noted afresh by the next event or scan
            if flat is not None:
                os.rename(rel.name, flat, src_dir_fd=src, dst_dir_fd=self.roots.own)
            else:
                dst = fs.makedirs_beneath(self.roots.own, [claim_id, *rel.parent.parts])
                try:
                    os.rename(rel.name, rel.name, src_dir_fd=src, dst_dir_fd=dst)
                finally:
                    os.close(dst)
        except FileNotFoundError:
            if flat is None:
                shutil.rmtree(self.own_dir / claim_id, ignore_errors=True)  # someone else won
            return None
        except OSError as exc:
            if flat is None:
                shutil.rmtree(self.own_dir / claim_id, ignore_errors=True)
            log.warning("could not claim file", file=shown, error=str(exc))
            return None
        finally:
            os.close(src)
        where = self.own_dir / flat if flat is not None else self.own_dir / claim_id / rel
        claim = self._make(claim_id, where, rel, flat=flat is not None)
        self.keep(claim)
        return claim

    def recover(self) -> list[Claim]:
        """Claims left on disk by an earlier run of this watcher (this version's flat entries
        and the nested folders of earlier versions), in flight again, to be re-sent."""
        if not self.own_dir.exists():
            return []
        found: list[Claim] = []
        for entry in sorted(os.scandir(self.own_dir), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                path = claimed_entry(Path(entry.path))
                if path is None:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    continue
                claim = self._make(entry.name, path, path.relative_to(entry.path), flat=False)
            elif (parsed := parse_flat(entry.name)) is not None:
                claim = self._make(parsed[0], Path(entry.path), parsed[1], flat=True)
            else:
                log.warning("left alone: not a claim of this watcher", entry=display_name(entry.name))
                continue
            self.keep(claim)
            found.append(claim)
        return found

    def supersede(self, claim: Claim) -> tuple[Claim, int]:
        """The claim as its next version ``<claim id>.<n>`` (one rename, so the new key survives
        a restart); OSError if it cannot be renamed."""
        base, _, version = claim.claim_id.partition(".")
        number = int(version) + 1 if version.isdigit() else 2
        new_id = f"{base}.{number}"
        own = self.roots.own
        if claim.flat:
            name = new_id + claim.entry[len(claim.claim_id) :]
            os.rename(claim.entry, name, src_dir_fd=own, dst_dir_fd=own)
            return self._make(new_id, self.own_dir / name, claim.rel, flat=True), number
        os.rename(claim.claim_id, new_id, src_dir_fd=own, dst_dir_fd=own)
        return self._make(new_id, self.own_dir / new_id / claim.rel, claim.rel, flat=False), number

    def release(self, claim: Claim) -> None:
        """After the claimed file moved on: nothing for a flat claim; a nested one's folders go,
        one rmdir per level (shutil.rmtree opens and lists each folder first), rmtree only if
        something is left inside."""
        if claim.flat:
            return
        folder = claim.path.parent  # own_dir / claim_id / the file's inbox folders
        try:
            for _ in claim.rel.parts:  # the inbox folders, innermost first, then the claim's own
                os.rmdir(folder)
                folder = folder.parent
        except OSError:
            shutil.rmtree(self.own_dir / claim.claim_id, ignore_errors=True)

    def open_folder(self, claim: Claim) -> int:
        """A handle on the folder that holds the claimed entry, reached from the watcher's own
        folder one name at a time without following a link (the caller closes it)."""
        try:
            parts = claim.path.parent.relative_to(self.own_dir).parts
        except ValueError:
            return os.open(claim.path.parent, fs.DIR_FLAGS)  # a claim made by hand (tests): as given
        return os.dup(self.roots.own) if not parts else fs.open_beneath(self.roots.own, parts)

    @contextlib.contextmanager
    def folder(self, claim: Claim) -> Iterator[int]:
        """``open_folder``, closed at the end of the block (a flat claim's folder is the
        watcher's own, whose handle is kept open)."""
        if claim.flat and claim.path.parent == self.own_dir:
            yield self.roots.own
            return
        fd = self.open_folder(claim)
        try:
            yield fd
        finally:
            os.close(fd)

    # -- in flight ---------------------------------------------------------------------------
    def keep(self, claim: Claim) -> None:
        with self._lock:
            self._in_flight[claim.key] = claim

    def keep_unless_replaced(self, claim: Claim) -> None:
        with self._lock:
            self._in_flight.setdefault(claim.key, claim)

    def get(self, key: str) -> Claim | None:
        with self._lock:
            return self._in_flight.get(key)

    def pop(self, key: str) -> Claim | None:
        with self._lock:
            return self._in_flight.pop(key, None)

    def all(self) -> list[Claim]:
        with self._lock:
            return list(self._in_flight.values())

    def room(self, limit: int) -> int:
        with self._lock:
            return max(0, limit - len(self._in_flight))

    def __len__(self) -> int:
        with self._lock:
            return len(self._in_flight)


def claimed_entry(claim_dir: Path) -> Path | None:
    """The one entry (file, link, FIFO...) inside a nested claim's folder, or None if it is empty.

    Links to directories count as entries: ``os.walk`` lists them among the folders.
    """
    for root, dirs, files in os.walk(claim_dir):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        if files or links:
            return Path(root) / sorted([*files, *links])[0]
    return None
