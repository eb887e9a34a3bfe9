"""The gateway over targets that are not S3: ``build_app`` and ``tiercache serve
--target-protocol`` pick the emulating origin client; an unknown protocol is refused."""

from __future__ import annotations

import pytest

from tiercache import Settings, TieredFileSystem
from tiercache.cli.serve import _check_protocol, worker_app
from tiercache.errors import ConfigError
from tiercache.gateway.server import build_app
from tiercache.gateway.upstream_fsspec import FsspecUpstream


def test_build_app_emulates_the_origin_calls_on_a_non_s3_target() -> None:
    fs = TieredFileSystem(
        target_protocol="memory", settings=Settings(memory_bytes=1 << 20), skip_instance_cache=True
    )
    app = build_app(fs)
    try:
        assert isinstance(app.writes.upstream, FsspecUpstream)
        assert app.markers.upstream is app.writes.upstream
    finally:
        app.close()
        fs.close()


def test_serve_takes_a_target_protocol_and_refuses_an_unknown_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("TIERCACHE_METRICS_PORT", "TIERCACHE_STATS_FILE", "TIERCACHE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    app = worker_app({}, protocol="memory")
    try:
        assert isinstance(app.writes.upstream, FsspecUpstream)
    finally:
        app.close()
    _check_protocol("s3")
    with pytest.raises(ConfigError, match="no-such-protocol"):
        _check_protocol("no-such-protocol")
