"""A user-written tier: any object with the ``tiercache.Tier`` methods plugs into the chain.

This one keeps *metadata* blocks (Parquet footers, Delta log files, small objects) in a
process-wide dict, standing in for a shared service such as memcached or an NVMe cache daemon.
It needs no change to tiercache: the chain wraps it in the same guard (time budget, circuit
breaker, bulkhead) as the built-in tiers, and ``tiercache.testing.contract.TierContract`` runs
the same contract tests against it that the built-in tiers pass.

Beyond the five ``Tier`` methods, a tier may offer optional capabilities, each a small protocol
in ``tiercache.protocol`` that the chain checks with ``isinstance`` (so mypy checks yours):
``BudgetedTier`` (``timeout_s``: its own time budget per call), ``StartableTier`` (``ready`` and
``last_error``: unusable at start, probed later), ``ReportingTier`` (``stats()``: figures merged
into ``fs.stats()``), ``SizedTier`` (``capacity_bytes``: for the shadow cache), ``ThreadBoundTier``
(``release_thread``), ``WarningTier`` (``warnings`` for ``tiercache doctor``) and
``InProcessTier`` (``in_process``: no guard; only for a tier that never blocks). This one declares
the first three.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading

import tiercache
from tiercache import BlockKey, BlockKind


class SharedMetadataTier:
    """A toy shared store for metadata blocks."""

    name = "shared-metadata"

    def __init__(self, timeout_s: float = 0.1) -> None:
        self._lock = threading.Lock()
        self._blocks: dict[BlockKey, bytes] = {}
        self._timeout_s = timeout_s

    # -- optional capabilities (tiercache.protocol) ---------------------------------------------

    @property
    def timeout_s(self) -> float:  # BudgetedTier: the guard gives up on a call after this
        return self._timeout_s

    @property
    def ready(self) -> bool:  # StartableTier: a real client would say whether it connected
        return True

    @property
    def last_error(self) -> str | None:
        return None

    def stats(self) -> dict[str, object]:  # ReportingTier: merged into fs.stats()["tiers"]
        with self._lock:
            return {"blocks": len(self._blocks)}

    # -- the Tier protocol -----------------------------------------------------------------------

    def accepts(self, kind: BlockKind, /) -> bool:
        return kind == "metadata"

    def get(self, key: BlockKey, /) -> bytes | None:
        with self._lock:
            return self._blocks.get(key)

    def put(self, key: BlockKey, data: bytes, /) -> None:
        with self._lock:
            self._blocks[key] = data

    def delete_object(self, target: str, path: str, /) -> None:
        with self._lock:
            for key in [k for k in self._blocks if (k.target, k.path) == (target, path)]:
                del self._blocks[key]

    def close(self) -> None:
        pass


def main() -> None:
    shared = SharedMetadataTier()
    with tempfile.TemporaryDirectory(prefix="tiercache-custom-") as root:
        path = os.path.join(root, "table.parquet")
        with open(path, "wb") as f:
            f.write(os.urandom(2_000_000))
        settings = tiercache.Settings(block_size_bytes=256 * 1024)

        # "Pod 1" reads the footer: the RAM tier and the shared tier are filled.
        pod1 = tiercache.TieredFileSystem(
            target_protocol="file",
            settings=settings,
            tiers=[tiercache.MemoryTier(64 << 20), shared],
            skip_instance_cache=True,
        )
        footer = pod1.read_range(path, -65_536, None)
        pod1.chain.fills.join()  # fills run behind the read; wait for them in this demo

        # "Pod 2" has an empty RAM tier: the footer comes from the shared tier, not the origin.
        pod2 = tiercache.TieredFileSystem(
            target_protocol="file",
            settings=settings,
            tiers=[tiercache.MemoryTier(64 << 20), shared],
            skip_instance_cache=True,
        )
        pod2.info(path)
        assert pod2.read_range(path, -65_536, None) == footer
        stats = pod2.stats()
        print("pod 2 tiers:", json.dumps(stats["tiers"], indent=2))
        print("pod 2 origin:", stats["origin"])
        assert stats["tiers"]["shared-metadata"]["hits"] == 1
        assert stats["tiers"]["shared-metadata"]["blocks"] >= 1  # its own figures
        assert isinstance(shared, tiercache.BudgetedTier)
        pod1.close()
        pod2.close()


if __name__ == "__main__":
    main()
