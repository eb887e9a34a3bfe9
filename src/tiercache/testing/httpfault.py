"""Moved to :mod:`tiercache.testing.faults.http`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.testing.faults.http")
