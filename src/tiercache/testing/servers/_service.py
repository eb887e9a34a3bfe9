"""The lifecycle every test server and proxy shares (start, close, context manager), and the
log tail their error messages quote."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Self

#: How much of a server's log an error message quotes.
LOG_TAIL_BYTES = 4000


def log_tail(path: Path | None) -> str:
    """Return the last few KB of a server's log file, or a note that there is none."""
    if path is None:
        return "(no log)"
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            return log.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"


class Service:
    """Something started with :meth:`start` and shut down with :meth:`close` (both idempotent);
    ``with service:`` starts it and closes it on the way out, also when the block raises.

    ``close`` is the name files and sockets use for "release everything". ``stop`` is not a
    lifecycle name here: on :class:`~tiercache.testing.RedisServer` it means SIGSTOP, like
    ``kill`` means SIGKILL and ``cont`` SIGCONT.
    """

    def start(self) -> None:
        """Start the service (idempotent)."""
        raise NotImplementedError

    def close(self) -> None:
        """Shut the service down and release everything it holds (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
