"""The Redis tier passes the tier contract, against a standalone server and a Cluster."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import HMAC_KEY
from tiercache import RedisTier, Tier
from tiercache.testing import TierContract
from tiercache.testing.servers.redis import RedisServer
from tiercache.testing.servers.redis_cluster import RedisCluster


class TestRedisTier(TierContract):
    url: str

    @pytest.fixture(autouse=True)
    def _server(self, redis_fresh: RedisServer) -> None:
        self.url = redis_fresh.url

    def make_tier(self) -> Tier:
        return RedisTier(
            self.url, prefix=f"c{uuid.uuid4().hex[:8]}:", timeout_s=1.0, hmac_key=HMAC_KEY
        )


class TestRedisClusterTier(TierContract):
    url: str

    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: RedisCluster) -> None:
        self.url = redis_cluster.url.replace("redis://", "redis+cluster://", 1)

    def make_tier(self) -> Tier:
        return RedisTier(
            self.url, prefix=f"c{uuid.uuid4().hex[:8]}:", timeout_s=1.0, hmac_key=HMAC_KEY
        )
