"""The memory tier passes the tier contract."""

from __future__ import annotations

from tiercache import MemoryTier, Tier
from tiercache.testing import TierContract


class TestMemoryTier(TierContract):
    def make_tier(self) -> Tier:
        return MemoryTier(8 << 20)
