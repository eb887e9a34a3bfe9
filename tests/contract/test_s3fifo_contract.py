"""The S3-FIFO RAM tier passes the tier contract."""

from __future__ import annotations

from tiercache import S3FifoTier, Tier
from tiercache.testing import TierContract


class TestS3FifoTier(TierContract):
    def make_tier(self) -> Tier:
        return S3FifoTier(8 << 20)
