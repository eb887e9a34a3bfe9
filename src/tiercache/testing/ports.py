"""Moved to :mod:`tiercache.testing.servers.ports`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.testing.servers.ports")
