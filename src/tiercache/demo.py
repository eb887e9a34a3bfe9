"""Moved to :mod:`tiercache.cli.demo.run`; this path is kept for one release."""

from tiercache._moved import alias

alias(__name__, "tiercache.cli.demo.run")
