"""Test harness shipped with tiercache, so users can chaos-test their own deployments.

- :class:`S3Server`: a moto S3 server in a subprocess on a free loopback port.
- :class:`HttpFaultProxy`: an HTTP proxy in front of it that injects S3 errors, truncated bodies,
  first-byte delay and bandwidth limits, and counts requests.
- :func:`free_port`: a free TCP port on ``127.0.0.1``.
- :class:`TierContract`: the contract test suite every tier passes; subclass it for your own.

The servers need the ``test`` extra (``moto[s3]``, ``flask`` and ``flask-cors``); importing
this package does not.
"""

from tiercache.testing.contract import TierContract
from tiercache.testing.httpfault import HttpFaultProxy, s3_error_body
from tiercache.testing.ports import free_port
from tiercache.testing.s3server import S3Server

__all__ = ["HttpFaultProxy", "S3Server", "TierContract", "free_port", "s3_error_body"]
