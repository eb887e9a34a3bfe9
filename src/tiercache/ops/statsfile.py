"""The stats file: a JSON snapshot of every chain's stats, written periodically and at exit.

``TIERCACHE_STATS_FILE`` names the file, ``TIERCACHE_STATS_INTERVAL`` the period. Each write
replaces the file atomically (a temporary file in the same directory, then a rename), so a reader
(``tiercache stats``, ``tiercache advise``, a sidecar) never sees half a snapshot. The format::

    {"schema": 1, "written_at": <unix time>, "pid": ..., "host": ..., "tiercache": <version>,
     "chains": [{"chain": <serial>, "target": "<protocol>:<digest>",
                 "settings": {<TIERCACHE_* variable>: <value, secrets redacted>},
                 "stats": <TieredFileSystem.stats()>}]}
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tiercache.chain import LIVE_CHAINS
from tiercache.gateway.metrics import LIVE_GATEWAYS

logger = logging.getLogger(__name__)

SCHEMA = 1

_lock = threading.Lock()
_writers: list[_Writer] = []  # the one writer of this process, once started


def snapshot() -> dict[str, Any]:
    """Return the stats of every live chain in this process, in the stats-file format."""
    from tiercache import __version__

    chains = []
    for chain in sorted(LIVE_CHAINS, key=lambda c: c.serial):
        try:
            stats = chain.stats()
        except Exception:  # closing meanwhile
            continue
        settings = chain.settings.describe() if chain.settings is not None else {}
        chains.append(
            {
                "chain": chain.serial,
                "target": f"{chain.origin.protocol}:{chain.target}",
                "settings": settings,
                "stats": stats,
            }
        )
    return {
        "schema": SCHEMA,
        "written_at": time.time(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "tiercache": __version__,
        "chains": chains,
        "gateways": [gateway.snapshot() for gateway in list(LIVE_GATEWAYS)],
    }


def write(path: str | os.PathLike[str], document: dict[str, Any] | None = None) -> None:
    """Write ``document`` (default: :func:`snapshot`) to ``path`` atomically."""
    target = Path(path)
    document = snapshot() if document is None else document
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(document, f, indent=1, default=str)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a stats file.

    Raises:
        ValueError: Not a tiercache stats file (the message names the path and the problem).
        OSError: It cannot be read.
    """
    text = Path(path).read_text()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a tiercache stats file (schema {SCHEMA} expected)")
    if not isinstance(document.get("chains"), list):
        raise ValueError(f"{path}: no 'chains' list")
    return document


class _Writer:
    """A daemon thread writing the stats file every ``interval_s``, and once at exit."""

    def __init__(self, path: str, interval_s: float) -> None:
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tiercache-stats-file", daemon=True)
        self._thread.start()
        atexit.register(self.final)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._write()

    def _write(self) -> None:
        try:
            write(self.path)
        except OSError as exc:  # never fail the application for its stats
            logger.warning("could not write the stats file %s: %s", self.path, exc)

    def final(self) -> None:
        """Stop the thread and write the last snapshot."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._write()
        atexit.unregister(self.final)


def start(path: str, interval_s: float) -> None:
    """Start writing the stats file (once per process; a later, different path is ignored)."""
    with _lock:
        if _writers:
            if _writers[0].path != path:
                logger.warning(
                    "stats file already written to %s; %s ignored", _writers[0].path, path
                )
            return
        _writers.append(_Writer(path, interval_s))
        logger.info("writing tiercache stats to %s every %.0f s", path, interval_s)


def stop() -> None:
    """Write the last snapshot and stop the writer started by :func:`start`, if any."""
    with _lock:
        writer = _writers.pop() if _writers else None
    if writer is not None:
        writer.final()
