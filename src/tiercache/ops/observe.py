"""Starting what ``TIERCACHE_METRICS_PORT`` and ``TIERCACHE_STATS_FILE`` ask for.

Building a :class:`~tiercache.TieredFileSystem` starts no server and no thread of its own (as an
httpx ``Client`` opens no connection until used): the application calls :func:`start`, exported
as ``tiercache.observe()``, once at startup. The integrations' entry points that build a
filesystem from the environment (``delta_dataset``, ``register_delta``, ``warm`` without a
``filesystem=``) and the CLI commands that read (``tiercache read``, ``warm``, ``demo``) call it
themselves. See docs/operations.md, "Starting metrics and the stats file".
"""

from __future__ import annotations

import logging
import threading

from tiercache.build import mark_observed
from tiercache.config import Settings
from tiercache.errors import ConfigError
from tiercache.ops import metrics, statsfile

__all__ = ["start", "stop"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
# What start() was asked for, each time once: (metrics port, stats file, interval). A call
# asking again (an integration's entry point called per query) costs a set lookup, and a port
# that was taken is not retried (and logged) on every call.
_asked: set[tuple[int | None, str | None, float]] = set()


def start(settings: Settings | None = None) -> None:
    """Serve the metrics endpoint and write the stats file the settings ask for.

    Once per process: the first port and the first stats file win, and a later call asking for
    another one logs a WARNING (as :func:`tiercache.ops.metrics.serve` and
    :func:`tiercache.ops.statsfile.start` do). A call with settings that ask for neither starts
    nothing. Observability never stops reads: a port already taken is logged at ERROR and the
    filesystems work on without their endpoint.

    Args:
        settings: Where ``TIERCACHE_METRICS_PORT``, ``TIERCACHE_STATS_FILE`` and
            ``TIERCACHE_STATS_INTERVAL`` come from; default: :meth:`Settings.from_env`.

    Raises:
        ConfigError: ``TIERCACHE_METRICS_PORT`` is set and prometheus-client is not installed
            (``pip install 'tiercache[metrics]'``).
    """
    settings = Settings.from_env() if settings is None else settings
    asked = (settings.metrics_port, settings.stats_file, settings.stats_interval_s)
    with _lock:
        if asked in _asked:
            return
        if settings.metrics_port is not None:
            try:
                metrics.serve(settings.metrics_port)
            except ImportError as exc:
                raise ConfigError(
                    f"TIERCACHE_METRICS_PORT={settings.metrics_port} needs prometheus-client: "
                    "pip install 'tiercache[metrics]'"
                ) from exc
            except OSError as exc:
                logger.error("cannot serve metrics on port %d: %s", settings.metrics_port, exc)
        if settings.stats_file is not None:
            statsfile.start(settings.stats_file, settings.stats_interval_s)
        _asked.add(asked)
        mark_observed()


def stop() -> None:
    """Stop the metrics endpoint and write the last stats file (tests, orderly shutdown).

    A later :func:`start` starts them again; until then nothing serves what the settings ask
    for (a chain built meanwhile logs so, if the process has not logged it yet).
    """
    with _lock:
        _asked.clear()
        mark_observed(False)
    metrics.stop_serving()
    statsfile.stop()
