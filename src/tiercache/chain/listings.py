"""Directory listings kept for reuse (Delta logs), in process and through the sharing tiers.

Only a caller that accepts a listing of a given age asks (``TIERCACHE_DELTA_LOG_TTL``: the
Delta integration); a listing is never reused otherwise. Ages come from wall clocks: a writer
whose clock runs ahead of ours makes its listing look younger by the skew (as with shared object
info).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tiercache.context import ReadContext
from tiercache.documents import listing_document, listing_key, parse_listing_document

from .info import InfoStore
from .slots import ReadScope

#: Directory listings kept (Delta logs: one per table read).
MAX_LISTINGS = 256


class Listings:
    """Listings by directory path, each with the wall-clock time it was made."""

    def __init__(self, store: InfoStore) -> None:
        self._store = store
        self._held: dict[str, tuple[list[dict[str, Any]], float]] = {}
        self._lock = threading.Lock()

    def cached(self, path: str, max_age_s: float, scope: ReadScope) -> list[dict[str, Any]] | None:
        """Return a listing of ``path`` made at most ``max_age_s`` ago, or ``None``.

        From this process first, else from the tiers that share documents (Redis), where
        another process put it with :meth:`share`.
        """
        if max_age_s <= 0:
            return None
        ctx = scope.ctx("metadata")
        counters = self._store.table.counters
        with self._lock:
            held = self._held.get(path)
        if held is not None and time.time() - held[1] <= max_age_s:
            counters.add("listings_reused", ctx=ctx)
            return held[0]
        for slot, document in self._store.documents(listing_key(path), scope):
            try:
                listed, entries, fetched_at = parse_listing_document(document)
            except ValueError as exc:
                slot.corrupt(exc, ctx)
                continue
            if listed != path or time.time() - fetched_at > max_age_s:
                continue
            self._keep(path, entries, fetched_at)
            counters.add("listings_reused", ctx=ctx)
            return entries
        return None

    def share(self, path: str, entries: Sequence[Mapping[str, Any]], ctx: ReadContext) -> None:
        """Keep a fresh listing of ``path``, in this process and, behind the read, in the tiers
        that share documents."""
        fetched_at = time.time()
        self._keep(path, [dict(entry) for entry in entries], fetched_at)
        document = listing_document(path, entries, fetched_at)
        self._store.share_document(listing_key(path), document, ctx)

    def drop(self, path: str) -> None:
        """Forget the listing of ``path`` (a write into it went through this process)."""
        with self._lock:
            self._held.pop(path, None)

    def _keep(self, path: str, entries: list[dict[str, Any]], fetched_at: float) -> None:
        with self._lock:
            if len(self._held) >= MAX_LISTINGS and path not in self._held:
                self._held.clear()  # a handful of Delta tables is the use: no LRU needed
            self._held[path] = (entries, fetched_at)
