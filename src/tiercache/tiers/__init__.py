"""Built-in tiers. Each third-party storage library is imported by exactly one module here."""

from .disk import DiskTier
from .memory import MemoryTier
from .redis import RedisTier
from .s3fifo import S3FifoTier

__all__ = ["DiskTier", "MemoryTier", "RedisTier", "S3FifoTier"]


def __getattr__(name: str) -> object:
    """``InfoCache`` moved to :mod:`tiercache.chain.info` (this path works for one release)."""
    if name == "InfoCache":
        from . import memory

        return memory.InfoCache  # warns
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
