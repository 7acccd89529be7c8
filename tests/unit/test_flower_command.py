"""What ``seedworker flower`` is started with (worker/flower.py ``flower_command``): it refuses
a public address without basic auth and empty users or passwords, generates a private login
on loopback, keeps its state, and keeps secrets off its command line (moved from
tests/e2e/test_flower.py and tests/security/test_flower_access.py: no process of the stack
runs here; Flower itself is driven there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from worker.errors import ConfigError
from worker.flower import flower_command
from worker.settings import Settings


@pytest.mark.parametrize("address", ["0.0.0.0", "", "10.1.2.3", "::", "flower.example.com", "127.0.0.1.nip.io"])
def test_flower_refuses_public_address_without_auth(tmp_path: Path, address: str) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, flower_address=address)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="without SEEDWORKER_FLOWER_BASIC_AUTH"):
        flower_command(settings, "redis://127.0.0.1:1/0")
    with_auth = settings.model_copy(update={"flower_basic_auth": SecretStr("a:b")})
    argv, _ = flower_command(with_auth, "redis://127.0.0.1:1/0")
    assert f"--address={address}" in argv


def test_flower_command_keeps_state_and_events(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", flower_url_prefix="/flower/")  # type: ignore[call-arg]
    argv, _ = flower_command(settings, "redis://127.0.0.1:1/0")
    assert "--persistent=True" in argv and f"--db={(tmp_path / 'data' / 'flower.db').resolve()}" in argv
    assert "--url_prefix=flower" in argv and "--enable_events=True" in argv
    assert "--app=worker.app:flower_app" in argv
    columns = next(a for a in argv if a.startswith("--tasks_columns=")).split("=", 1)[1].split(",")
    assert {"args", "result", "exception"} <= set(columns)  # what happened to each file, in the list


def test_flower_secrets_stay_out_of_its_command_line(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, flower_basic_auth="a:b")  # type: ignore[call-arg]
    argv, env = flower_command(settings, "redis://:pw@127.0.0.1:1/0")
    assert "pw" not in " ".join(argv) and "a:b" not in " ".join(argv)
    assert env["FLOWER_BASIC_AUTH"] == "a:b" and env["CELERY_BROKER_URL"].startswith("redis://:pw@")
    assert argv[:2] == [sys.executable, "-P"]  # the same interpreter as seedworker, cwd not on sys.path


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "localhost", "::1"])
def test_flower_on_loopback_gets_a_generated_login(tmp_path: Path, address: str) -> None:
    """Any local user reaches loopback: without configured auth, a password is generated (0600)."""
    settings = Settings(_env_file=None, data_dir=tmp_path, flower_address=address)  # type: ignore[call-arg]
    argv, env = flower_command(settings, "redis://127.0.0.1:1/0")
    assert f"--address={address}" in argv and "FLOWER_UNAUTHENTICATED_API" not in env
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    assert user == "seedworker" and len(password) >= 20
    assert (tmp_path / "flower-credentials").stat().st_mode & 0o777 == 0o600
    assert "--read_only=True" in argv


@pytest.mark.parametrize("auth", [":", "ops:", ":pw", " : ", "ops:pw,:", "ops:pw,other", "opspw"])
def test_empty_flower_users_and_passwords_are_refused(tmp_path: Path, auth: str) -> None:
    for address in ("127.0.0.1", "0.0.0.0"):
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, data_dir=tmp_path, flower_address=address, flower_basic_auth=SecretStr(auth)
        )
        with pytest.raises(ConfigError, match="user:password with both non-empty"):
            flower_command(settings, "redis://127.0.0.1:1/0")


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    _, env = flower_command(settings, "redis://127.0.0.1:1/0")
    path = tmp_path / "flower-credentials"
    assert env["FLOWER_BASIC_AUTH"] == path.read_text().strip()
    assert flower_command(settings, "redis://127.0.0.1:1/0")[1]["FLOWER_BASIC_AUTH"] == env["FLOWER_BASIC_AUTH"]
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        flower_command(settings, "redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"SEEDWORKER_FLOWER_ADDRESS": "0.0.0.0"}, "without SEEDWORKER_FLOWER_BASIC_AUTH", id="no-auth"),
        pytest.param(
            {"SEEDWORKER_FLOWER_ADDRESS": "0.0.0.0", "SEEDWORKER_FLOWER_BASIC_AUTH": ":"},
            "both non-empty",
            id="empty-credentials",
        ),
    ],
)
def test_the_real_flower_command_refuses_to_start(tmp_path: Path, settings: dict[str, str], message: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SEEDWORKER_BROKER_URL": "redis://127.0.0.1:1/0",
        **settings,
    }
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "flower"],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and message in done.stderr
