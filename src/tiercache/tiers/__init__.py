"""Built-in tiers. Each third-party storage library is imported by exactly one module here."""

from .memory import InfoCache, MemoryTier

__all__ = ["InfoCache", "MemoryTier"]
