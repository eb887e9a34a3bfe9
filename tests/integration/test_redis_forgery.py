"""Integration: an attacker who can write to the shared Redis, but holds no HMAC key.

Each test lets one pod fill a real redis-server, then rewrites what that pod stored the way an
attacker with write access would (a forged payload with a recomputed checksum, forged object
info, a forged Delta log listing, a valid value moved under another key), then reads through a
fresh pod: the bytes must be the origin's, the forgery counted in ``corrupt``, and the origin
asked again. Also: the Redis tier does not start without a key unless the opt-out says so, and
then ``doctor`` says so.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.helpers import HMAC_KEY, CountingFS
from tiercache import (
    BlockKey,
    ConfigError,
    MemoryTier,
    RedisTier,
    S3FifoTier,
    Settings,
    TieredFileSystem,
)
from tiercache.build import default_tiers
from tiercache.cli.doctor import format_report, run_doctor
from tiercache.testing.servers.redis import RedisServer
from tiercache.tiers.framing import HEADER_BYTES, MAC_BYTES, frame, header, parse_header, unframe
from tiercache.tiers.redis import info_key

pytestmark = pytest.mark.integration

BLOCK = 64 * 1024
SIZE = 1 << 20  # 16 blocks; the last one holds the "footer"
ATTACKER_KEY = b"the attacker's own key, not ours"


@pytest.fixture
def server(redis_fresh: RedisServer) -> Iterator[redis.Redis]:
    with redis_fresh.client() as client:
        yield client


@pytest.fixture
def settings(redis_fresh: RedisServer) -> Settings:
    return Settings(
        redis_url=redis_fresh.url,
        redis_hmac_key=HMAC_KEY,
        redis_prefix=f"forge{uuid.uuid4().hex[:10]}:",
        redis_timeout_s=1.0,  # behaviour, not speed
        block_size_bytes=BLOCK,
        memory_bytes=64 << 20,
        delta_log_ttl_s=60.0,
    )


def pod(settings: Settings) -> TieredFileSystem:
    return TieredFileSystem(
        fs=CountingFS(skip_instance_cache=True), settings=settings, tiers=default_tiers(settings)
    )


def put_object(size: int) -> tuple[str, bytes]:
    path = f"/forge/{uuid.uuid4().hex}/part-0.parquet"
    data = os.urandom(size)
    CountingFS(skip_instance_cache=True).pipe_file(path, data)
    return path, data


def origin_reads(fs: TieredFileSystem) -> int:
    target = fs.target
    assert isinstance(target, CountingFS)
    return len(target.reads)


def corrupt(fs: TieredFileSystem) -> int:
    return int(fs.stats()["tiers"]["redis"]["corrupt"])


def keys(client: redis.Redis, settings: Settings, suffix: str) -> list[bytes]:
    found = client.keys(f"{settings.redis_prefix}*{suffix}")
    return sorted(k.encode() if isinstance(k, str) else k for k in found)


def filled(settings: Settings, path: str, read: str) -> TieredFileSystem:
    """A first pod reads ``path`` (footer or whole object) and its fills land in Redis."""
    first = pod(settings)
    if read == "footer":
        first.read_range(path, -BLOCK, None)
    else:
        first.cat_file(path)
    first.chain.fills.join()
    return first


def block_key(fs: TieredFileSystem, path: str, index: int) -> BlockKey:
    info = fs.chain.info(path)
    return BlockKey(fs.chain.target, path, info.version, BLOCK, index)


def forge_payload(raw: bytes, key: BlockKey, how: str) -> bytes:
    """Rewrite a stored block as an attacker without our key would."""
    _algorithm, length, _checksum = parse_header(key, raw[:HEADER_BYTES])
    payload = b"\x00FORGED\x00" * (length // 8) + b"!" * (length % 8)
    algorithm = raw[4]
    if how == "keep-header-recompute-checksum":  # the old tag left in place
        forged_header = header(key, payload, algorithm, mac=True)
        return forged_header + payload + raw[-MAC_BYTES:]
    if how == "strip-the-tag":  # a plain frame: checksum right, no HMAC at all
        return frame(key, payload, algorithm)
    assert how == "sign-with-another-key"
    return frame(key, payload, algorithm, hmac_key=ATTACKER_KEY)


FORGERIES = ["keep-header-recompute-checksum", "strip-the-tag", "sign-with-another-key"]


@pytest.mark.parametrize("how", FORGERIES)
def test_a_forged_footer_block_is_rejected(
    server: redis.Redis, settings: Settings, how: str
) -> None:
    path, data = put_object(SIZE)
    first = filled(settings, path, "footer")
    (name,) = [k for k in keys(server, settings, "") if b":b:" in k]
    field = f"{BLOCK}:{SIZE // BLOCK - 1}"
    key = block_key(first, path, SIZE // BLOCK - 1)
    raw = server.hget(name, field)
    assert isinstance(raw, bytes)
    server.hset(name, field, forge_payload(raw, key, how))

    second = pod(settings)
    assert second.read_range(path, -BLOCK, None) == data[-BLOCK:]  # the origin's bytes
    assert corrupt(second) == 1
    assert origin_reads(second) == 1  # the block came from the origin again
    second.chain.fills.join()
    third = pod(settings)  # the fill replaced the forgery with an authentic value
    assert third.read_range(path, -BLOCK, None) == data[-BLOCK:]
    assert origin_reads(third) == 0
    assert corrupt(third) == 0
    for fs in (first, second, third):
        fs.close()


@pytest.mark.parametrize("how", FORGERIES)
def test_a_forged_small_object_is_rejected_by_cat_file(
    server: redis.Redis, settings: Settings, how: str
) -> None:
    size = 100_000  # a small object: every block is shared through Redis
    path, data = put_object(size)
    first = filled(settings, path, "whole")
    (name,) = [k for k in keys(server, settings, "") if b":b:" in k]
    for index in (0, 1):
        raw = server.hget(name, f"{BLOCK}:{index}")
        assert isinstance(raw, bytes)
        forged = forge_payload(raw, block_key(first, path, index), how)
        server.hset(name, f"{BLOCK}:{index}", forged)

    second = pod(settings)
    assert second.cat_file(path) == data
    assert corrupt(second) == 2
    first.close()
    second.close()


def test_forged_object_info_is_rejected(server: redis.Redis, settings: Settings) -> None:
    """Info that says half the size would make cat_file return half the object."""
    path, data = put_object(SIZE)
    first = filled(settings, path, "whole")
    (name,) = keys(server, settings, ":i")
    raw = server.get(name)
    assert isinstance(raw, bytes)
    document = json.loads(unframe(info_key(first.chain.target, path), raw))  # no key needed
    document["size"] = SIZE // 2
    document["raw"]["size"] = SIZE // 2
    forged = json.dumps(document).encode()
    for tampered in (
        frame(info_key(first.chain.target, path), forged),
        frame(info_key(first.chain.target, path), forged, hmac_key=ATTACKER_KEY),
    ):
        server.set(name, tampered)
        second = pod(settings)
        assert second.info(path)["size"] == SIZE
        assert second.cat_file(path) == data
        assert corrupt(second) == 1
        assert second.stats()["info"]["shared_hits"] == 0
        second.close()
    first.close()


def test_a_forged_delta_log_listing_is_rejected(server: redis.Redis, settings: Settings) -> None:
    log = f"/forge/{uuid.uuid4().hex}/_delta_log"
    entries: list[dict[str, Any]] = [
        {"name": f"{log}/{v:020d}.json", "size": 100 + v, "type": "file"} for v in range(3)
    ]
    first = pod(settings)
    first.chain.share_listing(log, entries)
    first.chain.fills.join()
    (name,) = keys(server, settings, ":i")
    raw = server.get(name)
    assert isinstance(raw, bytes)
    listing_key = info_key(first.chain.target, log + "/")
    document = json.loads(unframe(listing_key, raw))
    document["entries"] = document["entries"][:1]  # hide the latest commits
    server.set(name, frame(listing_key, json.dumps(document).encode()))

    second = pod(settings)
    assert second.chain.cached_listing(log, 60.0) is None  # listed at the origin instead
    assert corrupt(second) == 1
    # The authentic listing, written again, is reused.
    first.chain.share_listing(log, entries)
    first.chain.fills.join()
    third = pod(settings)
    assert third.chain.cached_listing(log, 60.0) == entries
    for fs in (first, second, third):
        fs.close()


def test_an_authentic_value_moved_under_another_key_is_rejected(
    server: redis.Redis, settings: Settings
) -> None:
    """A valid tag proves who wrote a value and for which key: copying it elsewhere fails."""
    (path_a, data_a), (path_b, data_b) = put_object(SIZE), put_object(SIZE)
    first = filled(settings, path_a, "footer")
    first.read_range(path_b, -BLOCK, None)
    first.chain.fills.join()
    names = [k for k in keys(server, settings, "") if b":b:" in k]
    assert len(names) == 2
    field = f"{BLOCK}:{SIZE // BLOCK - 1}"
    values = [server.hget(name, field) for name in names]
    assert all(isinstance(v, bytes) for v in values)
    server.hset(names[0], field, values[1])  # swap: each object gets the other's footer
    server.hset(names[1], field, values[0])
    second = pod(settings)
    assert second.read_range(path_a, -BLOCK, None) == data_a[-BLOCK:]
    assert second.read_range(path_b, -BLOCK, None) == data_b[-BLOCK:]
    assert corrupt(second) == 2
    first.close()
    second.close()


# --- no key, no Redis tier (unless the opt-out says so) ------------------------------------------


def test_without_a_key_the_redis_tier_does_not_start(redis_fresh: RedisServer) -> None:
    with pytest.raises(ConfigError, match="TIERCACHE_REDIS_HMAC_KEY"):
        Settings.from_env({"TIERCACHE_REDIS_URL": redis_fresh.url})
    with pytest.raises(ConfigError, match="hmac_key"):
        RedisTier(redis_fresh.url)


def test_the_opt_out_runs_unauthenticated_and_says_so(
    redis_fresh: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {
            "TIERCACHE_REDIS_URL": redis_fresh.url,
            "TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED": "true",
            "TIERCACHE_REDIS_PREFIX": f"optout{uuid.uuid4().hex[:8]}:",
            "TIERCACHE_REDIS_TIMEOUT": "1s",
        }
    )
    with caplog.at_level("WARNING", logger="tiercache"):
        fs = pod(settings)
    assert "NOT authenticated" in caplog.text
    path, data = put_object(SIZE)
    assert fs.read_range(path, -BLOCK, None) == data[-BLOCK:]
    assert fs.stats()["tiers"]["redis"]["hmac"] is False
    assert fs.stats()["tiers"]["redis"]["state"] == "closed"
    fs.close()
    report = run_doctor(settings)
    (check,) = [c for c in report.checks if c.name == "redis"]
    assert check.ok
    assert any("NOT authenticated" in warning for warning in check.warnings)
    assert "WARNING: redis: values shared through Redis are NOT authenticated" in format_report(
        report
    )


def test_memory_tier_is_first(settings: Settings) -> None:
    """The forgeries above reach Redis only because a fresh pod's RAM is empty."""
    fs = pod(settings)
    assert isinstance(fs.chain.slots[0].tier, MemoryTier | S3FifoTier)
    fs.close()
