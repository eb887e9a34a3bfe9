"""TieredFileSystem: a thin fsspec adapter over the tier chain.

Reads (``read_range``, ``cat_file``, ``cat_ranges``, ``open(mode="rb")``, ``info``, and so
fsspec's ``cat``, ``get``, ``head``...) go through the chain. Listing (``ls``, ``find``, ``glob``,
``exists``, ``isdir``) passes through to the target. Writes and bulk operations (``copy``,
``put``, ``rm``, ``mv``, ``touch``, every other ``open`` mode...) are the target's own, then
invalidate every path they changed (:mod:`tiercache.fsops`).

Building one starts nothing but what reading needs (the chain's pools start their threads on the
first read that needs them): no metrics endpoint, no stats file. Those start when the application
calls ``tiercache.observe()`` (:mod:`tiercache.ops.observe`). Assembling the tiers and the chain
from the settings is :mod:`tiercache.build`'s.

Every method is written out; nothing is delegated by attribute magic (fsspec's own
``CachingFileSystem.__getattribute__`` list of method names caused a string of bugs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.chained import ChainedFileSystem

from .build import build_chain, close_shared_chains, default_tiers, shared_chain
from .chain import TierChain
from .config import Settings
from .context import Purpose
from .errors import ConfigError
from .files import TieredFile, WriteThrough
from .fsops import TargetOperations, strip_prefix
from .origin_info import info_from_raw
from .protocol import ObjectInfo, Tier

__all__ = [
    "TieredFile",
    "TieredFileSystem",
    # Kept importable from here for one release (CHANGELOG, "Deprecated"): their place is
    # tiercache.build.
    "build_chain",
    "close_shared_chains",
    "default_tiers",
]

#: A filesystem class -> its async variant (``asynchronous=True`` builds that one); filled by
#: :mod:`tiercache.asyncfs`, which the package imports.
ASYNC_VARIANTS: dict[type, type] = {}


def range_jobs(
    paths: list[str],
    starts: int | list[int | None] | None,
    ends: int | list[int | None] | None,
) -> list[tuple[str, int | None, int | None]]:
    """``cat_ranges``'s arguments as ``(path, start, end)`` triples (a single start or end
    applies to every path).

    Raises:
        ValueError: The lists' lengths differ.
    """
    starts = starts if isinstance(starts, list) else [starts] * len(paths)
    ends = ends if isinstance(ends, list) else [ends] * len(paths)
    if not len(paths) == len(starts) == len(ends):
        raise ValueError(
            f"cat_ranges: {len(paths)} paths, {len(starts)} starts and {len(ends)} ends"
        )
    return list(zip(paths, starts, ends, strict=True))


class _NoCacheForObjects(type(ChainedFileSystem)):  # type: ignore[misc]  # fsspec is untyped
    """fsspec's instance cache, except for instances built from objects (``tiers=``, ``fs=``).

    fsspec reuses an instance when the arguments print the same; two lists of freshly built
    tiers can print the same, and the second caller would silently get the first instance and
    its state (and the tiers it built would never be closed).
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        variant = ASYNC_VARIANTS.get(cls)
        if kwargs.get("asynchronous") and variant is not None:
            return variant(*args, **kwargs)  # fsspec's async interface (tiercache.asyncfs)
        if kwargs.get("tiers") is not None or kwargs.get("fs") is not None:
            kwargs["skip_instance_cache"] = True
        return super().__call__(*args, **kwargs)


class TieredFileSystem(
    TargetOperations,
    ChainedFileSystem,  # type: ignore[misc]  # fsspec is untyped
    metaclass=_NoCacheForObjects,
):
    """A chain of cache tiers in front of any fsspec filesystem.

    Args:
        target_protocol: Protocol of the target filesystem (``"s3"``, ``"file"``, ...).
        target_options: Options for the target filesystem (credentials, endpoint, ...).
        settings: Settings; default: :meth:`Settings.from_env`. Their
            ``TIERCACHE_METRICS_PORT`` and ``TIERCACHE_STATS_FILE`` take effect when
            ``tiercache.observe()`` runs, not here.
        tiers: Tiers in lookup order, replacing those the settings would build. Objects
            satisfying :class:`tiercache.Tier`; each runs under a guard unless it declares
            ``in_process = True``.
        fs: A ready target filesystem instance, instead of ``target_protocol``.

    Without ``tiers``, every instance in the process over the same target (the filesystem's
    type and storage options) with the same settings shares one chain: one cache, whichever
    instance filled it. That chain reads the origin through the target of the instance that
    built it, so a second instance's own ``fs=`` object (a new s3fs client with the same
    options) is not used for origin reads. Pass ``tiers`` for a chain of this instance's own,
    closed with it.

    Raises:
        ConfigError: Unknown target protocol, or bad settings.
    """

    protocol: ClassVar[str] = "tiercache"
    root_marker = ""

    def __init__(
        self,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        settings: Settings | None = None,
        tiers: Sequence[Tier] | None = None,
        fs: AbstractFileSystem | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("fo", None)  # the path fsspec's URL chaining hands over; unused
        super().__init__(**kwargs)
        self.settings = settings if settings is not None else Settings.from_env()
        if fs is None:
            protocol = target_protocol or "file"
            try:
                fs = fsspec.filesystem(protocol, **(target_options or {}))
            except ValueError as exc:
                if "not known" in str(exc):
                    raise ConfigError(
                        f"unknown target protocol {protocol!r}: fsspec has no filesystem for it"
                    ) from exc
                raise
        self.target: AbstractFileSystem = fs
        if tiers is not None:
            self._chain = build_chain(fs, self.settings, tiers)
            self._owns_chain = True
        else:
            self._chain = shared_chain(fs, self.settings)
            self._owns_chain = False
        self._paths: dict[str, str] = {}
        self._ranges_pool: ThreadPoolExecutor | None = None
        self.purpose: Purpose = "demand"
        self._read: Callable[[str, int | None, int | None], bytes] = self._chain.read_range

    # -- paths ---------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return strip_prefix(path)

    def _tpath(self, path: str) -> str:
        """Return the target's own form of ``path`` (memoized: this is on the read path)."""
        tpath = self._paths.get(path)
        if tpath is None:
            tpath = str(self.target._strip_protocol(self._strip_protocol(path)))
            if len(self._paths) > 10_000:
                self._paths.clear()
            self._paths[path] = tpath
        return tpath

    @property
    def chain(self) -> TierChain:
        """The tier chain behind this filesystem."""
        return self._chain

    # -- reads ---------------------------------------------------------------------------------

    def read_range(self, path: str, start: int | None, end: int | None) -> bytes:
        """Return bytes ``[start, end)`` of ``path``: *the* read-range interface.

        ``end`` is exclusive. Offsets follow Python slice semantics (as fsspec's ``cat_file``):
        ``None`` is the start/end of the object, negative offsets count from the end, offsets are
        clamped to the object, and an inverted range returns ``b""``.

        Raises:
            FileNotFoundError: The object does not exist (as the target raises it).
            OriginError: The origin failed after retries and within the deadline.
        """
        return self._read(self._tpath(path), start, end)

    def prefetching(self) -> TieredFileSystem:
        """This filesystem with every read counted as prefetch (``stats()["prefetch"]``).

        For work ahead of demand that reads through ordinary filesystem calls (warmup reading a
        Delta log, say). It shares this filesystem's chain; closing it closes nothing.
        """
        view: TieredFileSystem = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._owns_chain = False
        view._ranges_pool = None
        view.purpose = "prefetch"
        view._read = self._chain.prefetch
        return view

    def prefetch_range(self, path: str, start: int | None, end: int | None) -> bytes:
        """Read like :meth:`read_range`, counted as prefetch (``stats()["prefetch"]``)."""
        return self._chain.prefetch(self._tpath(path), start, end)

    def seed_info(
        self, path: str, size: int, version: str, raw: dict[str, Any] | None = None
    ) -> None:
        """Tell the cache what an object is, learnt without asking the store (a Delta log).

        Opening the object then costs no HEAD. ``version`` keys its blocks: it must change
        whenever the object's bytes do (Delta data files never change: a rewrite is a new file).
        Info the cache already holds for the path wins.
        """
        tpath = self._tpath(path)
        details = {"name": tpath, "size": size, "type": "file", **(raw or {})}
        self._chain.seed_info(ObjectInfo(path=tpath, size=size, version=version, raw=details))

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """Return the bytes of ``path`` (or of ``[start, end)``) through the chain."""
        return self.read_range(path, start, end)

    def cat_ranges(
        self,
        paths: list[str],
        starts: int | list[int | None] | None,
        ends: int | list[int | None] | None,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[bytes | Exception]:
        """Return many ranges at once, read concurrently; errors are returned in place
        (``on_error="return"``, fsspec's default) or raised."""
        jobs = range_jobs(paths, starts, ends)

        def one(args: tuple[str, int | None, int | None]) -> bytes | Exception:
            try:
                return self.read_range(*args)
            except Exception as exc:
                if on_error == "return":
                    return exc
                raise

        if len(jobs) <= 1:
            return [one(job) for job in jobs]
        if self._ranges_pool is None:
            self._ranges_pool = ThreadPoolExecutor(8, thread_name_prefix="tiercache-ranges")
        return list(self._ranges_pool.map(one, jobs))

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Return the target's info for ``path``; file info is cached (see INFO_TTL)."""
        return dict(self._chain.info(self._tpath(path)).raw)

    def size(self, path: str) -> int:
        """Return the size of ``path`` in bytes (from cached info)."""
        return int(self.info(path)["size"])

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        tpath = self._tpath(path)
        if mode == "rb":
            return TieredFile(self, tpath, self._chain.info(tpath))
        # Every other mode is the target's: it takes or refuses it.
        inner = self.target.open(tpath, mode=mode, block_size=block_size, **kwargs)
        return WriteThrough(inner, lambda: self._chain.invalidate(tpath))

    # -- listing: passed through ---------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        """List ``path`` on the target; file entries seed the object-info cache (see
        :meth:`seed_listing`)."""
        entries = self.target.ls(self._tpath(path), detail=detail, **kwargs)
        if detail:
            self.seed_listing(entries)
        return entries

    def seed_listing(self, entries: Any) -> int:
        """Seed object info from a listing's file entries (a list or a name -> entry dict).

        Only where reads are pinned to the version (S3: ``If-Match`` on the ETag): a listing may
        come from the target's own listing cache, and a pinned read of a changed object fails,
        invalidates and retries instead of serving the old bytes. Returns the entries seeded.
        """
        if not self._chain.origin.can_discover:
            return 0
        values = entries.values() if isinstance(entries, dict) else entries
        seeded = 0
        for entry in values:
            if not isinstance(entry, dict) or entry.get("type", "file") != "file":
                continue
            try:
                info = info_from_raw(str(self.target._strip_protocol(entry["name"])), entry)
            except (KeyError, TypeError, ValueError):
                continue
            if info.etag is None:
                continue
            self._chain.seed_info(info)
            seeded += 1
        return seeded

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Find files below ``path`` on the target; file entries seed the info cache."""
        found = self.target.find(
            self._tpath(path), maxdepth=maxdepth, withdirs=withdirs, detail=True, **kwargs
        )
        self.seed_listing(found)
        return found if detail else sorted(found)

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """Glob on the target; file entries seed the info cache."""
        detail = kwargs.pop("detail", False)
        found = self.target.glob(self._tpath(path), maxdepth=maxdepth, detail=True, **kwargs)
        if isinstance(found, dict):
            self.seed_listing(found)
            return found if detail else sorted(found)
        return found

    def exists(self, path: str, **kwargs: Any) -> bool:
        """Return whether ``path`` exists on the target (never answered from cache)."""
        return bool(self.target.exists(self._tpath(path), **kwargs))

    def isdir(self, path: str) -> bool:
        """Return whether ``path`` is a directory on the target."""
        return bool(self.target.isdir(self._tpath(path)))

    def isfile(self, path: str) -> bool:
        """Return whether ``path`` is a file, from cached info (pyarrow asks before every open)."""
        try:
            return bool(self.info(path).get("type") == "file")
        except FileNotFoundError:
            return False

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create a directory on the target."""
        self.target.mkdir(self._tpath(path), create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create a directory and its parents on the target."""
        self.target.makedirs(self._tpath(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory on the target."""
        self.target.rmdir(self._tpath(path))

    # -- writes: the target's own operations, then invalidation (fsops.py) --------------------

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget cached info and blocks of ``path``, or all cached info when ``path`` is None."""
        if path is None:
            self._chain.invalidate_all_info()
        else:
            self._chain.invalidate(self._tpath(path))
        self.target.invalidate_cache(None if path is None else self._tpath(path))

    # -- operations ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return counters of the tiers, the origin, object info and fills (see the docs)."""
        return self._chain.stats()

    def close(self) -> None:
        """Release this instance's resources (and its chain, if it was not shared)."""
        if self._ranges_pool is not None:
            self._ranges_pool.shutdown(wait=False)
            self._ranges_pool = None
        if self._owns_chain:
            self._chain.close()
