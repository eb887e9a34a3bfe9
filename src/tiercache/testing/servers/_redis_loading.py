"""Keeping a ``redis-server`` loading its dataset for a while, and undoing that afterwards.

While a Redis loads its dataset it answers every data command with ``-LOADING``. To make that
last, :meth:`SlowLoad.begin` pads the dataset with small keys, saves it, and restarts the
server in the same directory with two hidden settings: ``key-load-delay`` (sleep per key
loaded) and ``loading-process-events-interval-bytes`` (serve clients after every KiB loaded, so
that they get ``-LOADING`` instead of silence). :meth:`SlowLoad.undo` removes the padding keys
and puts both settings back. See :meth:`tiercache.testing.RedisServer.load_slowly`.
"""

from __future__ import annotations

import time

from tiercache.testing.servers._redis_process import POLL_INTERVAL_S, RedisProcess
from tiercache.testing.servers._service import log_tail

# Each padding key sleeps this long while the dump loads (key-load-delay), and the server serves
# its clients after every KiB it loads (the smallest interval Redis accepts).
_LOAD_DELAY_US = 100
_LOAD_EVENTS_INTERVAL_BYTES = 1024
_LOAD_SETTINGS = ("key-load-delay", "loading-process-events-interval-bytes")
_LOADING_ARGS = (
    "--key-load-delay", str(_LOAD_DELAY_US),
    "--loading-process-events-interval-bytes", str(_LOAD_EVENTS_INTERVAL_BYTES),
)  # fmt: skip
_PADDING_PREFIX = "tiercache-testing:loading:"
_PADDING_BATCH = 1000


class SlowLoad:
    """What a slow load added to one server's dataset and settings, so that it can be undone.

    Not thread-safe: the server calls it with its lock held (except :meth:`wait_answering`).
    """

    def __init__(self) -> None:
        self._padding_keys = 0
        self._settings: dict[str, str] = {}

    def forget(self) -> None:
        """The server's data is gone, and with it what a slow load added."""
        self._padding_keys = 0
        self._settings = {}

    def begin(self, process: RedisProcess, seconds: float) -> None:
        """Pad and save the dataset; restart the server so that it loads for ``seconds`` or more.

        Returns once the restarted server answers ``-LOADING``.

        Raises:
            RuntimeError: The server is not running or does not answer, it has no
                ``loading-process-events-interval-bytes`` (Redis before 7.0), saving failed, or
                the restarted server did not answer ``-LOADING`` in time.
        """
        process.require_answering()
        settings = {name: process.config_get(name) for name in _LOAD_SETTINGS}
        if None in settings.values():
            raise RuntimeError(
                f"{process.server_path} has no loading-process-events-interval-bytes (Redis "
                "before 7.0): while loading it would serve its clients only every 2 MiB of "
                "dump, so a slow load would look hung, not LOADING; put Redis 7.0 or later "
                "on PATH"
            )
        keys = max(1, round(seconds * 1_000_000 / _LOAD_DELAY_US))
        for low in range(self._padding_keys, keys, _PADDING_BATCH):
            pairs = [
                part
                for i in range(low, min(keys, low + _PADDING_BATCH))
                for part in (_padding_key(i), "x")
            ]
            process.command([("MSET", *pairs)], "adding padding keys")
        self._padding_keys = max(self._padding_keys, keys)
        self._settings = {k: v for k, v in settings.items() if v is not None}
        process.save()
        process.restart_in_place(extra_args=_LOADING_ARGS, until_loading=True)

    @staticmethod
    def wait_answering(process: RedisProcess, timeout_s: float) -> None:
        """Wait until the server answers PING, its load over.

        Raises:
            RuntimeError: It did not within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while not process.answers():
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"redis-server on port {process.port} did not answer PING within "
                    f"{timeout_s:g} s; log tail:\n{log_tail(process.log_path)}"
                )
            time.sleep(POLL_INTERVAL_S)

    def undo(self, process: RedisProcess) -> None:
        """Remove the padding keys and put the two loading settings back (nothing if none).

        Raises:
            RuntimeError: A command failed.
        """
        if self._padding_keys:
            names = [_padding_key(i) for i in range(self._padding_keys)]
            batches = [names[i : i + _PADDING_BATCH] for i in range(0, len(names), _PADDING_BATCH)]
            process.command([("UNLINK", *batch) for batch in batches], "removing padding keys")
            self._padding_keys = 0
        if self._settings:
            pairs = [part for item in self._settings.items() for part in item]
            process.command([("CONFIG", "SET", *pairs)], "restoring the loading settings")
            self._settings = {}


def _padding_key(index: int) -> str:
    return f"{_PADDING_PREFIX}{index:07d}"
