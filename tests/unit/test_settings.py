from __future__ import annotations

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
