"""Run the installed ``seedworker`` entry point as a user would: a separate process, in a
directory of the test's choosing, with only the SEEDWORKER_* variables the test gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# CLI_UNDER_TEST runs these tests against another build (to see them fail on an old commit).
SEEDWORKER = Path(os.environ.get("CLI_UNDER_TEST") or Path(sys.executable).parent / "seedworker")


def user_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a user's shell: no SEEDWORKER_* but those given, and a home of its
    own so the per-user default instance is the test's (platformdirs reads XDG_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env.update(
        {
            "HOME": str(tmp_path / "home"),
            "XDG_DATA_HOME": str(tmp_path / "home" / ".local" / "share"),
            "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        }
    )
    env.update({f"SEEDWORKER_{k.upper()}": v for k, v in settings.items()})
    return env


def seedworker(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SEEDWORKER), *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert the command failed with ``code`` and exactly one line on stderr; return it."""
    lines = done.stderr.splitlines()
    assert done.returncode == code, (done.returncode, done.stderr[-3000:])
    assert len(lines) == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return lines[0]
