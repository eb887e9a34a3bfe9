"""The tier contract: one test suite every tier passes, built-in or third-party.

Subclass :class:`TierContract` in a pytest module and implement :meth:`~TierContract.make_tier`::

    from tiercache.testing.contract import TierContract

    class TestMyTier(TierContract):
        def make_tier(self) -> Tier:
            return MyTier(...)

pytest collects the inherited ``test_*`` methods, so a new tier proves itself against the same
tests the built-in tiers pass. The suite uses only plain ``assert`` and needs no fixtures.
"""

from __future__ import annotations

import os
import threading

from tiercache.errors import TierError
from tiercache.protocol import (
    BlockKey,
    BudgetedTier,
    InProcessTier,
    ReportingTier,
    SizedTier,
    StartableTier,
    ThreadBoundTier,
    Tier,
    WarningTier,
)

_TARGET = "contract-target"


def _key(index: int = 0, *, path: str = "bucket/object.bin", version: str = "v1") -> BlockKey:
    return BlockKey(_TARGET, path, version, 4096, index)


class TierContract:
    """The behaviour every :class:`~tiercache.protocol.Tier` must show."""

    def make_tier(self) -> Tier:
        """Return a fresh, empty tier with room for at least 1 MiB."""
        raise NotImplementedError

    def _tier(self) -> Tier:
        tier = self.make_tier()
        assert isinstance(tier, Tier), "the object does not satisfy tiercache.Tier"
        assert isinstance(tier.name, str)
        assert tier.name
        return tier

    def test_a_missing_key_is_a_miss(self) -> None:
        tier = self._tier()
        try:
            assert tier.get(_key()) is None
        finally:
            tier.close()

    def test_a_stored_block_reads_back_exactly(self) -> None:
        tier = self._tier()
        try:
            data = os.urandom(4096)
            tier.put(_key(), data)
            assert tier.get(_key()) == data
            tier.put(_key(1), b"")  # an empty block (an empty object) is a valid value
            assert tier.get(_key(1)) in (b"", None)
        finally:
            tier.close()

    def test_every_part_of_the_key_matters(self) -> None:
        tier = self._tier()
        try:
            tier.put(_key(), b"original")
            base = _key()
            for other in (
                base._replace(target="other-target"),
                base._replace(path="bucket/other.bin"),
                base._replace(version="v2"),
                base._replace(block_size=8192),
                base._replace(block_index=1),
            ):
                assert tier.get(other) is None, f"{other} must not read {base}'s block"
        finally:
            tier.close()

    def test_a_put_replaces_the_value(self) -> None:
        tier = self._tier()
        try:
            tier.put(_key(), b"first")
            tier.put(_key(), b"second")
            assert tier.get(_key()) in (b"second", None)
        finally:
            tier.close()

    def test_delete_object_forgets_every_version_and_block(self) -> None:
        tier = self._tier()
        try:
            tier.put(_key(0, version="v1"), b"a")
            tier.put(_key(1, version="v2"), b"b")
            tier.put(_key(0, path="bucket/keep.bin"), b"c")
            tier.delete_object(_TARGET, "bucket/object.bin")
            assert tier.get(_key(0, version="v1")) is None
            assert tier.get(_key(1, version="v2")) is None
            assert tier.get(_key(0, path="bucket/keep.bin")) == b"c"
        finally:
            tier.close()

    def test_accepts_answers_for_both_classes(self) -> None:
        tier = self._tier()
        try:
            assert isinstance(tier.accepts("data"), bool)
            assert isinstance(tier.accepts("metadata"), bool)
        finally:
            tier.close()

    def test_concurrent_use_never_returns_another_keys_bytes(self) -> None:
        tier = self._tier()
        errors: list[str] = []

        def work(n: int) -> None:
            for i in range(100):
                key = _key(i % 10, path=f"bucket/{n}.bin")
                value = f"{n}:{i % 10}".encode()
                try:
                    tier.put(key, value)
                    got = tier.get(key)
                except TierError:
                    # A tier may answer "not in time" (a disk tier's lock wait on a loaded
                    # machine): the chain takes that as a miss. What it must never do is below.
                    continue
                if got not in (None, value):
                    errors.append(f"{key}: {got!r}")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        tier.close()
        assert errors == []

    def test_optional_capabilities_are_well_formed(self) -> None:
        """What a tier declares beyond :class:`~tiercache.protocol.Tier` has the declared types.

        Each optional capability is a small protocol (:mod:`tiercache.protocol`); a tier offers
        the ones it has, and the chain checks for them with ``isinstance``.
        """
        tier = self._tier()
        try:
            if isinstance(tier, InProcessTier):
                assert isinstance(tier.in_process, bool)
            if isinstance(tier, BudgetedTier):
                assert isinstance(tier.timeout_s, int | float)
                assert tier.timeout_s > 0
            if isinstance(tier, StartableTier):
                assert isinstance(tier.ready, bool)
                assert tier.last_error is None or isinstance(tier.last_error, str)
            if isinstance(tier, SizedTier):
                assert isinstance(tier.capacity_bytes, int)
            if isinstance(tier, ReportingTier):
                figures = tier.stats()
                assert all(isinstance(name, str) for name in figures)
            if isinstance(tier, WarningTier):
                assert all(isinstance(text, str) for text in tier.warnings)
            if isinstance(tier, ThreadBoundTier):
                tier.release_thread()  # callable on any thread, even one that never used it
        finally:
            tier.close()
