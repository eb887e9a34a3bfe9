"""Moved to :mod:`tiercache.testing.servers.s3`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.testing.servers.s3")
