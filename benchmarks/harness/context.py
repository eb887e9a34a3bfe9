"""What every scenario runs against: one S3 server behind a proxy per profile, one Redis.

:func:`running` starts them (the S3 server, moto, in a subprocess; each proxy in a process of its
own, see :mod:`harness.proxy`; a ``redis-server`` of its own, never the machine's) and yields the
:class:`Context` the scenarios get.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import s3fs

from harness.proxy import CountingProxy, ProxyProcess
from tiercache import MemoryTier, Settings, TieredFileSystem
from tiercache.testing import RedisServer, S3Server

#: The bucket every scenario writes its objects into (created by :func:`running`).
BUCKET = "bench"
#: The profiles' names.
STORE = "store"
LOOPBACK = "loopback"


@dataclass(frozen=True)
class Profile:
    """How the proxy in front of the S3 server behaves."""

    name: str
    label: str
    delay_s: float
    bandwidth_bytes_per_s: float | None

    def describe(self) -> str:
        if self.delay_s == 0 and self.bandwidth_bytes_per_s is None:
            return f"{self.label}: no added latency, no bandwidth limit"
        bandwidth = (
            "unlimited"
            if self.bandwidth_bytes_per_s is None
            else f"{self.bandwidth_bytes_per_s / 1e6:g} MB/s per stream"
        )
        return f"{self.label}: {self.delay_s * 1e3:g} ms to first byte, {bandwidth}"


PROFILES = {
    STORE: Profile(STORE, "emulated object store", 0.020, 100e6),
    LOOPBACK: Profile(LOOPBACK, "loopback", 0.0, None),
}


@dataclass
class Context:
    """What every scenario runs against: one S3 server, a proxy process per profile, one Redis
    (the scenarios that break Redis start their own), a work directory, the base settings."""

    server: S3Server
    proxies: dict[str, CountingProxy]
    redis: RedisServer
    workdir: Path
    settings: Settings
    log: Callable[[str], None] = print
    profiles: dict[str, Profile] = field(default_factory=lambda: dict(PROFILES))

    def options(self, profile: str) -> dict[str, Any]:
        """s3fs keyword arguments reaching the S3 server through the profile's proxy."""
        return self.server.storage_options(self.proxies[profile].url)

    def client(self, profile: str) -> s3fs.S3FileSystem:
        """A new s3fs client through the profile's proxy, its botocore client built."""
        return self.client_at(self.proxies[profile].url)

    def client_at(self, url: str) -> s3fs.S3FileSystem:
        """A new s3fs client for the S3 endpoint at ``url`` (the server's credentials), its
        botocore client built."""
        client = s3fs.S3FileSystem(**self.server.storage_options(url), skip_instance_cache=True)
        client.connect()
        return client

    def pyarrow_fs(self, profile: str) -> pafs.S3FileSystem:
        """pyarrow's own S3 filesystem (the AWS SDK) through the profile's proxy."""
        options = self.options(profile)
        return pafs.S3FileSystem(
            access_key=options["key"],
            secret_key=options["secret"],
            region=options["client_kwargs"]["region_name"],
            endpoint_override=self.proxies[profile].url,
            scheme="http",
        )

    def ram_pod(self, client: Any, **overrides: Any) -> TieredFileSystem:
        """A new pod with a RAM tier only (empty), over ``client``."""
        settings = dataclasses.replace(self.settings, **overrides)
        return TieredFileSystem(
            fs=client,
            settings=settings,
            tiers=[MemoryTier(settings.memory_bytes)],
            skip_instance_cache=True,
        )


@contextmanager
def running(settings: Settings, log: Callable[[str], None] = print) -> Iterator[Context]:
    """Start the S3 server (bucket :data:`BUCKET` created), a proxy process per profile and a
    Redis; yield the context; stop them all and remove the work directory."""
    workdir = Path(tempfile.mkdtemp(prefix="tiercache-run-"))
    try:
        with S3Server() as server, RedisServer() as redis_server:
            proxies = {
                name: ProxyProcess(
                    server.endpoint_url,
                    delay_s=p.delay_s,
                    bandwidth_bytes_per_s=p.bandwidth_bytes_per_s,
                )
                for name, p in PROFILES.items()
            }
            try:
                for proxy in proxies.values():
                    proxy.start()
                server.create_bucket(BUCKET)
                yield Context(
                    server=server,
                    proxies=dict(proxies),
                    redis=redis_server,
                    workdir=workdir,
                    settings=settings,
                    log=log,
                )
            finally:
                for proxy in proxies.values():
                    proxy.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
