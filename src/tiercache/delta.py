"""Moved to :mod:`tiercache.integrations.delta`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.integrations.delta")
