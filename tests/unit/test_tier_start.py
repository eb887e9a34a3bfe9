"""Filesystem creation never fails because a tier's client library rejects its configuration.

``Settings`` checks every Redis URL option, but a tier built in code (``tiers=[...]``), or a
client library that starts rejecting something new, must leave the tier ``disabled`` with the
reason, and reads must go on.
"""

from __future__ import annotations

import uuid

import fsspec
import pytest

from tests.helpers import HMAC_KEY
from tiercache import MemoryTier, RedisTier, Settings, TieredFileSystem
from tiercache.doctor import run_doctor
from tiercache.tiers.disk import DiskTier

PASSWORD = "hunter2-tier-start"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"redis://:{PASSWORD}@[::1", "Invalid IPv6 URL"),  # rejected by the URL parser
        (f"redis://:{PASSWORD}@127.0.0.1:1/0?bogus_option=1", "bogus_option"),  # at connect
        (f"redis://:{PASSWORD}@127.0.0.1:1/0?socket_timeout=abc", "socket_timeout"),
    ],
)
def test_a_url_the_client_rejects_leaves_the_tier_disabled(url: str, reason: str) -> None:
    tier = RedisTier(url, hmac_key=HMAC_KEY, timeout_s=0.2)
    assert not tier.ready
    assert tier.last_error is not None
    assert reason in tier.last_error
    path = f"/start/{uuid.uuid4().hex}"
    fsspec.filesystem("memory").pipe_file(path, b"0123456789")
    fs = TieredFileSystem(
        target_protocol="memory", settings=Settings(), tiers=[MemoryTier(1 << 20), tier]
    )
    try:
        assert fs.cat_file(path) == b"0123456789"
        redis_stats = fs.stats()["tiers"]["redis"]
        assert redis_stats["state"] == "disabled"
        assert reason in str(redis_stats["last_error"])
        assert PASSWORD not in str(fs.stats())
    finally:
        fs.close()
    report = run_doctor(Settings(), tiers=[RedisTier(url, hmac_key=HMAC_KEY, timeout_s=0.2)])
    (check,) = report.checks
    assert not check.ok
    assert reason in str(check.reason)
    assert PASSWORD not in str(report.to_dict())


def test_a_disk_directory_the_os_rejects_leaves_the_tier_disabled() -> None:
    """A path with a NUL byte (Settings refuses it; a tier built in code may not)."""
    tier = DiskTier("/tmp/tiercache\x00nul", capacity_bytes=64 << 20)
    assert not tier.ready
    assert "null" in str(tier.last_error)
    tier.close()
