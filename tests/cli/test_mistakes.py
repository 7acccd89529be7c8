"""Issue 17 §4: a user's mistake is one line on stderr that says what is wrong and what to do;
exit 2 when the user must change what they typed or configured, 1 when something failed at
run time.  Each case runs the real ``seedworker`` entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import one_line_error, seedworker, user_env
from tests.support.databases import POSTGRES_URL
from tests.support.http import free_port
from tests.support.paths import EXAMPLE


def test_events_tail_from_a_bogus_position(tmp_path: Path, broker_url: str) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), broker_url=broker_url)
    line = one_line_error(seedworker("events", "tail", "--from", "bogus", cwd=tmp_path, env=env), 2)
    assert "'bogus' is not a stream position" in line and "--help" in line


def test_submit_with_the_broker_down(tmp_path: Path) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), broker_url=f"redis://127.0.0.1:{free_port()}/0")
    line = one_line_error(seedworker("submit", str(EXAMPLE), cwd=tmp_path, env=env), 1)
    assert line.startswith("error: cannot reach redis://127.0.0.1:") and "Connection refused" in line


def test_submit_with_the_embedded_broker_not_running(tmp_path: Path) -> None:
    (tmp_path / "data" / "redis").mkdir(parents=True)  # an instance whose Redis has stopped
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"))
    line = one_line_error(seedworker("submit", str(EXAMPLE), cwd=tmp_path, env=env), 1)
    assert "no embedded Redis runs" in line and "seedworker run" in line


def test_submit_and_wait_with_no_worker(tmp_path: Path, broker_url: str) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), broker_url=broker_url)
    done = seedworker("submit", "--wait", "--timeout", "3", str(EXAMPLE), cwd=tmp_path, env=env)
    line = one_line_error(done, 1)
    assert "no outcome within 3" in line and "is a worker running?" in line


def test_db_downgrade_to_a_revision_that_does_not_exist(tmp_path: Path) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"))
    assert seedworker("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    line = one_line_error(seedworker("db", "downgrade", "nonsense", cwd=tmp_path, env=env), 2)
    assert "Can't locate revision identified by 'nonsense'" in line


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("webhooks", "not json", "SEEDWORKER_WEBHOOKS is not valid JSON"),
        ("folder_tag_map", "{bad", "SEEDWORKER_FOLDER_TAG_MAP is not valid JSON"),
        ("broker_url", "http://x", "SEEDWORKER_BROKER_URL: must start with redis://"),
    ],
)
@pytest.mark.parametrize("command", [("config",), ("submit", str(EXAMPLE))])
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, name: str, value: str, expected: str, command: tuple[str, ...]
) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), **{name: value})
    line = one_line_error(seedworker(*command, cwd=tmp_path, env=env), 2)
    assert line.startswith(f"error: {expected}")


@pytest.mark.postgres
def test_a_postgresql_database_that_does_not_exist(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL).set(database="seedworker_no_such_db").render_as_string(hide_password=False)
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), database_url=url)
    line = one_line_error(seedworker("docs", "list", cwd=tmp_path, env=env), 1)
    assert 'database "seedworker_no_such_db" does not exist' in line and line.startswith("error: cannot reach")


def test_an_unknown_command_or_option_is_one_line(tmp_path: Path) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"))
    assert "No such command 'lsit'" in one_line_error(seedworker("docs", "lsit", cwd=tmp_path, env=env), 2)
    assert "No such option '--bogus'" in one_line_error(seedworker("status", "--bogus", cwd=tmp_path, env=env), 2)
