"""Built-in tiers. Each third-party storage library is imported by exactly one module here."""

from .disk import DiskTier
from .memory import MemoryTier
from .redis import RedisTier

__all__ = ["DiskTier", "MemoryTier", "RedisTier"]


def __getattr__(name: str) -> object:
    """``InfoCache`` moved to :mod:`tiercache.chain.info` (this path works for one release)."""
    if name == "InfoCache":
        from . import memory

        return memory.InfoCache  # warns
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
