"""Assembling tiers and chains from :class:`~tiercache.config.Settings`.

What a :class:`~tiercache.TieredFileSystem` runs on is built here: the tiers the settings ask for
(:func:`default_tiers`), the origin and the chain around them (:func:`build_chain`), and the
chains shared by every filesystem of one target and one set of settings (:func:`shared_chain`).

Building starts nothing: no metrics server, no stats-file thread, no worker beyond the chain's
own pools, which start their threads on the first read that needs them. What
``TIERCACHE_METRICS_PORT`` and ``TIERCACHE_STATS_FILE`` ask for starts when the application calls
``tiercache.observe()`` (:mod:`tiercache.ops.observe`; the integrations' entry points that build
a filesystem from the environment, and the CLI, call it). A chain built from settings that ask for
either while nothing called it logs one WARNING per process: an application upgraded from a
release where building started them would otherwise lose its endpoint in silence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .chain import TierChain
from .config import Settings
from .origin import FsspecOrigin
from .protocol import Tier
from .tiers.disk import DiskTier
from .tiers.memory import MemoryTier
from .tiers.redis import RedisTier
from .tiers.s3fifo import SMALL_SHARE, S3FifoTier

if TYPE_CHECKING:  # the type only: fsspec is fs.py's, files.py's and origin.py's to import
    from fsspec import AbstractFileSystem

__all__ = [
    "SHADOW_TARGET_KEYS",
    "build_chain",
    "close_shared_chains",
    "default_tiers",
    "mark_observed",
    "memory_tier",
    "shadow_rate",
    "shared_chain",
]

logger = logging.getLogger(__name__)

#: The shadow cache's automatic rate aims at this many sampled blocks within 16x the RAM tier.
SHADOW_TARGET_KEYS = 2048

# Chains built from the settings alone are shared by every TieredFileSystem instance with the
# same target and settings: fsspec caches sync filesystem instances per thread, and a cache
# split per thread would miss what its siblings fetched.
_SHARED: dict[str, TierChain] = {}
_SHARED_LOCK = threading.Lock()


class _Observation:
    """Whether ``tiercache.observe()`` runs, and whether the warning that it does not was logged.

    The core cannot ask :mod:`tiercache.ops` (it never imports from it): ops.observe tells it
    through :func:`mark_observed`.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.observed = False
        self.warned = False


_observation = _Observation()


def default_tiers(settings: Settings) -> list[Tier]:
    """Build the tiers the settings ask for, in lookup order (RAM, disk, Redis)."""
    tiers: list[Tier] = []
    if settings.memory_bytes > 0:
        tiers.append(memory_tier(settings.memory_bytes, settings.memory_policy))
    if settings.disk_dir is not None:
        tiers.append(
            DiskTier(
                settings.disk_dir,
                capacity_bytes=settings.disk_bytes,
                lock_timeout_s=settings.disk_timeout_s,
                clear_on_start=settings.disk_clear_on_start,
                retry_after_s=settings.breaker_cooldown_s,
                eviction_policy=settings.disk_eviction,
            )
        )
    if settings.redis_url is not None:
        tiers.append(
            RedisTier(
                settings.redis_url,
                timeout_s=settings.redis_timeout_s,
                ttl_s=settings.redis_ttl_s,
                max_value_bytes=settings.redis_max_value_bytes,
                prefix=settings.redis_prefix,
                hmac_key=settings.redis_hmac_key,
                allow_unauthenticated=settings.redis_allow_unauthenticated,
                retry_after_s=settings.breaker_cooldown_s,
            )
        )
    return tiers


def build_chain(target: AbstractFileSystem, settings: Settings, tiers: Sequence[Tier]) -> TierChain:
    """Assemble the origin and the chain for a target filesystem; start nothing.

    Logs one WARNING per process if the settings ask for a metrics endpoint or a stats file
    and ``tiercache.observe()`` has not run (see the module docstring).
    """
    origin = FsspecOrigin(
        target,
        retries=settings.origin_retries,
        timeout_s=settings.origin_timeout_s,
        concurrency=settings.origin_concurrency,
        hedge=settings.origin_hedge,
        hedge_budget=settings.origin_hedge_budget,
    )
    chain = TierChain(
        origin,
        tiers,
        block_size=settings.block_size_bytes,
        info_ttl_s=settings.info_ttl_s,
        breaker_failures=settings.breaker_failures,
        breaker_cooldown_s=settings.breaker_cooldown_s,
        fill_queue_size=settings.fill_queue_size,
        fill_queue_bytes=settings.fill_queue_bytes,
        run_workers=min(settings.origin_concurrency, 16),
        fetch_workers=settings.origin_concurrency,
        shadow_rate=shadow_rate(settings),
        readahead_bytes=readahead_budget(settings, tiers),
    )
    chain.settings = settings
    _warn_if_unobserved(settings)
    return chain


def shared_chain(fs: AbstractFileSystem, settings: Settings) -> TierChain:
    """Return the chain shared by every filesystem over ``fs``'s target with ``settings``.

    The first caller builds it with :func:`default_tiers`; it lives until
    :func:`close_shared_chains`. The key is a digest of the target's type and options and of
    every setting's value, secrets included (the ``repr`` of settings hides them): settings that
    differ only in a secret (the HMAC key, the Redis password) never share a chain, and no secret
    is kept in the key.
    """
    values = tuple(getattr(settings, field.name) for field in dataclasses.fields(settings))
    identity = (type(fs).__name__, fs.storage_options, values)
    key = hashlib.sha256(str(identity).encode()).hexdigest()
    with _SHARED_LOCK:
        chain = _SHARED.get(key)
        if chain is None:
            chain = build_chain(fs, settings, default_tiers(settings))
            _SHARED[key] = chain
    return chain


def close_shared_chains() -> None:
    """Close every shared chain (for tests and orderly shutdown)."""
    with _SHARED_LOCK:
        chains = list(_SHARED.values())
        _SHARED.clear()
    for chain in chains:
        chain.close()


def readahead_budget(settings: Settings, tiers: Sequence[Tier]) -> int:
    """``TIERCACHE_READAHEAD_BYTES``, within what the RAM tier keeps until the reader comes.

    An LRU tier: a quarter of it. An S3-FIFO tier: half its small queue (5 % of it), where every
    new block waits for its first hit; a window larger than that would see blocks read ahead
    evicted before the reader reaches them, once the tier is full.
    """
    front = tiers[0] if tiers else None
    capacity = getattr(front, "capacity_bytes", settings.memory_bytes)
    if isinstance(front, S3FifoTier):
        return min(settings.readahead_bytes, int(capacity * SMALL_SHARE / 2))
    return min(settings.readahead_bytes, int(capacity) // 4)


def memory_tier(capacity_bytes: int, policy: str) -> MemoryTier | S3FifoTier:
    """The RAM tier of ``TIERCACHE_MEMORY_POLICY``: ``s3fifo`` (scan-resistant) or ``lru``."""
    if policy == "lru":
        return MemoryTier(capacity_bytes)
    return S3FifoTier(capacity_bytes)


def shadow_rate(settings: Settings) -> float | None:
    """The shadow cache's sampling rate: ``TIERCACHE_SHADOW_RATE``, else chosen from the RAM size
    (about :data:`SHADOW_TARGET_KEYS` sampled blocks within 16x the RAM tier); None: off."""
    if settings.shadow_rate is not None:
        return settings.shadow_rate or None
    if settings.memory_bytes <= 0:
        return None
    blocks = max(1, settings.memory_bytes // settings.block_size_bytes)
    return min(1.0, SHADOW_TARGET_KEYS / (16 * blocks))


def mark_observed(observed: bool = True) -> None:
    """Record whether ``tiercache.observe()`` runs (called by :mod:`tiercache.ops.observe` only:
    ``True`` when it starts, ``False`` when it stops)."""
    with _observation.lock:
        _observation.observed = observed


def _warn_if_unobserved(settings: Settings) -> None:
    asked = []
    if settings.metrics_port is not None:
        asked.append(f"TIERCACHE_METRICS_PORT={settings.metrics_port}")
    if settings.stats_file is not None:
        asked.append(f"TIERCACHE_STATS_FILE={settings.stats_file}")
    if not asked:
        return
    with _observation.lock:
        if _observation.observed or _observation.warned:
            return
        _observation.warned = True  # one warning per process
    logger.warning(
        "%s %s set, but building a filesystem no longer starts the metrics endpoint or the "
        "stats file: call tiercache.observe() once at startup (docs/operations.md)",
        " and ".join(asked),
        "is" if len(asked) == 1 else "are",
    )
