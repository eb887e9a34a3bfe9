"""The Redis tier: object info, Parquet footers and Delta log files shared across pods.

The only module that imports redis. It takes only ``metadata`` blocks (footer tails, Delta log
files, small objects) and object info, never ``_delta_log/_last_checkpoint``'s info, never a value
over ``TIERCACHE_REDIS_MAX_VALUE_BYTES``. Every value is framed (:mod:`tiercache.tiers.framing`):
header, checksum and, with ``TIERCACHE_REDIS_HMAC_KEY``, an HMAC tag, so that write access to
Redis is not enough to poison reads.

Layout, per object (the ``{…}`` hash tag keeps one object's keys in one Cluster slot)::

    <prefix>{<digest of target and path>}:b:<version digest>   HASH  "<block size>:<index>" -> block
    <prefix>{<digest of target and path>}:v                   SET   the block hashes above
    <prefix>{<digest of target and path>}:i                   STRING  object info (JSON)

Every key has the TTL ``TIERCACHE_REDIS_TTL`` ± 10% (jitter, so that entries written together do
not expire together). A fill is one pipelined round trip; an invalidation ``UNLINK``s the
object's keys.

Client discipline (redis-py retries 10 times with backoff by default, 4-5 s on a hung server):
no retries, socket and connect timeouts of ``TIERCACHE_REDIS_TIMEOUT``, a bounded blocking pool
that waits at most that long for a connection. Every ``redis.RedisError`` is translated at one
choke point (:func:`_translated`): a socket timeout to ``TierTimeoutError`` (counted as a
timeout), anything else to ``TierError`` (a miss, counted as an error), except that a write
refused for memory (OOM) or by a replica (READONLY) is skipped and counted, so that reads go on.
A server that is loading its dataset (``-LOADING``) refuses reads and writes alike, for as long
as the load takes: that stays an error, so the breaker opens and Redis is bypassed at no cost
until a probe finds it loaded; the replies are counted in ``loading``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from tiercache.config import UNAUTHENTICATED_REDIS, redact_url
from tiercache.errors import (
    ConfigError,
    IntegrityError,
    TierError,
    TierTimeoutError,
    TierUnavailableError,
)
from tiercache.protocol import BlockKey, BlockKind
from tiercache.tiers.framing import frame, unframe

logger = logging.getLogger(__name__)

_TTL_JITTER = 0.1
# Writes the server refuses while it still serves reads. redis-py raises these classes (also
# for a pipeline, whose message then starts "Command # 1 (...) of pipeline caused error").
_REFUSED_ERRORS = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)


def _refused(exc: redis.ResponseError) -> bool:
    return isinstance(exc, _REFUSED_ERRORS) or str(exc).startswith(("OOM", "READONLY"))


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _translated(
    method: Callable[Concatenate[RedisTier, _P], _R],
) -> Callable[Concatenate[RedisTier, _P], _R]:
    """Translate redis-py's errors at one choke point, so the guard counts them for what they are.

    A socket timeout becomes :class:`~tiercache.errors.TierTimeoutError` (counted in
    ``timeouts``), any other ``redis.RedisError`` :class:`~tiercache.errors.TierError` (counted
    in ``errors``), the original as the cause. A ``-LOADING`` reply is also counted in
    ``loading``.
    """

    def translated(self: RedisTier, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except redis.exceptions.TimeoutError as exc:
            raise TierTimeoutError(f"redis: {type(exc).__name__}: {exc}") from exc
        except redis.exceptions.BusyLoadingError as exc:
            self._note_loading(exc)
            raise TierError(f"redis: {type(exc).__name__}: {exc}") from exc
        except redis.RedisError as exc:
            raise TierError(f"redis: {type(exc).__name__}: {exc}") from exc

    translated.__doc__, translated.__name__ = method.__doc__, method.__name__
    return translated


def _digest(*parts: str) -> str:
    text = "\x00".join(parts)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def never_shared(path: str) -> bool:
    """``_delta_log/_last_checkpoint`` is rewritten in place: its *info* never goes to Redis (a
    pod must not learn from another which version is current). Its blocks do: a block is keyed
    by the version it holds, so it is right for whoever asks for that version (a pod that
    learnt the version from the store, or from a Delta log listing kept under
    ``TIERCACHE_DELTA_LOG_TTL``)."""
    return path.endswith("_delta_log/_last_checkpoint")


def info_key(target: str, path: str) -> BlockKey:
    """The identity object info is framed under (a key no block can have)."""
    return BlockKey(target, path, "\x00info", 0, -1)


def build_client(url: str, *, timeout_s: float, pool_size: int) -> Any:
    """Return a redis-py client for a ``redis://``, ``rediss://``, ``unix://`` or cluster URL.

    Query parameters of the URL reach the connection (``?ssl_ca_certs=/path/ca.pem`` for a
    private CA). Cluster URLs (``redis+cluster://``, ``rediss+cluster://``) name one seed node.

    Raises:
        redis.RedisError: A cluster could not be reached (a single server connects lazily).
    """
    scheme = urlsplit(url).scheme
    common: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    if scheme.endswith("+cluster"):
        parts = urlsplit(url)
        plain = urlunsplit((scheme.removesuffix("+cluster"), *parts[1:]))
        return RedisCluster.from_url(plain, max_connections=pool_size, **common)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=timeout_s, **common
    )
    return redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))


class RedisTier:
    """A dedicated Redis (or Valkey) as a shared metadata tier.

    Args:
        url: ``TIERCACHE_REDIS_URL``.
        timeout_s: Socket, connect and pool-wait timeout (``TIERCACHE_REDIS_TIMEOUT``).
        ttl_s: TTL of every key, jittered by ±10% (``TIERCACHE_REDIS_TTL``).
        max_value_bytes: Larger blocks are not sent (``TIERCACHE_REDIS_MAX_VALUE_BYTES``).
        prefix: Key namespace (``TIERCACHE_REDIS_PREFIX``).
        hmac_key: Authenticate values with this key (``TIERCACHE_REDIS_HMAC_KEY``); required
            unless ``allow_unauthenticated``.
        allow_unauthenticated: Without a key, share unauthenticated values: only for a Redis
            that no one else can write to (``TIERCACHE_REDIS_ALLOW_UNAUTHENTICATED``).
        pool_size: Connections at most.
        retry_after_s: Wait between attempts to reach an unreachable server at start.
        client_factory: Builds the client; injected by tests.

    Raises:
        ConfigError: Neither ``hmac_key`` nor ``allow_unauthenticated`` was given.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.05,
        ttl_s: float = 3600.0,
        max_value_bytes: int = 4 << 20,
        prefix: str = "tiercache:",
        hmac_key: str | bytes | None = None,
        allow_unauthenticated: bool = False,
        pool_size: int = 16,
        retry_after_s: float = 5.0,
        client_factory: Callable[..., Any] = build_client,
    ) -> None:
        if not hmac_key and not allow_unauthenticated:
            raise ConfigError(
                "RedisTier needs hmac_key (TIERCACHE_REDIS_HMAC_KEY): without it anyone who can "
                "write to the Redis can make every reader return wrong bytes; pass "
                "allow_unauthenticated=True only for a Redis no one else can write to"
            )
        if not hmac_key:
            logger.warning("redis tier %s: %s", redact_url(url), UNAUTHENTICATED_REDIS)
        self._url = url
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.max_value_bytes = max_value_bytes
        self.prefix = prefix
        self._hmac_key = hmac_key.encode() if isinstance(hmac_key, str) else hmac_key
        self._pool_size = pool_size
        self.retry_after_s = retry_after_s
        self._factory = client_factory
        self._lock = threading.Lock()
        self._closed = False
        self._refusing = False
        self._client: Any = None
        self._next_connect = 0.0
        self.last_error: str | None = None
        self.too_large = 0
        self.refused_writes = 0
        self.loading = 0
        self._connect(first=True)

    def __repr__(self) -> str:
        return f"RedisTier(url={redact_url(self._url)!r}, ready={self.ready})"

    @property
    def ready(self) -> bool:
        """Whether a client is connected."""
        return self._client is not None

    def stats(self) -> dict[str, object]:
        """Tier-specific figures, merged into ``stats()["tiers"]["redis"]``."""
        return {
            "url": redact_url(self._url),
            "too_large": self.too_large,
            "refused_writes": self.refused_writes,
            "loading": self.loading,
            "hmac": self._hmac_key is not None,  # False only with the explicit opt-out
            "last_error": self.last_error,
        }

    # -- the Tier protocol ---------------------------------------------------------------------

    def accepts(self, kind: BlockKind, /) -> bool:
        """Take ``metadata`` blocks only: data pages stay in the pod."""
        return kind == "metadata"

    @_translated
    def get(self, key: BlockKey, /) -> bytes | None:
        """Return the verified block, or ``None``.

        Raises:
            IntegrityError: The stored value failed its checks (it has been deleted).
            TierTimeoutError: The server did not answer within the socket timeout.
            TierError: The server failed otherwise (the guard makes either a miss).
        """
        client = self._usable()
        name, field = self._block_key(key)
        raw = self._done(client, client.hget(name, field))
        if raw is None:
            return None
        try:
            return unframe(key, raw, hmac_key=self._hmac_key)
        except IntegrityError:
            with contextlib.suppress(redis.RedisError):
                client.hdel(name, field)
            raise

    @_translated
    def put(self, key: BlockKey, data: bytes, /) -> None:
        """Store a framed block with the jittered TTL, in one pipelined round trip."""
        if len(data) > self.max_value_bytes:
            self.too_large += 1
            return
        client = self._usable()
        name, field = self._block_key(key)
        versions = self._object_key(key.target, key.path) + ":v"
        ttl = self._ttl()
        pipe = client.pipeline(transaction=False)
        pipe.hset(name, field, frame(key, data, hmac_key=self._hmac_key))
        pipe.expire(name, ttl)
        pipe.sadd(versions, name)
        pipe.expire(versions, ttl)
        self._write(pipe)

    @_translated
    def delete_object(self, target: str, path: str, /) -> None:
        """``UNLINK`` the object's info and every block hash of every version."""
        client = self._usable()
        base = self._object_key(target, path)
        names = [m.decode() if isinstance(m, bytes) else m for m in client.smembers(base + ":v")]
        self._done(client, client.unlink(*names, base + ":v", base + ":i"))

    @_translated
    def get_info(self, target: str, path: str, /) -> bytes | None:
        """Return the verified object-info document stored for ``path``, or ``None``."""
        if never_shared(path):
            return None
        client = self._usable()
        name = self._object_key(target, path) + ":i"
        raw = self._done(client, client.get(name))
        if raw is None:
            return None
        try:
            return unframe(info_key(target, path), raw, hmac_key=self._hmac_key)
        except IntegrityError:
            with contextlib.suppress(redis.RedisError):
                client.delete(name)
            raise

    @_translated
    def put_info(self, target: str, path: str, document: bytes, /) -> None:
        """Store an object-info document with the jittered TTL."""
        if never_shared(path):
            return
        client = self._usable()
        framed = frame(info_key(target, path), document, hmac_key=self._hmac_key)
        pipe = client.pipeline(transaction=False)
        pipe.set(self._object_key(target, path) + ":i", framed, ex=self._ttl())
        self._write(pipe)

    def close(self) -> None:
        """Close the client and its connections."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            _close_client(client)

    # -- internals -----------------------------------------------------------------------------

    def _object_key(self, target: str, path: str) -> str:
        return f"{self.prefix}{{{_digest(target, path)}}}"

    def _block_key(self, key: BlockKey) -> tuple[str, str]:
        name = f"{self._object_key(key.target, key.path)}:b:{_digest(key.version)}"
        return name, f"{key.block_size}:{key.block_index}"

    def _ttl(self) -> int:
        jitter = random.uniform(1 - _TTL_JITTER, 1 + _TTL_JITTER)
        return max(1, round(self.ttl_s * jitter))

    def _done(self, client: Any, result: Any) -> Any:
        """Pass ``result`` through; if the tier was closed during the call, close the client
        again: the call may have opened a connection after :meth:`close` disconnected the pool."""
        if self._closed:
            _close_client(client)
        return result

    def _write(self, pipe: Any) -> None:
        """Run a pipeline; a write refused for memory or by a replica is skipped, not an error."""
        try:
            self._done(pipe, pipe.execute())
        except redis.ResponseError as exc:
            if not _refused(exc):
                raise
            self.refused_writes += 1
            self.last_error = f"write refused: {exc}"
            if not self._refusing:  # one WARNING per episode
                self._refusing = True
                logger.warning("redis tier: writes refused (%s); reads go on", exc)
            return
        if self._refusing:
            self._refusing = False
            logger.info("redis tier: writes accepted again")

    def _note_loading(self, exc: Exception) -> None:
        self.loading += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _usable(self) -> Any:
        client = self._client
        if client is None:
            if self._closed:
                raise TierUnavailableError("redis tier is closed")
            if time.monotonic() < self._next_connect:
                raise TierUnavailableError(f"redis tier unavailable: {self.last_error}")
            client = self._connect(first=False)
            if client is None:
                raise TierUnavailableError(f"redis tier unavailable: {self.last_error}")
        return client

    def _connect(self, *, first: bool) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            client = None
            try:
                client = self._factory(
                    self._url, timeout_s=self.timeout_s, pool_size=self._pool_size
                )
                client.ping()
            except Exception as exc:
                # Settings checks the URL, but a tier built in code, or a client library that
                # rejects something new at construction, must leave the tier disabled with the
                # reason, never fail the filesystem's creation.
                if client is not None:
                    _close_client(client)
                if isinstance(exc, redis.exceptions.BusyLoadingError):
                    self.loading += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._next_connect = time.monotonic() + self.retry_after_s
                if first:  # the chain's guard logs the episode at WARNING
                    logger.info(
                        "redis tier: cannot reach %s (%s); retrying every %.0f s",
                        redact_url(self._url),
                        self.last_error,
                        self.retry_after_s,
                    )
                return None
            if not first:
                logger.info("redis tier: %s reachable again", redact_url(self._url))
            self._client = client
            self.last_error = None
            return cast(Any, client)


def _close_client(client: Any) -> None:
    """Close a client and every socket of its pool (a client built on an explicit pool leaves
    the pool's connections open on ``close()``)."""
    with contextlib.suppress(Exception):
        client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        with contextlib.suppress(Exception):
            pool.disconnect()
