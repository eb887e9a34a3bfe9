"""The chain: the read algorithm (:mod:`.core`), the tiers' slots (:mod:`.slots`), object info
(:mod:`.info`), reused listings (:mod:`.listings`), origin fetches (:mod:`.fetch`) and the stats
snapshot (:mod:`.snapshot`)."""

from .core import LIVE_CHAINS, VERSION_RETRIES, TierChain
from .info import InfoCache, InfoStore
from .slots import ReadScope, TierSlot

__all__ = [
    "LIVE_CHAINS",
    "VERSION_RETRIES",
    "InfoCache",
    "InfoStore",
    "ReadScope",
    "TierChain",
    "TierSlot",
]
