"""The async face of :class:`~tiercache.fs.TieredFileSystem`: fsspec's async interface on the
same chain.

``TieredFileSystem(..., asynchronous=True)`` (or ``fsspec.filesystem("tiercache",
asynchronous=True, ...)``, or a URL opened so: zarr v3's ``FsspecStore`` does) builds an
:class:`AsyncTieredFileSystem`: ``async_impl`` is true, and the coroutines async users call
(``_cat_file``, ``_cat_ranges``, ``_info``, ``_exists``, ``_ls``, ``_find``, ``_pipe_file``,
``_rm``..., ``open_async``) read through the same tiers, guards, single-flight and deadlines as
the sync methods, which it keeps unchanged.

The event loop never waits on a tier. A read whose object info is known and whose bytes are all
in the RAM tier is answered on the loop at once (a dict lookup per block, as the gateway does:
:mod:`tiercache.chain.resident`); anything else runs the sync read on this filesystem's own pool
of worker threads and awaits it. A hung Redis or a slow store therefore holds a worker thread for
at most that tier's time budget, never the loop: the other coroutines go on.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from fsspec.asyn import AbstractAsyncStreamedFile

from .chain.resident import resident_range
from .fs import ASYNC_VARIANTS, TieredFileSystem, range_jobs

__all__ = ["AsyncTieredFile", "AsyncTieredFileSystem"]

_T = TypeVar("_T")
#: Worker threads an async filesystem runs its blocking reads on (each waits on a tier or the
#: origin, within their budgets; the chain bounds the origin's concurrency itself).
WORKERS = 32


class AsyncTieredFileSystem(TieredFileSystem):
    """:class:`TieredFileSystem` with fsspec's async interface (``async_impl = True``).

    Built by ``TieredFileSystem(..., asynchronous=True)``; takes the same arguments, plus
    ``loop`` (accepted for fsspec's sake; the coroutines run on whichever loop awaits them).
    """

    async_impl: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("loop", None)
        self.asynchronous = bool(kwargs.get("asynchronous", True))
        super().__init__(*args, **kwargs)
        self._async_pool: ThreadPoolExecutor | None = None

    async def _offload(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run the sync ``fn`` on this filesystem's worker threads and await it."""
        if self._async_pool is None:
            self._async_pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="tiercache-async")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._async_pool, lambda: fn(*args, **kwargs))

    def _resident(self, path: str, start: int | None, end: int | None) -> bytes | None:
        """``[start, end)`` of ``path`` from RAM without waiting, or None (see the module)."""
        if self.purpose != "demand":
            return None
        chain = self.chain
        info = chain.info_table.peek(self._tpath(path))
        if info is None:
            return None
        lo, hi, _ = slice(start, end).indices(info.size)
        if hi <= lo:
            return b""
        return resident_range(chain, info, lo, hi)

    # -- reads ---------------------------------------------------------------------------------

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The bytes of ``path`` (or of ``[start, end)``) through the chain."""
        data = self._resident(path, start, end)
        if data is not None:
            return data
        return await self._offload(self.read_range, path, start, end)

    async def _cat_ranges(
        self,
        paths: list[str],
        starts: int | list[int | None] | None,
        ends: int | list[int | None] | None,
        max_gap: int | None = None,
        *,
        batch_size: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[bytes | Exception]:
        """Many ranges at once, concurrently; errors returned in place (``on_error="return"``,
        fsspec's default) or raised."""
        jobs = [self._cat_file(*job) for job in range_jobs(paths, starts, ends)]
        results = await asyncio.gather(*jobs, return_exceptions=on_error == "return")
        out: list[bytes | Exception] = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # a cancellation is not a read's error
            out.append(result)
        return out

    async def _cat(
        self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any
    ) -> Any:
        return await self._offload(self.cat, path, recursive=recursive, on_error=on_error)

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The target's info for ``path`` (cached as :meth:`info` caches it)."""
        known = self.chain.info_table.peek(self._tpath(path))
        if known is not None:
            return dict(known.raw)
        return await self._offload(self.info, path, **kwargs)

    async def _size(self, path: str) -> int:
        return int((await self._info(path))["size"])

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        return await self._offload(self.exists, path, **kwargs)

    async def _isfile(self, path: str) -> bool:
        return await self._offload(self.isfile, path)

    async def _isdir(self, path: str) -> bool:
        return await self._offload(self.isdir, path)

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        return await self._offload(self.ls, path, detail=detail, **kwargs)

    async def _find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        return await self._offload(
            self.find, path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs
        )

    async def _glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        return await self._offload(self.glob, path, maxdepth=maxdepth, **kwargs)

    # -- writes (through to the target, then invalidated, as the sync methods do) --------------

    async def _pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kw: Any) -> None:
        await self._offload(self.pipe_file, path, value, mode=mode, **kw)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        await self._offload(self.rm_file, path)

    async def _rm(
        self, path: Any, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any
    ) -> None:
        await self._offload(self.rm, path, recursive=recursive, maxdepth=maxdepth)

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        await self._offload(self.mkdir, path, create_parents=create_parents, **kwargs)

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        await self._offload(self.makedirs, path, exist_ok=exist_ok)

    async def _pipe(self, path: Any, value: Any = None, **kwargs: Any) -> None:
        await self._offload(self.pipe, path, value, **kwargs)

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        await self._offload(self.cp_file, path1, path2, **kwargs)

    async def _copy(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        await self._offload(self.copy, path1, path2, **kwargs)

    async def _put_file(self, lpath: str, rpath: str, **kwargs: Any) -> None:
        await self._offload(self.put_file, lpath, rpath, **kwargs)

    async def _put(self, lpath: Any, rpath: Any, **kwargs: Any) -> None:
        await self._offload(self.put, lpath, rpath, **kwargs)

    # -- transfers to local files (read through the tiers) -------------------------------------

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        await self._offload(self.get_file, rpath, lpath, **kwargs)

    async def _get(self, rpath: Any, lpath: Any, **kwargs: Any) -> None:
        await self._offload(self.get, rpath, lpath, **kwargs)

    async def _expand_path(self, path: Any, recursive: bool = False, **kwargs: Any) -> Any:
        return await self._offload(self.expand_path, path, recursive=recursive, **kwargs)

    async def open_async(self, path: str, mode: str = "rb", **kwargs: Any) -> AsyncTieredFile:
        """An async file: ``rb`` reads through the chain; ``wb`` writes the whole object to the
        target when closed (then invalidates it).

        Raises:
            ValueError: Another mode, or ``compression`` (as fsspec's async filesystems).
            FileNotFoundError: ``rb`` and no such object.
        """
        if mode not in ("rb", "wb") or kwargs.get("compression"):
            raise ValueError(
                f"open_async({path!r}, mode={mode!r}): only 'rb' and 'wb', uncompressed, are "
                "supported"
            )
        size = int((await self._info(path))["size"]) if mode == "rb" else None
        return AsyncTieredFile(self, path, mode, size=size)

    def close(self) -> None:
        if self._async_pool is not None:
            self._async_pool.shutdown(wait=False, cancel_futures=True)
            self._async_pool = None
        super().close()


class AsyncTieredFile(AbstractAsyncStreamedFile):  # type: ignore[misc]  # fsspec is untyped
    """A file of :class:`AsyncTieredFileSystem` (``await fs.open_async(path)``)."""

    buffer: io.BytesIO

    def __init__(self, fs: AsyncTieredFileSystem, path: str, mode: str, size: int | None) -> None:
        super().__init__(fs, path, mode=mode, cache_type="none", size=size)
        self.tiered = fs

    async def _fetch_range(self, start: int, end: int) -> bytes:
        return await self.tiered._cat_file(self.path, start, end)

    async def _initiate_upload(self) -> None:
        """Nothing: the whole object is written when the file closes."""

    async def _upload_chunk(self, final: bool = False) -> bool:
        if not final:
            return False  # keep buffering: an object is written whole
        await self.tiered._pipe_file(self.path, self.buffer.getvalue())
        self.buffer = io.BytesIO()
        return True


ASYNC_VARIANTS[TieredFileSystem] = AsyncTieredFileSystem


def async_methods() -> Sequence[str]:
    """The coroutine methods an :class:`AsyncTieredFileSystem` serves (for docs and tests)."""
    return sorted(
        name
        for name, value in vars(AsyncTieredFileSystem).items()
        if asyncio.iscoroutinefunction(value)
    )
