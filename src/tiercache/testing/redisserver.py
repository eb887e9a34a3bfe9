"""Moved to :mod:`tiercache.testing.servers.redis` (and, for clusters,
:mod:`tiercache.testing.servers.redis_cluster`); this path is kept for one release."""

from tiercache._moved import gather

gather(__name__, ["tiercache.testing.servers.redis", "tiercache.testing.servers.redis_cluster"])
