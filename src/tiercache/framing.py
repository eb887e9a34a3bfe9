"""Moved to :mod:`tiercache.tiers.framing`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.tiers.framing")
