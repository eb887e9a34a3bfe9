"""fsspec's own abstract suite (copy, get, put, open, pipe) run through TieredFileSystem over the
``file`` and ``memory`` targets: the same results as the bare targets give (issue 15)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import pytest
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

from tiercache import MemoryTier, Settings, TieredFileSystem

SETTINGS = Settings(block_size_bytes=4096, memory_bytes=1 << 20)


def tiered(protocol: str, **options: Any) -> TieredFileSystem:
    """A TieredFileSystem with its own RAM tier over a fresh target."""
    target = fsspec.filesystem(protocol, skip_instance_cache=True, **options)
    return TieredFileSystem(fs=target, settings=SETTINGS, tiers=[MemoryTier(1 << 20)])


class TieredLocalFixtures(AbstractFixtures):  # type: ignore[misc]  # fsspec is untyped
    @pytest.fixture
    def fs(self) -> Iterator[TieredFileSystem]:
        fs = tiered("file", auto_mkdir=True)
        yield fs
        fs.close()

    @pytest.fixture
    def fs_path(self, tmpdir: Any) -> str:
        return str(tmpdir)


class TieredMemoryFixtures(AbstractFixtures):  # type: ignore[misc]  # fsspec is untyped
    @pytest.fixture
    def fs(self) -> Iterator[TieredFileSystem]:
        fs = tiered("memory")
        yield fs
        fs.close()

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return lambda *args: "/".join(args)

    @pytest.fixture
    def fs_path(self, fs: TieredFileSystem) -> Iterator[str]:
        root = f"/abstract-{uuid.uuid4().hex}"
        yield root
        if fs.target.exists(root):
            fs.target.rm(root, recursive=True)


class TestTieredLocalCopy(AbstractCopyTests, TieredLocalFixtures):  # type: ignore[misc]
    pass


class TestTieredLocalGet(AbstractGetTests, TieredLocalFixtures):  # type: ignore[misc]
    pass


class TestTieredLocalPut(AbstractPutTests, TieredLocalFixtures):  # type: ignore[misc]
    pass


class TestTieredLocalOpen(AbstractOpenTests, TieredLocalFixtures):  # type: ignore[misc]
    pass


class TestTieredLocalPipe(AbstractPipeTests, TieredLocalFixtures):  # type: ignore[misc]
    pass


class TestTieredMemoryCopy(AbstractCopyTests, TieredMemoryFixtures):  # type: ignore[misc]
    pass


class TestTieredMemoryGet(AbstractGetTests, TieredMemoryFixtures):  # type: ignore[misc]
    pass


class TestTieredMemoryPut(AbstractPutTests, TieredMemoryFixtures):  # type: ignore[misc]
    pass


class TestTieredMemoryOpen(AbstractOpenTests, TieredMemoryFixtures):  # type: ignore[misc]
    pass


class TestTieredMemoryPipe(AbstractPipeTests, TieredMemoryFixtures):  # type: ignore[misc]
    pass
