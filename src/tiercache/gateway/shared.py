"""One embedded gateway per target and settings, shared by everything in the process.

``tiercache.integrations.delta`` and ``register_delta`` open every S3 table through a gateway;
starting a process for each would cost a second per table and a RAM tier each. :func:`shared`
keeps one per (target options, settings), started on first use, started again if it died, and
closed when the interpreter exits (the child also ends with this process on its own).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import threading

from tiercache.fs import TieredFileSystem
from tiercache.gateway.embedded import Gateway, child_spec, client_keys, launch

logger = logging.getLogger(__name__)

_RUNNING: dict[str, Gateway] = {}
_LOCK = threading.Lock()


def shared(fs: TieredFileSystem) -> Gateway:
    """The process's gateway over ``fs``'s target and settings, started if none is running.

    Two filesystems with the same target options and settings share one gateway (the key is a
    digest of both: credentials are not kept in the clear). Its tiers are built from the
    settings in the gateway process (RAM of its own; the disk directory and Redis shared):
    tier objects given to ``TieredFileSystem(tiers=...)`` cannot cross into it. Closing it
    (``shared(fs).close()``) ends it, and the next call starts another, empty; otherwise
    :func:`close_shared` or interpreter exit ends it.

    Raises:
        ConfigError: See :func:`tiercache.gateway.start`.
    """
    line = child_spec(fs)
    key = hashlib.sha256(line.encode()).hexdigest()
    with _LOCK:
        running = _RUNNING.get(key)
        if running is not None and running.alive:
            return running
        if running is not None and not running.closed:
            logger.warning(
                "the shared gateway at %s had exited; starting another", running.endpoint_url
            )
            running.close()
        gateway = launch(line, client_keys(fs.settings))
        _RUNNING[key] = gateway
        return gateway


def close_shared() -> None:
    """Stop every gateway :func:`shared` started (also run at interpreter exit)."""
    with _LOCK:
        gateways = list(_RUNNING.values())
        _RUNNING.clear()
    for gateway in gateways:
        gateway.close()


atexit.register(close_shared)
