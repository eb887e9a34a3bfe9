"""The lifecycle every test server and proxy shares: start, stop, and use as a context manager."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Service:
    """Something started with :meth:`start` and stopped with :meth:`stop` (both idempotent);
    ``with service:`` starts it and stops it on the way out, also when the block raises."""

    def start(self) -> None:
        """Start the service (idempotent)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the service and release everything it holds (idempotent)."""
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
        self.stop()
