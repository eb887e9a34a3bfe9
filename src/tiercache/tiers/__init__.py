"""Built-in tiers. Each third-party storage library is imported by exactly one module here."""

from .disk import DiskTier
from .memory import InfoCache, MemoryTier
from .redis import RedisTier

__all__ = ["DiskTier", "InfoCache", "MemoryTier", "RedisTier"]
