"""pyarrow's view of a tiercache filesystem.

pyarrow (and everything built on it: pyarrow.dataset, pandas, DataFusion's ``register_dataset``,
deltalake's ``to_pyarrow_dataset``) takes a ``pyarrow.fs.FileSystem``, not an fsspec one. This
module wraps a :class:`~tiercache.TieredFileSystem` in ``PyFileSystem(FSSpecHandler(fs))``, so
every ``read_at`` pyarrow makes becomes one :meth:`~tiercache.TieredFileSystem.read_range`.

Needs the ``pyarrow`` package (the ``arrow`` extra).
"""

from __future__ import annotations

from typing import Any

from fsspec import AbstractFileSystem


def pyarrow_filesystem(fs: AbstractFileSystem, root: str | None = None) -> Any:
    """Return ``fs`` as a ``pyarrow.fs.FileSystem``, optionally rooted at ``root``.

    Args:
        fs: A fsspec filesystem, normally a :class:`~tiercache.TieredFileSystem`.
        root: A directory (``"bucket/table"``, ``"s3://bucket/table"`` or a local path) that
            paths are relative to: a ``SubTreeFileSystem``, which is what deltalake's
            ``to_pyarrow_dataset`` needs (its file paths are relative to the table root).

    Raises:
        TypeError: ``fs`` is not a fsspec filesystem.
        ImportError: pyarrow is not installed.
    """
    if not isinstance(fs, AbstractFileSystem):
        raise TypeError(f"pyarrow_filesystem needs a fsspec filesystem, got {type(fs).__name__}")
    from pyarrow.fs import FSSpecHandler, PyFileSystem, SubTreeFileSystem

    filesystem = PyFileSystem(FSSpecHandler(fs))
    if root is None:
        return filesystem
    return SubTreeFileSystem(strip_scheme(root), filesystem)


def strip_scheme(uri: str) -> str:
    """``s3://bucket/table/`` -> ``bucket/table``; ``file:///tmp/t`` -> ``/tmp/t``."""
    scheme, sep, rest = uri.partition("://")
    path = rest if sep else scheme
    if sep and scheme == "file":
        path = "/" + path.lstrip("/")
    return path.rstrip("/") or "/"
