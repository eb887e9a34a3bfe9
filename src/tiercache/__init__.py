"""tiercache: a chain of cache tiers in front of object storage, as an fsspec filesystem.

Re-exports only; see the modules for the concepts.
"""

from importlib import metadata as _metadata

from .asyncfs import AsyncTieredFileSystem
from .config import Settings
from .errors import (
    ConfigError,
    IntegrityError,
    ObjectChangedError,
    OriginError,
    OriginTimeoutError,
    ShortReadError,
    TierCacheError,
    TierError,
    TierRejectedError,
    TierTimeoutError,
    TierUnavailableError,
)
from .files import TieredFile
from .fs import TieredFileSystem
from .integrations.warming import WarmReport, warm
from .ops.observe import start as observe
from .protocol import (
    BlockKey,
    BlockKind,
    BudgetedTier,
    DocumentTier,
    InfoTier,
    InProcessTier,
    ObjectInfo,
    Origin,
    ReportingTier,
    SizedTier,
    StartableTier,
    ThreadBoundTier,
    Tier,
    WarningTier,
)
from .tiers.disk import DiskTier
from .tiers.memory import MemoryTier
from .tiers.redis import RedisTier
from .tiers.s3fifo import S3FifoTier

try:
    __version__ = _metadata.version("tiercache")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "AsyncTieredFileSystem",
    "BlockKey",
    "BlockKind",
    "BudgetedTier",
    "ConfigError",
    "DiskTier",
    "DocumentTier",
    "InProcessTier",
    "InfoTier",
    "IntegrityError",
    "MemoryTier",
    "ObjectChangedError",
    "ObjectInfo",
    "Origin",
    "OriginError",
    "OriginTimeoutError",
    "RedisTier",
    "ReportingTier",
    "S3FifoTier",
    "Settings",
    "ShortReadError",
    "SizedTier",
    "StartableTier",
    "ThreadBoundTier",
    "Tier",
    "TierCacheError",
    "TierError",
    "TierRejectedError",
    "TierTimeoutError",
    "TierUnavailableError",
    "TieredFile",
    "TieredFileSystem",
    "WarmReport",
    "WarningTier",
    "__version__",
    "observe",
    "warm",
]
