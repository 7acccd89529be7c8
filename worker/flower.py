"""Flower for operators: who may look, what it may do, what it shows.

Flower's API can send any registered task (``POST /api/task/async-apply/seedworker.ingest``),
revoke tasks and restart pools.  So it never runs without authentication, not even on
loopback (any local user reaches 127.0.0.1): without ``SEEDWORKER_FLOWER_BASIC_AUTH`` a
password is generated once into ``DATA_DIR/flower-credentials`` (0600, the data directory's
owner only) and its path is logged.  It runs read-only by default (``--read_only``: the
task and control API answer 403), since seedworker never needs Flower to send work.
Empty user names or passwords are refused: Flower would accept ``:`` as a login.

The task list shows what the senders put in ``argsrepr`` (file name, size, hash: never the
body) and the result or failure of each task (``tasks/_common.py``, ``flower_outcome``).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

from worker.errors import ConfigError
from worker.logs import configure_logging, get_logger
from worker.settings import Settings

log = get_logger("seedworker.flower")

CREDENTIALS_FILE = "flower-credentials"
GENERATED_USER = "seedworker"
#: Task list columns: the arguments (argsrepr) and the result next to the state.
TASK_COLUMNS = "name,state,args,result,exception,received,runtime,worker,uuid"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name or "" (all interfaces): not provably local
        return False


def parse_basic_auth(value: str) -> list[str]:
    """``user:pw[,user2:pw2]`` as Flower's list; ConfigError on an empty user or password."""
    pairs = [pair.strip() for pair in value.split(",")]
    for index, pair in enumerate(pairs, 1):
        user, sep, password = pair.partition(":")
        if not sep or not user.strip() or not password.strip():
            raise ConfigError(f"SEEDWORKER_FLOWER_BASIC_AUTH entry {index} must be user:password with both non-empty")
    return pairs


def credentials_path(settings: Settings) -> Path:
    return (settings.data_dir / CREDENTIALS_FILE).resolve()


def generated_credentials(settings: Settings) -> str:
    """``seedworker:<random>`` from the data directory's credentials file, made once (0600).

    Created with ``O_EXCL`` so two starts at once agree on one password; a file that others
    may read is refused rather than used.
    """
    path = credentials_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{GENERATED_USER}:{secrets.token_urlsafe(24)}\n")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as fh:
        if os.fstat(fh.fileno()).st_mode & 0o077:
            raise ConfigError(f"{path} may be read by other users: chmod 600 it (or delete it for a new one)")
        credentials = fh.read().strip()
    parse_basic_auth(credentials)
    return credentials


FLOWER_BOOTSTRAP = "import worker.app; from celery.__main__ import main; main()"


def flower_command(settings: Settings, broker_url: str) -> tuple[list[str], dict[str, str]]:
    """The Flower command line and environment; secrets go in the environment, not argv."""
    configured = settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else ""
    if not is_loopback(settings.flower_address) and not configured:
        raise ConfigError(f"refusing to serve Flower on {settings.flower_address} without SEEDWORKER_FLOWER_BASIC_AUTH")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    auth = ",".join(parse_basic_auth(configured)) if configured else generated_credentials(settings)
    if not configured:
        log.info("flower login", user=GENERATED_USER, password_file=str(credentials_path(settings)))
    argv = [
        sys.executable,
        "-P",  # the working directory is not on sys.path, and our packages are imported before
        "-c",  # Celery's --app lookup puts it there (a user's worker.py would shadow worker/)
        FLOWER_BOOTSTRAP,
        "--app=worker.app:flower_app",
        "flower",
        f"--address={settings.flower_address}",
        f"--port={settings.flower_port}",
        "--persistent=True",
        f"--db={(settings.data_dir / 'flower.db').resolve()}",
        "--state_save_interval=60000",
        "--enable_events=True",  # keep the workers' task events on, even after a worker restart
        "--inspect_timeout=5000",  # ms; /api/workers?refresh=1 waits this long for busy workers
        f"--tasks_columns={TASK_COLUMNS}",
        f"--read_only={settings.flower_read_only}",
    ]
    if settings.flower_url_prefix.strip("/"):
        argv.append(f"--url_prefix={settings.flower_url_prefix.strip('/')}")
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_UNAUTHENTICATED_API"}
    env.update({"CELERY_BROKER_URL": broker_url, "FLOWER_BASIC_AUTH": auth})
    return argv, env


FLOWER_GRACE_SECONDS = 30.0


def run_flower(settings: Settings) -> int:
    from worker import datamode
    from worker.broker import broker_url_for
    from worker.signals import stop_on_signals

    configure_logging(settings, process="flower")
    datamode.apply(settings)
    argv, env = flower_command(settings, broker_url_for(settings))
    # A session of its own: Ctrl-C reaches only us, and Flower gets one SIGTERM.  With the
    # terminal's SIGINT as well, the SIGTERM landed in Flower's atexit callback and Python
    # printed "Exception ignored in atexit callback ... SystemExit: 0".
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()

    with stop_on_signals(stop):
        while not stopped.wait(1.0):
            if proc.poll() is not None:
                return proc.returncode
        try:  # Flower's shutdown waits for its inspect calls (5 s each); on a busy host, not forever
            return proc.wait(timeout=FLOWER_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("flower did not stop in time, killing it", grace=FLOWER_GRACE_SECONDS)
            proc.kill()
            return proc.wait()
