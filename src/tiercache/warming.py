"""Moved to :mod:`tiercache.integrations.warming`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.integrations.warming")
