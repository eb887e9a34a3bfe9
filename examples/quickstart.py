"""Quickstart: read a file through tiercache's RAM tier and look at what the cache did.

Runs anywhere with only the core install: the origin is a local file that this script writes
into a temporary directory (point ``tiercache::s3://bucket/key`` at a real store the same way).
"""

from __future__ import annotations

import os
import tempfile

import fsspec

import tiercache


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tiercache-quickstart-") as root:
        path = os.path.join(root, "events.bin")
        payload = bytes(range(256)) * 16_384  # 4 MiB
        with open(path, "wb") as f:
            f.write(payload)

        # Settings come from TIERCACHE_* variables; these are the defaults, spelled out.
        settings = tiercache.Settings.from_env(memory_bytes=256 * 1024 * 1024)
        fs = fsspec.filesystem("tiercache", target_protocol="file", settings=settings)

        footer = fs.read_range(path, -65_536, None)  # a Parquet-style tail read
        again = fs.cat_file(path, start=len(payload) - 65_536)  # the same bytes: a RAM hit
        with fsspec.open(f"tiercache::file://{path}", "rb") as f:
            f.seek(1_000_000)
            middle = f.read(4096)

        assert footer == again == payload[-65_536:]
        assert middle == payload[1_000_000:1_004_096]
        print(f"read {len(footer)} tail bytes twice and {len(middle)} bytes through open()")
        # fs.stats() is the whole document (every tier, the origin, latency histograms); the
        # counters that tell the story:
        stats = fs.stats()
        ram, origin = stats["tiers"]["memory"], stats["origin"]
        print(f"RAM tier: {ram['hits']} hits, {ram['misses']} misses")
        print(f"origin: {origin['requests']} requests, {origin['bytes']:,} bytes")


if __name__ == "__main__":
    main()
