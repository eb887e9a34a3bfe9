"""The disk tier passes the tier contract."""

from __future__ import annotations

import shutil
import tempfile

from tiercache import DiskTier, Tier
from tiercache.testing import TierContract


class TestDiskTier(TierContract):
    directories: list[str]

    def setup_method(self) -> None:
        self.directories = []

    def teardown_method(self) -> None:
        for directory in self.directories:
            shutil.rmtree(directory, ignore_errors=True)

    def make_tier(self) -> Tier:
        directory = tempfile.mkdtemp(prefix="tiercache-contract-")
        self.directories.append(directory)
        return DiskTier(directory, capacity_bytes=64 << 20)
