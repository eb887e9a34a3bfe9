"""``resident_range``: a range answered from RAM alone (the gateway's event-loop path), exact
bytes across block borders, None as soon as one block is not in RAM, and counted as hits."""

from __future__ import annotations

import os
import uuid

import fsspec

from tiercache import Settings, TieredFileSystem
from tiercache.chain.resident import resident_range

BLOCK = 4096


def _filesystem() -> tuple[TieredFileSystem, str, bytes]:
    path = f"/resident-{uuid.uuid4().hex}/object.bin"
    data = os.urandom(5 * BLOCK + 123)
    fsspec.filesystem("memory").pipe_file(path, data)
    fs = TieredFileSystem(
        target_protocol="memory",
        settings=Settings(block_size_bytes=BLOCK, memory_bytes=1 << 20),
        skip_instance_cache=True,
    )
    return fs, path, data


def test_resident_ranges_are_the_bytes_and_count_as_memory_hits() -> None:
    fs, path, data = _filesystem()
    assert fs.cat_file(path) == data  # every block in RAM
    info = fs.chain.info_table.peek(path)
    assert info is not None
    hits = fs.stats()["tiers"]["memory"]["hits"]
    for start, end in [(0, 1), (10, BLOCK + 10), (BLOCK - 1, 4 * BLOCK + 1), (0, len(data))]:
        assert resident_range(fs.chain, info, start, end) == data[start:end]
    assert fs.stats()["tiers"]["memory"]["hits"] == hits + 1 + 2 + 5 + 6


def test_a_range_with_a_block_not_in_ram_is_none_and_counts_nothing() -> None:
    fs, path, data = _filesystem()
    assert fs.read_range(path, 0, BLOCK) == data[:BLOCK]  # block 0 only
    info = fs.chain.info_table.peek(path)
    assert info is not None
    before = fs.stats()["tiers"]["memory"]
    assert resident_range(fs.chain, info, 0, BLOCK + 1) is None
    assert resident_range(fs.chain, info, 0, BLOCK) == data[:BLOCK]
    after = fs.stats()["tiers"]["memory"]
    assert (after["hits"], after["misses"]) == (before["hits"] + 1, before["misses"])
