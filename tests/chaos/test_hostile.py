"""The hostile corpus (tests/support/hostile.py) dropped all at once into a running stack.

Every entry must end as a typed failure kept in failed/ with its ``.error.json`` (or, where
legitimately valid, stored and archived); nothing may crash, nothing may be read from
outside the inbox, memory stays bounded, nothing stays in the processing area, and a good
file dropped afterwards is still stored.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from tests.support.databases import BACKENDS
from tests.support.e2e import module_stack
from tests.support.hostile import MIB, Corpus, build, describe, grow, growing_text, release, vanish
from tests.support.stack import FAILED, STORED, Stack
from worker.broker import EmbeddedRedis
from worker.errors import UnreadableFile, UnsafePath
from worker.settings import Settings
from worker.store.engine import make_engine
from worker.store.schema import Base, Document
from worker.watcher import Claim, InboxWatcher

MAX_FILE_BYTES = 20 * MIB
RSS_LIMIT = 600 * MIB


class PeakRss:
    """Peak resident memory (VmHWM) of every process of the stack, sampled in a thread."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        for name, proc in self.stack.procs.items():
            try:
                parent = psutil.Process(proc.pid)
                family = [parent, *parent.children(recursive=True)]
            except psutil.Error:
                continue
            for p in family:
                label = name if p.pid == proc.pid else f"{name} child {p.pid}"
                peak = _vm_hwm(p.pid)
                if peak is not None:
                    self.peaks[label] = max(self.peaks.get(label, 0), peak)


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class HostileRun:
    stack: Stack
    corpus: Corpus
    database_url: str
    events: list[dict[str, Any]]
    peaks: dict[str, int] = field(default_factory=dict)

    def events_for(self, shown: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["data"]["filename"] == shown]

    def reports(self) -> dict[str, dict[str, Any]]:
        """Every .error.json in failed/, by the file name it reports on."""
        out = {}
        for side in self.stack.failed.rglob("*.error.json"):
            report = json.loads(side.read_text(encoding="utf-8"))
            out[report["file"]] = report
        return out


@pytest.fixture(scope="module", params=BACKENDS)
def hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedded_redis: EmbeddedRedis
) -> Iterator[HostileRun]:
    env = {
        "SEEDWORKER_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
        "SEEDWORKER_NER_MODEL": "",
        "SEEDWORKER_STABLE_SECONDS": "1.0",
    }
    with module_stack("hostile", request.param, tmp_path_factory, embedded_redis, **env) as stack:
        yield from _hostile_run(stack)


def _hostile_run(stack: Stack) -> Iterator[HostileRun]:
    root = stack.root
    corpus = build(root / "staging", root / "outside", max_file_bytes=MAX_FILE_BYTES)
    try:
        stack.start_all(concurrency=2)
        with PeakRss(stack) as rss:
            release(corpus, stack.inbox)
            writers = [grow(stack.inbox / "growing.txt"), vanish(stack.inbox / "vanishing.txt")]
            events = stack.wait_for_events(corpus.expected_events, timeout=300)
            for writer in writers:
                writer.join(30)
            stack.wait_for(
                lambda: not _in_processing(stack),
                timeout=120,
                what="every claim finished (processing area empty)\n" + describe(corpus),
            )
            # Still alive and still working after all that.
            stack.drop("after-the-storm.txt", b"A perfectly ordinary story dropped after the hostile corpus.")
            stack.wait_for_events(1, timeout=120, type=STORED, data__filename="after-the-storm.txt")
            events = stack.events()
        yield HostileRun(stack, corpus, stack.database_url, events, rss.peaks)
    finally:
        stack.stop()  # before the big files go (module_stack stops it again: a no-op)
        for name in ("fifty-mb-line.txt", "big-binary.txt", "big-unclosed.json"):
            for big in (stack.failed / name, root / "staging" / name, stack.inbox / name):
                big.unlink(missing_ok=True)


def _in_processing(stack: Stack) -> list[Path]:
    area = stack.inbox / ".seedworker-processing"
    return [p for p in area.rglob("*") if not p.is_dir() or p.is_symlink()] if area.exists() else []


# -- the tests --------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_corpus_has_at_least_25_hostile_entries(hostile: HostileRun) -> None:
    assert len(hostile.corpus.items) >= 25, describe(hostile.corpus)


@pytest.mark.e2e
def test_every_entry_ends_as_expected(hostile: HostileRun) -> None:
    problems: list[str] = []
    reports = hostile.reports()
    stack, corpus = hostile.stack, hostile.corpus
    for item in corpus.items:
        events = hostile.events_for(item.shown)
        where = f"{item.id} ({item.name!r})"
        if item.reason is not None:
            if len(events) != item.events or any(e["type"] != FAILED for e in events):
                problems.append(f"{where}: events {[(e['type'], e['data'].get('reason')) for e in events]}")
                continue
            first = sorted(events, key=lambda e: e["data"].get("details", {}).get("line", 0))[0]
            if first["data"]["reason"] != item.reason:
                problems.append(f"{where}: reason {first['data']['reason']!r}, expected {item.reason!r}")
            if len(first["data"]["message"].split()) < 4:
                problems.append(f"{where}: message is not a sentence: {first['data']['message']!r}")
            kept = stack.failed / item.name
            if not os.path.lexists(kept):
                problems.append(f"{where}: not kept in failed/")
            elif item.id in corpus.contents and kept.read_bytes() != corpus.contents[item.id]:
                problems.append(f"{where}: the kept file differs from the original")
            report = reports.get(item.shown)
            if report is None:
                problems.append(f"{where}: no .error.json")
            elif report["reason"] != item.reason:
                problems.append(f"{where}: .error.json reason {report['reason']!r}")
        elif item.expect == "stored":
            if [e["type"] for e in events] != [STORED]:
                problems.append(f"{where}: events {[(e['type'], e['data'].get('reason')) for e in events]}")
            archived = stack.archive / item.name
            if not archived.exists():
                problems.append(f"{where}: not archived")
            elif item.id in corpus.contents and archived.read_bytes() != corpus.contents[item.id]:
                problems.append(f"{where}: the archived file differs from the original")
        elif item.expect == "untouched":
            if events or not (stack.inbox / item.name).is_dir():
                problems.append(f"{where}: expected left alone in the inbox, events {events}")
        elif item.expect == "gone" and (
            events or any(os.path.lexists(d / item.name) for d in (stack.inbox, stack.failed, stack.archive))
        ):
            problems.append(f"{where}: expected gone without a trace, events {events}")
    assert not problems, "\n".join(problems) + "\n\n" + describe(corpus)


@pytest.mark.e2e
def test_no_extra_events_and_every_event_id_is_unique(hostile: HostileRun) -> None:
    assert len(hostile.events) == hostile.corpus.expected_events + 1  # + the file dropped afterwards
    assert len({e["id"] for e in hostile.events}) == len(hostile.events)


@pytest.mark.e2e
def test_growing_file_is_taken_only_when_complete(hostile: HostileRun) -> None:
    engine = make_engine(hostile.database_url)
    try:
        with engine.connect() as conn:
            text = conn.scalar(select(Document.text).where(Document.filename == "growing.txt"))
    finally:
        engine.dispose()
    assert text == growing_text().decode().strip()
    assert (hostile.stack.archive / "growing.txt").read_bytes() == growing_text()


@pytest.mark.e2e
def test_mixed_encodings_are_both_read_with_a_warning(hostile: HostileRun) -> None:
    engine = make_engine(hostile.database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(Document.text, Document.encoding, Document.warnings).where(
                    Document.filename == "mixed-encodings.txt"
                )
            ).one()
    finally:
        engine.dispose()
    assert "café, naïve, “quotes”" in row.text and "crème brûlée, “more quotes”" in row.text
    assert row.encoding == "utf-8" and "read as Windows-1252" in row.warnings[0]


@pytest.mark.e2e
def test_hostile_names_are_shown_safely(hostile: HostileRun) -> None:
    names = {e["data"]["filename"] for e in hostile.events}
    assert "latin1-\ufffdt\ufffd-name.txt" in names  # bytes that are not UTF-8 become U+FFFD
    assert "back\uff3cslash.txt" in names
    assert "line\u240abreak.txt" in names  # a control character becomes its visible picture (␊)
    assert "ctrl-\u2401\u241b[31m-red.txt" in names  # no escape sequence reaches a terminal
    assert not [n for n in names if any(ord(ch) < 0x20 for ch in n)]
    long_report = hostile.reports()["e" * 251 + ".txt"]
    assert long_report["reason"] == "empty"
    sides = [p.name for p in hostile.stack.failed.glob("eee*.error.json")]
    assert sides and all(len(os.fsencode(n)) <= 255 for n in sides)


@pytest.mark.e2e
def test_nothing_outside_the_inbox_is_ever_read(hostile: HostileRun) -> None:
    secret = hostile.corpus.secret_text
    assert hostile.corpus.secret.read_text().startswith(secret)  # untouched
    assert secret not in json.dumps(hostile.events)
    for name, log in hostile.stack.logs.items():
        assert secret not in log.read_text(errors="replace"), f"secret in the {name} log"
    for path in [*hostile.stack.failed.rglob("*"), *hostile.stack.archive.rglob("*")]:
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 10 * MIB:
            assert secret.encode() not in path.read_bytes(), path
    engine = make_engine(hostile.database_url)
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                if not engine.dialect.has_table(conn, table.name):
                    continue
                for row in conn.execute(table.select()):
                    for value in row:
                        blob = value if isinstance(value, bytes) else str(value).encode()
                        assert secret.encode() not in blob, f"secret in table {table.name}"
    finally:
        engine.dispose()
    # The links themselves were kept (as links), never replaced by what they point at.
    assert (hostile.stack.failed / "link-to-secret.txt").is_symlink()
    assert (hostile.stack.failed / "link-to-folder").is_symlink()


@pytest.mark.e2e
def test_memory_stays_bounded(hostile: HostileRun) -> None:
    peaks = hostile.peaks
    print("peak RSS (MiB):", {name: round(peak / MIB) for name, peak in sorted(peaks.items())})
    assert any(name.startswith("worker child") for name in peaks), peaks
    over = {name: round(peak / MIB) for name, peak in peaks.items() if peak >= RSS_LIMIT}
    assert not over, (
        f"peak RSS over {RSS_LIMIT // MIB} MiB: {over} (all: { {n: round(p / MIB) for n, p in peaks.items()} })"
    )


@pytest.mark.e2e
def test_processes_survive_and_the_processing_area_is_empty(hostile: HostileRun) -> None:
    hostile.stack.check_alive()
    assert not _in_processing(hostile.stack)
    left = sorted(p.name for p in hostile.stack.inbox.iterdir() if not p.name.startswith("."))
    assert left == ["folder-named-like-a-file.txt"]


# -- the watcher alone: the races an e2e run cannot time ---------------------------------------------


def _watcher(tmp_path: Path) -> InboxWatcher:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", inbox=tmp_path / "inbox", max_file_bytes=1000)  # type: ignore[call-arg]
    return InboxWatcher(settings=settings, app=None, redis=None, watcher_id="w")  # type: ignore[arg-type]


def test_a_file_that_vanishes_after_its_claim_is_an_unreadable_failure(tmp_path: Path) -> None:
    watcher = _watcher(tmp_path)
    claim = Claim(claim_id="c1", path=tmp_path / "gone.txt", rel=Path("gone.txt"))
    with pytest.raises(UnreadableFile, match="vanished"):
        watcher.reader.read(claim)


def test_a_file_swapped_for_a_link_or_a_fifo_after_the_claim_is_refused(tmp_path: Path) -> None:
    watcher = _watcher(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    link = tmp_path / "link.txt"
    os.symlink(secret, link)
    with pytest.raises(UnsafePath):
        watcher.reader.read(Claim(claim_id="c2", path=link, rel=Path("link.txt")))
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFile, match="FIFO"):
        watcher.reader.read(Claim(claim_id="c3", path=fifo, rel=Path("fifo.txt")))
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # never opened, still there


def test_a_file_without_read_permission_is_an_unreadable_failure(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip(
            "running as root: chmod 000 does not stop root from reading (FIFO, socket, device cover unreadable)"
        )
    watcher = _watcher(tmp_path)
    locked = tmp_path / "locked.txt"
    locked.write_text("private")
    locked.chmod(0)
    with pytest.raises(UnreadableFile, match="Permission denied"):
        watcher.reader.read(Claim(claim_id="c4", path=locked, rel=Path("locked.txt")))


def test_a_claimed_link_to_a_folder_is_recovered_after_a_restart(tmp_path: Path) -> None:
    """os.walk lists a link to a folder among the folders; a restarted watcher must still
    find it in its claim (and fail it as unsafe_path) instead of deleting the claim."""
    from worker.watcher.claims import claimed_entry

    claim_dir = tmp_path / "claim"
    (claim_dir / "sub").mkdir(parents=True)
    os.symlink(tmp_path, claim_dir / "sub" / "link-to-folder")
    entry = claimed_entry(claim_dir)
    assert entry == claim_dir / "sub" / "link-to-folder"
    with pytest.raises(UnsafePath):
        _watcher(tmp_path).reader.read(Claim(claim_id="c5", path=entry, rel=Path("sub/link-to-folder")))
    assert claimed_entry(tmp_path / "empty-claim-does-not-exist") is None
