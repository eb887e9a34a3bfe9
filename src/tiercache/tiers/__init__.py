"""Built-in tiers. Each third-party storage library is imported by exactly one module here."""

from .disk import DiskTier
from .memory import InfoCache, MemoryTier

__all__ = ["DiskTier", "InfoCache", "MemoryTier"]
