"""Issue 19 §12: with the usual umask 022 the database, archive/ and failed/ were 0644/0755 and
any local user could read every stored document.  Real processes, started under umask 022."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, broker_url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env |= {
        "SEEDWORKER_DATA_DIR": str(tmp_path / "data"),
        "SEEDWORKER_INBOX": str(tmp_path / "inbox"),
        "SEEDWORKER_LOG_FORMAT": "json",
        **extra,
    }
    if broker_url:
        env["SEEDWORKER_BROKER_URL"] = broker_url
    return env


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_is_created_private_under_umask_022(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "worker.cli", "db", "upgrade"],
        env=_env(tmp_path),
        cwd=tmp_path,
        umask=0o022,  # the caller's umask: what the test is about
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = tmp_path / "data"
    assert _mode(data / "seedworker.db") == 0o600
    assert _mode(data) == 0o700
    assert all(_mode(p) == 0o600 for p in data.glob("seedworker.db*"))


@pytest.mark.parametrize(("umask", "files", "folders"), [(None, 0o600, 0o700), ("027", 0o640, 0o750)])
def test_the_watcher_keeps_archive_failed_and_processing_private(
    tmp_path: Path, broker_url: str, umask: str | None, files: int, folders: int
) -> None:
    """Default SEEDWORKER_UMASK=077; a shared deployment opens them to a group with 027.
    Every long-running process also brings folders and data files left by an earlier, looser
    run (here a 0755 archive and a 0644 flower.db) to the configured mode."""
    (tmp_path / "data").mkdir()
    for name in ("flower.db", "seedworker.db"):
        (tmp_path / "data" / name).write_bytes(b"")
        os.chmod(tmp_path / "data" / name, 0o644)
    (tmp_path / "data" / "archive").mkdir()
    os.chmod(tmp_path / "data" / "archive", 0o755)
    (tmp_path / "inbox").mkdir()
    os.chmod(tmp_path / "inbox", 0o1777)  # a drop folder every local user may write into
    (tmp_path / "inbox" / ".seedworker-processing").mkdir()
    os.chmod(tmp_path / "inbox" / ".seedworker-processing", 0o755)  # as an older version left it
    extra = {"SEEDWORKER_UMASK": umask} if umask else {}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "watch", "--watcher-id", "w"],
        env=_env(tmp_path, broker_url, **extra),
        cwd=tmp_path,
        umask=0o022,  # the caller's umask: what the test is about
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        processing = tmp_path / "inbox" / ".seedworker-processing" / "w"
        deadline = time.monotonic() + 60
        while not (processing.exists() and (tmp_path / "data" / "failed").exists()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        (tmp_path / "inbox" / "sub").mkdir()
        (tmp_path / "inbox" / "sub" / "a.txt").write_bytes(b"a story")
        claimed = processing.parent
        deadline = time.monotonic() + 30
        while not any(p.is_file() for p in claimed.rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(30)
    data = tmp_path / "data"
    assert _mode(data) == folders
    assert _mode(data / "flower.db") == files and _mode(data / "seedworker.db") == files
    assert _mode(data / "archive") == folders
    assert _mode(data / "failed") == folders
    assert _mode(processing.parent) == 0o700  # inside the users' inbox: never shared
    assert _mode(processing) == 0o700
    claims = list(processing.iterdir())  # one entry per claim inside the 0700 folder (issue 21)
    assert claims and all(p.is_file() and p.name.endswith("_sub%2Fa.txt") for p in claims)
    assert _mode(tmp_path / "inbox") == 0o1777  # the users' folder keeps the mode it was given
