"""Moved to :mod:`tiercache.testing.faults.disk`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.testing.faults.disk")
