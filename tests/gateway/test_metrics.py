"""The gateway counts what it answers: by operation and status, bytes out, latency; the stats
file and Prometheus show it. The app is driven in process through ASGI (the real app over a real
S3 server: only the HTTP server is left out)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.helpers import letters
from tiercache import TieredFileSystem
from tiercache.gateway.metrics import LIVE_GATEWAYS
from tiercache.gateway.server import build_app
from tiercache.ops import metrics, statsfile
from tiercache.testing import S3Server

pytestmark = pytest.mark.integration


def _call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_requests_are_counted_and_exported(
    s3_server: S3Server, s3_bucket: str, origin_fs: TieredFileSystem
) -> None:
    s3_server.put_object(s3_bucket, "m.bin", letters(100_000))
    app = build_app(origin_fs)
    try:
        got = _call(app, "GET", f"/{s3_bucket}/m.bin", [(b"range", b"bytes=0-99")])
        assert got[0]["status"] == 206
        assert b"".join(m.get("body", b"") for m in got[1:]) == letters(100)
        assert _call(app, "GET", f"/{s3_bucket}/missing", [])[0]["status"] == 404
        assert _call(app, "HEAD", f"/{s3_bucket}/m.bin", [])[0]["status"] == 200
        snapshot = app.counters.snapshot()
        assert snapshot["requests"] == {
            "GetObject": {"206": 1, "404": 1},
            "HeadObject": {"200": 1},
        }
        assert snapshot["bytes_out"] >= 100
        assert snapshot["latency"]["count"] == 3
        assert snapshot in statsfile.snapshot()["gateways"]
        registry = CollectorRegistry()
        metrics.register(registry)
        text = generate_latest(registry).decode()
        assert 'operation="GetObject",status="404"' in text
        assert "tiercache_gateway_bytes_out_total" in text
    finally:
        app.close()
    assert app.counters not in LIVE_GATEWAYS  # a closed gateway leaves the stats file
