"""The tiercache exception hierarchy.

::

    Exception
     └── TierCacheError                      every error raised by tiercache
          ├── ConfigError(ValueError)         a setting is unknown or malformed; names the variable
          ├── OriginError(OSError)            the origin (object store) failed; reaches the caller
          │    ├── OriginTimeoutError(TimeoutError)  the origin deadline ran out
          │    ├── ShortReadError             the origin returned fewer bytes than asked (retried)
          │    └── ObjectChangedError         the object changed under a version-pinned read
          └── TierError                       a cache tier failed; never reaches a reader: a miss
               ├── TierTimeoutError(TimeoutError)   the tier exceeded its time budget
               ├── TierRejectedError          the tier's bulkhead is full or its breaker is open
               ├── TierUnavailableError       the tier could not start (or restart); it is disabled
               └── IntegrityError             a stored value failed its header or checksum check

Not-found and permission errors of the origin are raised as the builtins the target raised
(``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``), so callers' ``except``
clauses keep working; they are never retried and never cached.
"""

from __future__ import annotations


class TierCacheError(Exception):
    """Base of every error raised by tiercache."""


class ConfigError(TierCacheError, ValueError):
    """A setting is unknown or malformed. The message names the variable and the accepted forms."""


class OriginError(TierCacheError, OSError):
    """The origin failed after retries, or returned something that cannot be served."""


class OriginTimeoutError(OriginError, TimeoutError):
    """The origin did not answer before the deadline (``TIERCACHE_ORIGIN_TIMEOUT``), retries
    included; ``except TimeoutError`` catches it."""


class ShortReadError(OriginError):
    """The origin returned fewer (or more) bytes than the range asked for, short of EOF."""


class ObjectChangedError(OriginError):
    """The object was overwritten while a version-pinned reader (an open file) was reading it."""


class TierError(TierCacheError):
    """A cache tier failed. The chain turns it into a miss; it never reaches a reader."""


class TierTimeoutError(TierError, TimeoutError):
    """A tier call exceeded the tier's time budget."""


class TierRejectedError(TierError):
    """A tier call was refused at once: the breaker is open or the bulkhead is full."""


class TierUnavailableError(TierError):
    """The tier cannot be used now (its directory or server is unusable); it retries later."""


class IntegrityError(TierError):
    """A value read from a tier failed its header or checksum check; it is treated as a miss."""
