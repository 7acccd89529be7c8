from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings import Settings, load_settings, mask_url


def test_defaults_give_embedded_broker_and_sqlite_in_data_dir(tmp_path: Path) -> None:
    s = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert s.embedded_broker
    assert s.effective_database_url == f"sqlite:///{(tmp_path / 'seedworker.db').resolve()}"
    assert s.archive_dir == tmp_path / "archive" and s.failed_dir == tmp_path / "failed"


def test_misspelt_environment_variable_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDWORKER_BROKR_URL", "redis://x")
    with pytest.raises(ConfigError, match="SEEDWORKER_BROKR_URL"):
        load_settings()


def test_unknown_key_in_dotenv_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("SEEDWORKER_QUEUE=q\nSEEDWORKER_QEUE=typo\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError):
        load_settings()


def test_dotenv_values_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("SEEDWORKER_QUEUE=docs\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().queue == "docs"


SHARED_DOTENV = (
    "# shared with docker compose\nPOSTGRES_PASSWORD=pw\nCOMPOSE_PROJECT_NAME=seed\nSEEDWORKER_QUEUE=from-dotenv\n"
)


def test_other_tools_keys_in_dotenv_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(SHARED_DOTENV)
    monkeypatch.chdir(tmp_path)
    assert load_settings().queue == "from-dotenv"


def _seedworker_config(cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``seedworker config``, run where a user would run it, with no SEEDWORKER_*
    in its environment but a data directory of its own."""
    from worker.store.migrations import upgrade

    (cwd / "data").mkdir(exist_ok=True)
    upgrade(f"sqlite:///{cwd / 'data' / 'seedworker.db'}")  # an instance: read commands never make one
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env["SEEDWORKER_DATA_DIR"] = str(cwd / "data")
    seedworker = Path(sys.executable).parent / "seedworker"
    argv = [seedworker, "config"]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_seedworker_config_reads_a_shared_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(SHARED_DOTENV)
    done = _seedworker_config(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "from-dotenv" in done.stdout
    assert "Extra inputs" not in done.stdout + done.stderr


def test_seedworker_config_rejects_an_unknown_seedworker_key_in_a_shared_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(SHARED_DOTENV + "SEEDWORKER_QEUE=typo\n")
    done = _seedworker_config(tmp_path)
    assert done.returncode != 0
    assert "unknown setting(s) in .env: SEEDWORKER_QEUE" in done.stderr
    assert "POSTGRES_PASSWORD" not in done.stderr and "COMPOSE_PROJECT_NAME" not in done.stderr


def test_invalid_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDWORKER_DUPLICATE_POLICY", "keep")
    with pytest.raises(ConfigError, match=r"SEEDWORKER_DUPLICATE_POLICY: Input should be .link. or .drop., not .keep."):
        load_settings()


def test_secrets_are_masked() -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None,
        broker_url="rediss://:s3cret@redis.example:6380/0",
        database_url="postgresql://app:hunter2@db/seed",
        flower_basic_auth="admin:pw",
    )
    shown = str(s.masked())
    assert "s3cret" not in shown and "hunter2" not in shown and "admin:pw" not in shown
    assert mask_url("redis://:pw@h:1/0") == "redis://:****@h:1/0"
