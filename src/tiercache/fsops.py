"""The operations :class:`~tiercache.fs.TieredFileSystem` hands to its target (issue 15).

Every write and bulk operation (``copy``/``cp``/``cp_file``, ``put``/``put_file``, ``pipe_file``,
``rm``/``rm_file``, ``mv``, ``touch``) is the *target's own* method, called with the arguments
as given minus tiercache's protocol prefix: a trailing ``/``, a glob, a list of paths, the
target's own protocol and its defaults (``LocalFileSystem.mv`` is recursive by default) mean
what they mean on the bare target, and what it raises is raised unchanged (a target with no
``cp_file`` raises its own ``NotImplementedError``). Then every path the operation may have
changed is invalidated: what existed at or under each removed or moved source *before* the
operation, and what exists at or under each destination *after* it (even when the operation
failed half way); a single-file operation (``cp_file``, ``put_file``, ``pipe_file``, ``touch``,
``rm_file``) touches its one path, which is forgotten without listing anything. Reads
(``get``, ``get_file``, ``cat``, ``open("rb")``) are not here: they go through the tiers
(fsspec's own ``get`` calls ``open``).

Metadata the cache does not hold (``created``, ``modified``, ``lexists``, ``checksum``,
``ukey``, ``sign``) is asked of the target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fsspec import AbstractFileSystem

from .chain import TierChain

_PREFIXES = ("tiercache::", "tiercache://")
#: What looking for the paths an operation touched may raise; the operation itself decides.
_LOOKUP_ERRORS = (OSError, ValueError, NotImplementedError, KeyError, TypeError)


def strip_prefix(path: Any) -> Any:
    """Return ``path`` (or each of a list) without tiercache's protocol prefix, else as given."""
    if isinstance(path, list | tuple):
        return [strip_prefix(p) for p in path]
    text = str(path)
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


class TargetOperations:
    """Mixin: writes and bulk operations on the target, then invalidation. See the module."""

    target: AbstractFileSystem
    _chain: TierChain

    def _tpath(self, path: str) -> str:  # pragma: no cover - TieredFileSystem defines it
        raise NotImplementedError

    # -- what an operation touched -------------------------------------------------------------

    def _touched(self, path: Any) -> set[str]:
        """The target paths at or under ``path`` (a path, a glob or a list of them) now."""
        args = strip_prefix(path)
        roots = args if isinstance(args, list) else [args]
        touched = {self._tpath(p) for p in roots}
        try:
            found = self.target.expand_path(roots, recursive=True)
        except _LOOKUP_ERRORS:
            found = []
        touched.update(str(p) for p in found)
        return touched

    def _forget(self, tpaths: Iterable[str]) -> None:
        for tpath in tpaths:
            self._chain.invalidate(tpath)

    def _write_one(self, path: Any, call: Callable[[], Any]) -> Any:
        """Run ``call()`` on the target, then forget the one object it wrote or removed at
        ``path`` (no listing: a single-file operation touches that path only)."""
        tpath = self._tpath(path)
        try:
            return call()
        finally:
            self._chain.invalidate(tpath)

    def _write(self, destination: Any, call: Any, *, before: set[str] | None = None) -> Any:
        """Run ``call()`` on the target, then forget ``before`` and what is at ``destination``."""
        try:
            return call()
        finally:
            self._forget((before or set()) | self._touched(destination))

    # -- copies ------------------------------------------------------------------------------------

    def copy(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> Any:
        """Copy on the target (``recursive``, ``maxdepth``, ``on_error`` as it takes them);
        invalidate everything at or under the destination."""
        p1, p2 = strip_prefix(path1), strip_prefix(path2)
        return self._write(path2, lambda: self.target.copy(p1, p2, *args, **kwargs))

    def cp(self, path1: Any, path2: Any, **kwargs: Any) -> Any:
        """Alias of :meth:`copy`."""
        return self.copy(path1, path2, **kwargs)

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> Any:
        """Copy one file on the target; invalidate the destination."""
        p1, p2 = strip_prefix(path1), strip_prefix(path2)
        return self._write_one(path2, lambda: self.target.cp_file(p1, p2, **kwargs))

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> Any:
        """Move on the target (with its defaults); invalidate the sources and the destinations."""
        before = self._touched(path1)
        p1, p2 = strip_prefix(path1), strip_prefix(path2)
        return self._write(path2, lambda: self.target.mv(p1, p2, *args, **kwargs), before=before)

    def put(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> Any:
        """Upload local files with the target's ``put``; invalidate the remote destinations."""
        remote = strip_prefix(rpath)
        return self._write(rpath, lambda: self.target.put(lpath, remote, *args, **kwargs))

    def put_file(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> Any:
        """Upload a local file to the target and invalidate the cached object."""
        remote = strip_prefix(rpath)
        return self._write_one(rpath, lambda: self.target.put_file(lpath, remote, *args, **kwargs))

    # -- writes and removals ---------------------------------------------------------------------

    def pipe_file(self, path: Any, value: bytes, *args: Any, **kwargs: Any) -> Any:
        """Write ``value`` to ``path`` on the target and invalidate the cached object."""
        target = strip_prefix(path)
        return self._write_one(path, lambda: self.target.pipe_file(target, value, *args, **kwargs))

    def pipe(self, path: Any, value: bytes | None = None, **kwargs: Any) -> Any:
        """Write a file or a ``{path: bytes}`` dict with the target's ``pipe``; invalidate each."""
        paths = list(path) if isinstance(path, dict) else [path]
        args = {strip_prefix(p): v for p, v in path.items()} if isinstance(path, dict) else None
        try:
            if args is None:
                return self.target.pipe(strip_prefix(path), value, **kwargs)
            return self.target.pipe(args, **kwargs)
        finally:
            self._forget(self._tpath(p) for p in paths)

    def touch(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        """Touch on the target (truncating or not, as it can); invalidate the path."""
        target = strip_prefix(path)
        return self._write_one(path, lambda: self.target.touch(target, *args, **kwargs))

    def rm_file(self, path: Any) -> Any:
        """Delete one file on the target and invalidate it."""
        target = strip_prefix(path)
        return self._write_one(path, lambda: self.target.rm_file(target))

    def rm(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        """Delete on the target (``recursive``, ``maxdepth``); invalidate everything that was at
        or under each path before."""
        before = self._touched(path)
        try:
            return self.target.rm(strip_prefix(path), *args, **kwargs)
        finally:
            self._forget(before)

    # -- metadata the cache does not hold --------------------------------------------------------

    def created(self, path: Any) -> Any:
        """The creation time the target reports (or what it raises)."""
        return self.target.created(self._tpath(path))

    def modified(self, path: Any) -> Any:
        """The modification time the target reports."""
        return self.target.modified(self._tpath(path))

    def lexists(self, path: Any, **kwargs: Any) -> bool:
        """Whether ``path`` exists on the target, a broken link included."""
        return bool(self.target.lexists(self._tpath(path), **kwargs))

    def checksum(self, path: Any) -> Any:
        """The target's checksum of ``path`` (never from cache)."""
        return self.target.checksum(self._tpath(path))

    def ukey(self, path: Any) -> Any:
        """The target's key of the file's properties (never from cache)."""
        return self.target.ukey(self._tpath(path))

    def sign(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        """A signed URL from the target (or what it raises)."""
        return self.target.sign(self._tpath(path), *args, **kwargs)
