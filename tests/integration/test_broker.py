"""The embedded Redis: a real server, AOF on, private socket, survives a restart."""

from __future__ import annotations

import stat
from pathlib import Path

from worker.broker import EmbeddedRedis, connect


def test_embedded_redis_persists_across_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    url = server.start()
    assert url.startswith("redis+socket://")
    assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700
    client = connect(url)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    client.rpush("q", "message")
    client.close()
    server.kill()  # no clean shutdown: only the AOF can bring the message back
    assert not server.is_running()
    server.start()
    client = connect(server.url)
    assert client.lrange("q", 0, -1) == [b"message"]
    client.close()
    server.stop()
    assert not server.is_running()


def test_start_is_idempotent(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r")
    try:
        assert server.start() == server.start()
    finally:
        server.stop()


def test_long_data_dir_falls_back_to_loopback_tcp(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = EmbeddedRedis(deep)
    try:
        url = server.start()
        assert url.startswith("redis://127.0.0.1:")
    finally:
        server.stop()
