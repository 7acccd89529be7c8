"""A corpus of hostile inbox entries, built on disk for the chaos tests.

``build`` writes every entry into a staging folder on the same filesystem as the inbox;
``release`` renames them all into the inbox at once (so the watcher sees finished entries,
even 255-byte names that a temp-name-then-rename copy could not write).  Two entries are
live instead (``grow``: a file still being written; ``vanish``: a file deleted before it
is taken) and are started by the test once the stack runs.

Each entry says what must become of it:

* ``failed:<reason>`` -- a ``document.failed`` event with that reason (``events`` of them
  for JSON Lines), the entry kept in failed/ with ``<name>.error.json``;
* ``stored`` -- legitimately valid: a ``document.stored`` event and the file archived;
* ``untouched`` -- not an input at all (a folder): left where it is, no event;
* ``gone`` -- deleted by its producer before the watcher took it: no event, no crash.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import socket
import stat
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import documents
from worker.watcher import display_name

MIB = 1024 * 1024


@dataclass(frozen=True)
class Hostile:
    id: str  # short name for test ids
    name: str  # the entry's name in the inbox (may hold surrogate escapes: bytes that are not UTF-8)
    expect: str  # failed:<reason> | stored | untouched | gone
    events: int = 1
    why: str = ""

    @property
    def shown(self) -> str:
        """The file name events, the database and .error.json carry."""
        return display_name(self.name)

    @property
    def reason(self) -> str | None:
        return self.expect.split(":", 1)[1] if self.expect.startswith("failed:") else None


@dataclass
class Corpus:
    staging: Path
    secret: Path
    secret_text: str
    items: list[Hostile] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # id -> why it could not be built here
    contents: dict[str, bytes] = field(default_factory=dict)  # id -> bytes of a regular file

    def by_id(self, item_id: str) -> Hostile:
        return next(h for h in self.items if h.id == item_id)

    @property
    def expected_events(self) -> int:
        return sum(h.events for h in self.items if h.expect.startswith(("failed:", "stored")))


def _file(corpus: Corpus, item: Hostile, data: bytes) -> None:
    (corpus.staging / item.name).write_bytes(data)
    corpus.items.append(item)
    corpus.contents[item.id] = data


def _zip_bomb() -> bytes:
    """100 MiB of zeros deflated to about 100 KiB: seedworker must never inflate it."""
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("bomb.txt", "w", force_zip64=True) as member,
    ):
        chunk = b"\0" * MIB
        for _ in range(100):
            member.write(chunk)
    return buf.getvalue()


def _billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?><!DOCTYPE lolz [' + "".join(entities) + "]><html><body><p>&lol9;</p></body></html>"
    ).encode()


def _yaml_bomb() -> bytes:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    body = "The body of a note whose front matter is a YAML billion laughs still counts as a document.\n"
    return ("---\n" + "\n".join(lines) + "\n---\n" + body).encode()


def build(staging: Path, outside: Path, *, max_file_bytes: int) -> Corpus:
    """Every hostile entry in ``staging``; a secret file and a folder in ``outside``."""
    staging.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    secret_text = f"TOP-SECRET-{uuid.uuid4().hex}"
    secret = outside / "secret.txt"
    secret.write_text(f"{secret_text}\nThis file is outside the inbox and must never be read.\n")
    (outside / "folder").mkdir(exist_ok=True)
    (outside / "folder" / "inside.txt").write_text(f"{secret_text} (inside a folder outside the inbox)\n")
    c = Corpus(staging=staging, secret=secret, secret_text=secret_text)

    # -- nothing to read --------------------------------------------------------------------
    _file(c, Hostile("empty", "empty.txt", "failed:empty"), b"")
    _file(c, Hostile("whitespace", "whitespace.txt", "failed:empty"), b" \t\r\n\n \x0b\x0c  \n")
    _file(c, Hostile("bom-only", "bom-only.txt", "failed:empty"), codecs.BOM_UTF8)
    _file(c, Hostile("zero-width", "zero-width.txt", "failed:empty"), "\u200b\u2060\ufeff\u200b\xad".encode())

    # -- binary -------------------------------------------------------------------------------
    random_bytes = bytearray(os.urandom(64 * 1024))
    random_bytes[100] = 0
    _file(c, Hostile("random", "random.dat", "failed:binary"), bytes(random_bytes))
    _file(c, Hostile("nul", "nul-bytes.txt", "failed:binary"), b"Looks like text\x00\x00\x00 until the NULs.")
    _file(c, Hostile("controls", "control-chars.txt", "failed:binary"), bytes(range(1, 32)) * 64)
    _file(c, Hostile("zip-bomb", "zip-bomb.txt", "failed:binary", why="never inflated"), _zip_bomb())
    _file(c, Hostile("gzip", "archive.txt", "failed:binary"), gzip.compress(b"compressed words " * 5000, mtime=0))
    _file(c, Hostile("executable", "program.txt", "failed:binary"), Path(sys.executable).read_bytes()[:8192])

    # -- encodings ----------------------------------------------------------------------------
    _file(
        c,
        Hostile("invalid-utf8", "invalid-utf8.txt", "stored", why="no BOM, not UTF-8: a legacy encoding is guessed"),
        b"Valid start of a line, then broken bytes \xc3\x28 \xa0\xa1 \xf0\x28\x8c\xbc and \xff more text.",
    )
    _file(
        c,
        Hostile("mixed-encodings", "mixed-encodings.txt", "stored", why="UTF-8 with a pasted Windows-1252 paragraph"),
        "The first paragraph was saved as UTF-8: café, naïve, “quotes”.\n\n".encode()
        + "The second one was pasted from an old Windows export: crème brûlée, “more quotes”.".encode("cp1252"),
    )
    _file(
        c,
        Hostile("utf16-truncated", "utf16-truncated.txt", "failed:undecodable"),
        codecs.BOM_UTF16_LE + "cut in the middle of a code unit".encode("utf-16-le") + b"\x41",
    )
    _file(
        c,
        Hostile("bidi-zalgo", "bidi-zalgo.txt", "stored"),
        "Bidirectional override \u202egnirts desrever\u202c and z\u0336\u0336a\u0337l\u0338g\u0335o"
        " text with stacked combining marks is still a document.".encode(),
    )

    # -- size ---------------------------------------------------------------------------------
    with (staging / "huge-sparse.txt").open("wb") as fh:
        fh.truncate(4 * 1024 * MIB)  # 4 GiB that cost no disk: must be refused unread
    c.items.append(Hostile("huge-sparse", "huge-sparse.txt", "failed:too_large"))
    line_bytes = 50 * MIB
    assert line_bytes > max_file_bytes, "the 50 MB line is meant to be over the limit"
    with (staging / "fifty-mb-line.txt").open("wb") as fh:
        word = b"endless "
        block = word * (MIB // len(word))
        for _ in range(line_bytes // len(block)):
            fh.write(block)
    c.items.append(Hostile("fifty-mb-line", "fifty-mb-line.txt", "failed:too_large", why="one 50 MB line, no newline"))
    # Just under the limit: read, sent through Redis and decoded by a worker (memory is watched).
    big = max_file_bytes - 1024
    noise = bytearray(os.urandom(MIB))
    noise[::4096] = b"\0" * len(noise[::4096])
    with (staging / "big-binary.txt").open("wb") as fh:
        for _ in range(big // MIB):
            fh.write(noise)
    c.items.append(Hostile("big-binary", "big-binary.txt", "failed:binary", why=f"{big // MIB} MiB under the limit"))
    with (staging / "big-unclosed.json").open("wb") as fh:
        fh.write(b'{"text": "')
        fh.write(b"a very long unterminated string " * (big // 40))
    c.items.append(Hostile("big-json", "big-unclosed.json", "failed:invalid_json", why="under the limit, never closed"))

    # -- structured formats -------------------------------------------------------------------
    _file(c, Hostile("nested-json", "nested.json", "failed:invalid_json"), b"[" * 200_000 + b"]" * 200_000)
    _file(
        c,
        Hostile("huge-number", "huge-number.json", "failed:invalid_json"),
        b'{"text": "A story with an absurd number.", "n": ' + b"9" * 100_000 + b"}",
    )
    _file(
        c,
        Hostile("float-overflow", "float-overflow.json", "stored", why="1e999 is kept as null"),
        b'{"text": "A story whose metadata holds a float that overflows to infinity.", "x": 1e999}',
    )
    _file(
        c,
        Hostile("json-nul", "nul-escapes.json", "stored", why="escaped NULs and lone surrogates in text and metadata"),
        b'{"text": "A story whose JSON holds escaped NULs \\u0000 and a lone surrogate \\ud800 here.",'
        b' "title": "Ti\\u0000tle", "note": "a\\u0000b\\udc80", "k\\u0000ey": 1}',
    )
    _file(
        c,
        Hostile("jsonl-all-bad", "only-bad-lines.jsonl", "failed:missing_text", events=3),
        b'{"title": "no text on this line"}\n[1, 2, 3]\n{broken\n',
    )
    long_fields = {
        "text": "L" * 250 + " (AP) — A story whose fields are all far longer than any column was sized for.",
        "title": "A title that goes on " * 250,
        "author": [f"Author Number {i} With A Long Name" for i in range(20)],
        "date": "24 Nov 2026 " * 40,
        "language": "en-" + "x" * 300,
    }
    _file(
        c,
        Hostile("long-fields", "long-fields.json", "stored", why="fields longer than their columns"),
        json.dumps(long_fields).encode(),
    )
    many_keys = {
        "text": "A story whose JSON has half a million metadata fields.",
        **{f"k{i}": i for i in range(500_000)},
    }
    _file(
        c,
        Hostile("json-many-keys", "many-keys.json", "stored", why="10,000 values kept, one warning"),
        json.dumps(many_keys).encode(),
    )
    _file(
        c,
        Hostile("jsonl-flood", "million-lines.jsonl", "failed:too_large", why="a million tiny records: refused whole"),
        b"[]\n" * 1_000_000,
    )
    _file(
        c,
        Hostile("scripts-only", "scripts-only.html", "failed:no_text_extracted"),
        b"<html><head><script>while(true){}</script><style>p{}</style></head><body><script>x()</script></body></html>",
    )
    _file(c, Hostile("billion-laughs", "billion-laughs.html", "failed:no_text_extracted"), _billion_laughs())
    _file(c, Hostile("yaml-bomb", "yaml-bomb.md", "stored", why="aliases cut short with a warning"), _yaml_bomb())

    # -- news and office formats ------------------------------------------------------------
    _file(
        c,
        Hostile("docx-zip-bomb", "zip-bomb.docx", "failed:too_large", why="200 MiB document part, never inflated"),
        documents.docx_zip_bomb(),
    )
    docx = documents.docx([(None, "A Word file cut short in transfer.")])
    _file(c, Hostile("docx-truncated", "truncated.docx", "failed:corrupt_document"), docx[: len(docx) // 2])
    _file(
        c,
        Hostile("pdf-encrypted", "locked.pdf", "failed:encrypted"),
        documents.pdf([["A statement nobody may read without its password."]], user_password="secret"),
    )
    _file(c, Hostile("pdf-scanned", "scan.pdf", "failed:no_text_extracted"), documents.pdf([[]], graphics_only=True))
    _file(
        c,
        Hostile("feed-malformed", "broken-feed.rss", "failed:invalid_xml"),
        b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>Cut off</title></channel></rss>',
    )
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    _file(
        c,
        Hostile("newsml-laughs", "laughs.xml", "failed:unsafe_xml", why="billion laughs in NewsML-G2"),
        (
            f'<?xml version="1.0"?><!DOCTYPE newsItem [<!ENTITY l0 "lol">{laughs}]>'
            '<newsItem xmlns="http://iptc.org/std/nar/2006-10-01/"><contentSet><inlineData>&l9;</inlineData>'
            "</contentSet></newsItem>"
        ).encode(),
    )
    _file(
        c,
        Hostile("feed-xxe", "xxe.rss", "failed:unsafe_xml", why="an external entity naming the secret file"),
        (
            f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY secret SYSTEM "file://{secret}">]>'
            "<rss><channel><item><title>t</title><description>&secret;</description></item></channel></rss>"
        ).encode(),
    )
    flood = "".join(f"<item><title>{i}</title><description>Item {i}.</description></item>" for i in range(10_001))
    _file(
        c,
        Hostile("feed-flood", "flood.rss", "failed:too_large", why="10,001 items: refused whole"),
        f'<?xml version="1.0"?><rss version="2.0"><channel>{flood}</channel></rss>'.encode(),
    )

    # -- not regular files --------------------------------------------------------------------
    os.symlink(secret, staging / "link-to-secret.txt")
    c.items.append(Hostile("link-secret", "link-to-secret.txt", "failed:unsafe_path"))
    os.symlink(outside / "folder", staging / "link-to-folder")
    c.items.append(Hostile("link-folder", "link-to-folder", "failed:unsafe_path"))
    os.symlink(outside / "does-not-exist.txt", staging / "dangling-link.txt")
    c.items.append(Hostile("link-dangling", "dangling-link.txt", "failed:unsafe_path"))
    os.mkfifo(staging / "fifo.txt")
    c.items.append(Hostile("fifo", "fifo.txt", "failed:unreadable", why="opening it would block forever"))
    sock_path = staging / "socket.txt"
    if len(os.fsencode(sock_path)) < 100:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(sock_path))
        c.items.append(Hostile("socket", "socket.txt", "failed:unreadable"))
    else:
        c.skipped["socket"] = f"the staging path is too long for a Unix socket ({sock_path})"
    try:
        os.mknod(staging / "device.txt", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # like /dev/zero
        c.items.append(Hostile("device", "device.txt", "failed:unreadable", why="a character device like /dev/zero"))
    except PermissionError as exc:
        c.skipped["device"] = f"cannot create a device node here: {exc}"
    if os.geteuid() == 0:
        c.skipped["no-permission"] = "running as root: chmod 000 does not stop root from reading a file"
    else:
        _file(c, Hostile("no-permission", "no-permission.txt", "failed:unreadable"), b"You may not read this.")
        os.chmod(staging / "no-permission.txt", 0)
    (staging / "folder-named-like-a-file.txt").mkdir()
    c.items.append(Hostile("folder-named-file", "folder-named-like-a-file.txt", "untouched", why="a folder"))

    # -- names --------------------------------------------------------------------------------
    _file(c, Hostile("newline-name", "line\nbreak.txt", "stored"), b"A file whose name holds a newline character.")
    _file(
        c,
        Hostile("control-name", "ctrl-\x01\x1b[31m-red.txt", "stored"),
        b"A file whose name holds control characters and a terminal colour escape.",
    )
    long_ok = "a" * 251 + ".txt"
    _file(c, Hostile("name-255", long_ok, "stored"), b"A file with a name of exactly two hundred and fifty-five bytes.")
    long_bad = "e" * 251 + ".txt"
    _file(c, Hostile("name-255-failed", long_bad, "failed:empty", why="its .error.json name must be shortened"), b"")
    _file(
        c,
        Hostile("non-utf8-name", os.fsdecode(b"latin1-\xe9t\xe9-name.txt"), "stored"),
        b"A file whose name is not valid UTF-8 (it was written by a Latin-1 system).",
    )
    _file(
        c,
        Hostile("backslash-name", "back\\slash.txt", "stored"),
        b"A file whose name holds a backslash, which Windows would read as a folder separator.",
    )
    _file(c, Hostile("dash-name", "-rf.txt", "stored"), b"A file whose name starts with a dash, like an option.")

    # -- live: started by the test --------------------------------------------------------------
    c.items.append(Hostile("growing", "growing.txt", "stored", why="written in 40 chunks over ~2 s, then closed"))
    c.items.append(Hostile("vanishing", "vanishing.txt", "gone", why="deleted before it is stable"))
    return c


def release(corpus: Corpus, inbox: Path) -> None:
    """Move every staged entry into the inbox (renames: each appears complete)."""
    for item in corpus.items:
        src = corpus.staging / item.name
        if src.exists() or src.is_symlink():
            os.rename(src, inbox / item.name)


GROWING_CHUNKS = 40


def growing_text() -> bytes:
    return b"".join(
        f"Growing file line {i}: still being written when the watcher first saw it.\n".encode()
        for i in range(GROWING_CHUNKS)
    )


def grow(path: Path, interval: float = 0.05) -> threading.Thread:
    """Write ``growing_text()`` into ``path`` in chunks, keeping the file open until the end."""
    lines = growing_text().splitlines(keepends=True)

    def write() -> None:
        with path.open("wb") as fh:
            for line in lines:
                fh.write(line)
                fh.flush()
                time.sleep(interval)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def vanish(path: Path, after: float = 0.2) -> threading.Thread:
    """Create ``path``, keep it open (no close event), and delete it before it is stable."""

    def run() -> None:
        with path.open("wb") as fh:
            fh.write(b"here for a moment, then gone")
            fh.flush()
            time.sleep(after)
            path.unlink()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def describe(corpus: Corpus) -> str:
    """One line per entry: what it is and what must become of it (for failure messages)."""
    return "\n".join(f"{h.id:18} {h.expect:28} {h.why}" for h in corpus.items) + "".join(
        f"\n{k:18} skipped: {v}" for k, v in corpus.skipped.items()
    )
