"""Moved to :mod:`tiercache.cli.doctor`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.cli.doctor")
