"""Moved to :mod:`tiercache.ops.metrics`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.ops.metrics")
