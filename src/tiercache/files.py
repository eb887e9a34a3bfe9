"""The file objects :meth:`TieredFileSystem.open <tiercache.TieredFileSystem.open>` returns.

Reading (``"rb"``): :class:`TieredFile`, whose reads go through the chain pinned to the version
seen at open. Writing (``"wb"``): the target's own file, wrapped so that closing it invalidates
what the cache holds for the path.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Protocol

from fsspec.spec import AbstractBufferedFile

from .chain import TierChain
from .context import Purpose
from .errors import ObjectChangedError
from .protocol import ObjectInfo


class ChainBacked(Protocol):
    """What a :class:`TieredFile` needs of its filesystem: the chain its reads go through."""

    @property
    def chain(self) -> TierChain:
        """The tier chain behind the filesystem."""
        ...

    @property
    def purpose(self) -> Purpose:
        """What the filesystem's reads are counted as (demand, or prefetch)."""
        ...


class TieredFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """A read-only file whose reads go through the chain, pinned to the version seen at open.

    No second buffer cache: fsspec's ``cache_type`` is always ``"none"`` here, so every read
    is a ``read_pinned`` of the chain, which is where the caching happens.

    Raises:
        ObjectChangedError: On a read after the object was overwritten, when a block of the
            version opened is no longer cached (it cannot be fetched any more).
    """

    def __init__(self, fs: ChainBacked, path: str, info: ObjectInfo) -> None:
        super().__init__(fs, path, mode="rb", cache_type="none", size=info.size)
        self.object_info = info
        self._details = dict(info.raw)
        self._purpose = fs.purpose
        self._read_pinned = fs.chain.read_pinned
        # Sequential reads are read ahead (tiercache.readahead); a prefetching view never is.
        self._scan = fs.chain.readahead.scan(info) if self._purpose == "demand" else None

    def _fetch_range(self, start: int, end: int) -> bytes:
        if self._scan is not None:
            self._scan.saw(start, end)  # before the read: the next blocks come meanwhile
        try:
            return self._read_pinned(self.object_info, start, end, self._purpose)
        except ObjectChangedError as exc:
            raise ObjectChangedError(
                f"{self.path!r} was overwritten while open: {exc}; "
                "reopen it to read the new version"
            ) from exc

    def close(self) -> None:
        if self._scan is not None:
            self._scan.close()
        super().close()


class WriteThrough(io.IOBase):
    """A target's file in any mode but ``rb``: invalidates the cached object once closed."""

    def __init__(self, inner: Any, on_close: Callable[[], None]) -> None:
        super().__init__()
        self._inner = inner
        self._on_close = on_close

    def writable(self) -> bool:
        return bool(self._inner.writable())

    def readable(self) -> bool:
        return bool(self._inner.readable())

    def seekable(self) -> bool:
        return bool(self._inner.seekable())

    def write(self, data: Any) -> int:
        return int(self._inner.write(data))

    def read(self, size: int = -1) -> bytes:
        return bytes(self._inner.read(size))

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._inner.seek(offset, whence))

    def truncate(self, size: int | None = None) -> int:
        return int(self._inner.truncate(size))

    def tell(self) -> int:
        return int(self._inner.tell())

    def flush(self) -> None:
        if not self._inner.closed:  # IOBase.close() flushes after the inner file has closed
            self._inner.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._inner.close()
        finally:
            self._on_close()
            super().close()
