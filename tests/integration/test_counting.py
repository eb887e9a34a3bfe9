"""Counting is explicit: every tier's ``hits + misses`` is the lookups it was asked (issue 13).

Reads go through each front of the fsspec door (``read_range``, ``cat_file``, ``cat_ranges``,
an open file, ``prefetch_range``, a second filesystem sharing the disk tier) against a real S3
server, with tiers that count the lookups they really receive. The stats must say the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.helpers import DictTier, letters
from tiercache import DiskTier, MemoryTier, Settings, TieredFileSystem
from tiercache.protocol import BlockKey, BlockKind, Tier
from tiercache.testing import S3Server

BLOCK = 64 << 10
SETTINGS = Settings(block_size_bytes=BLOCK, memory_bytes=32 << 20)


class CountingTier:
    """Wraps a tier and counts the block lookups (``get``) it receives."""

    def __init__(self, inner: Tier) -> None:
        self.inner = inner
        self.name = inner.name
        self.gets = 0
        self._lock = threading.Lock()
        self.timeout_s = 5.0  # a loaded machine must not turn a lookup into a timeout

    def accepts(self, kind: BlockKind, /) -> bool:
        return self.inner.accepts(kind)

    def get(self, key: BlockKey, /) -> bytes | None:
        with self._lock:
            self.gets += 1
        return self.inner.get(key)

    def put(self, key: BlockKey, data: bytes, /) -> None:
        self.inner.put(key, data)

    def delete_object(self, target: str, path: str, /) -> None:
        self.inner.delete_object(target, path)

    def close(self) -> None:
        self.inner.close()


class CountingFront(CountingTier):
    """The same, for the RAM tier: called in process, like the tier it wraps."""

    in_process = True


def _filesystem(server: S3Server, tiers: list[Any]) -> TieredFileSystem:
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**server.storage_options(), "skip_instance_cache": True},
        settings=SETTINGS,
        tiers=tiers,
        skip_instance_cache=True,
    )


def _check(fs: TieredFileSystem, tiers: list[CountingTier]) -> dict[str, int]:
    """Every tier's counts against the lookups it received; returns the lookups by tier."""
    fs.chain.fills.join(10)
    stats = fs.stats()
    asked = {}
    for tier in tiers:
        demand = stats["tiers"][tier.name]
        prefetch = stats["prefetch"]["tiers"][tier.name]
        for entry in (demand, prefetch):
            assert entry["lookups"] == entry["hits"] + entry["misses"], (tier.name, entry)
        by_class = sum(
            stats["classes"][purpose][kind]["tiers"][tier.name]["lookups"]
            for purpose in ("demand", "prefetch")
            for kind in ("metadata", "data")
        )
        assert demand["lookups"] + prefetch["lookups"] == tier.gets == by_class, tier.name
        asked[tier.name] = tier.gets
    return asked


def test_every_tier_counts_each_lookup_it_was_asked_once(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    data, other = letters(5 * BLOCK + 123), letters(3 * BLOCK)[::-1]
    s3_server.put_object(s3_bucket, "t/a.parquet", data)
    s3_server.put_object(s3_bucket, "t/b.bin", other)
    a, b = f"{s3_bucket}/t/a.parquet", f"{s3_bucket}/t/b.bin"
    memory = CountingFront(MemoryTier(32 << 20))
    disk = CountingTier(DiskTier(tmp_path / "disk", capacity_bytes=64 << 20))
    data_only = CountingTier(DictTier("dataonly", kinds=("data",)))
    tiers: list[CountingTier] = [memory, disk, data_only]
    fs = _filesystem(s3_server, list(tiers))
    try:
        assert fs.read_range(a, 10, 20) == data[10:20]  # cold: one GET learns info and bytes
        assert _check(fs, tiers) == {"memory": 0, "disk": 0, "dataonly": 0}
        assert fs.read_range(a, 10, 20) == data[10:20]  # the hot path: a RAM hit
        # The hot path misses (the object is known, the block is not in RAM): RAM asked once.
        assert fs.read_range(a, 4 * BLOCK + 1, 4 * BLOCK + 9) == data[4 * BLOCK + 1 : 4 * BLOCK + 9]
        # memory: the hit before and this miss; the block is near the footer: metadata, which
        # the data-only tier does not take.
        assert _check(fs, tiers) == {"memory": 2, "disk": 1, "dataonly": 0}
        assert fs.read_range(a, BLOCK - 5, 3 * BLOCK + 5) == data[BLOCK - 5 : 3 * BLOCK + 5]
        assert fs.cat_file(a) == data
        with fs.open(a) as f:
            f.seek(2 * BLOCK + 7)
            assert f.read(BLOCK) == data[2 * BLOCK + 7 : 3 * BLOCK + 7]
        assert fs.cat_ranges([a, a, b], [0, 4 * BLOCK, 0], [5, 5 * BLOCK, 9]) == [
            data[:5],
            data[4 * BLOCK : 5 * BLOCK],
            other[:9],
        ]
        assert fs.prefetch_range(b, None, None) == other
        asked = _check(fs, tiers)
        assert asked["memory"] > 0
        assert asked["disk"] > 0
        assert asked["dataonly"] < asked["disk"]  # not asked for metadata blocks
    finally:
        fs.close()

    # A second process's view: a cold RAM tier over the disk tier the first one filled.
    memory2 = CountingFront(MemoryTier(32 << 20))
    disk2 = CountingTier(DiskTier(tmp_path / "disk", capacity_bytes=64 << 20))
    tiers2: list[CountingTier] = [memory2, disk2]
    fs2 = _filesystem(s3_server, list(tiers2))
    try:
        assert fs2.cat_file(a) == data
        assert fs2.read_range(b, 0, 3 * BLOCK) == other
        asked2 = _check(fs2, tiers2)
        stats = fs2.stats()
        assert stats["tiers"]["disk"]["hits"] > 0
        assert asked2["memory"] == stats["tiers"]["memory"]["misses"]  # nothing in RAM yet
    finally:
        fs2.close()


def test_tiercache_read_shows_the_lookups_of_each_tier(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    data = letters(3 * BLOCK)
    s3_server.put_object(s3_bucket, "k.bin", data)
    options = s3_server.storage_options()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ACCESS_KEY_ID": options["key"],
        "AWS_SECRET_ACCESS_KEY": options["secret"],
        "AWS_DEFAULT_REGION": options["client_kwargs"]["region_name"],
        "AWS_ENDPOINT_URL": options["client_kwargs"]["endpoint_url"],
        "TIERCACHE_BLOCK_SIZE": str(BLOCK),
        "TIERCACHE_DISK_DIR": str(tmp_path / "disk"),
    }
    url = f"tiercache::s3://{s3_bucket}/k.bin"
    outputs = []
    for _ in range(2):  # the second process finds the blocks on disk
        result = subprocess.run(
            [str(Path(sys.executable).parent / "tiercache"), "read", url, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
            check=True,
        )
        outputs.append(json.loads(result.stdout))
    for output in outputs:
        assert output["bytes"] == len(data)
        for name, entry in output["stats"]["tiers"].items():
            assert entry["lookups"] == entry["hits"] + entry["misses"], name
    first, second = (output["stats"]["tiers"] for output in outputs)
    assert first["memory"]["lookups"] == 3  # a whole-object read: info, then each block asked
    assert first["disk"]["misses"] == 3
    assert second["disk"]["hits"] == 3
