"""Moved to :mod:`tiercache.testing.servers.tmpfs`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.testing.servers.tmpfs")
