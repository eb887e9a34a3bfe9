"""Filesystem creation never fails because a tier's client library rejects its configuration.

``Settings`` checks every Redis URL option, but a tier built in code (``tiers=[...]``), or a
client library that starts rejecting something new, must leave the tier ``disabled`` with the
reason, and reads must go on.
"""

from __future__ import annotations

import uuid

import fsspec
import pytest
import redis

from tests.helpers import HMAC_KEY, DictTier
from tiercache import MemoryTier, RedisTier, Settings, TieredFileSystem
from tiercache.cli.doctor import run_doctor
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


class _TimingOutClient:
    """A redis-py client whose server never answers in time (as a frozen Redis would)."""

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def __getattr__(self, command: str) -> object:  # get, hget, pipeline...: no answer
        def no_answer(*args: object, **kwargs: object) -> object:
            raise redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:6379")

        return no_answer


def test_a_redis_socket_timeout_is_counted_as_a_timeout() -> None:
    """redis-py's socket timeout is translated at the tier's choke point: a timeout, not an
    error, in the guard's counters (issue 13, point 6)."""
    tier = RedisTier(
        "redis://127.0.0.1:6379/0",
        hmac_key=HMAC_KEY,
        client_factory=lambda *args, **kwargs: _TimingOutClient(),
    )
    path = f"/start/{uuid.uuid4().hex}"
    fsspec.filesystem("memory").pipe_file(path, b"x" * 1000)
    fs = TieredFileSystem(target_protocol="memory", settings=Settings(), tiers=[tier])
    try:
        assert fs.read_range(path, -100, None) == b"x" * 100  # a footer: asks Redis first
        counts = fs.stats()["tiers"]["redis"]
        assert counts["timeouts"] >= 1, counts  # object info, then the footer block
        assert counts["errors"] == 0, counts
    finally:
        fs.close()


class _BudgetedTier(DictTier):
    timeout_s = 0.3


def test_a_tier_gets_its_own_budget_never_one_looked_up_by_its_name() -> None:
    """A user's tier named "disk" used to get TIERCACHE_DISK_TIMEOUT (issue 13, point 5)."""
    settings = Settings(disk_timeout_s=2.0, redis_timeout_s=3.0)
    tiers = [DictTier("disk"), _BudgetedTier("redis")]
    fs = TieredFileSystem(target_protocol="memory", settings=settings, tiers=tiers)
    try:
        guards = {slot.name: slot.guard for slot in fs.chain.slots}
        disk, redis_guard = guards["disk"], guards["redis"]
        assert disk is not None
        assert redis_guard is not None
        assert disk.timeout_s == 0.1  # the chain's default, not the disk tier's 2 s
        assert redis_guard.timeout_s == 0.3  # its own
    finally:
        fs.close()
