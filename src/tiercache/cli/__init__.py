"""The ``tiercache`` command: one module per command (``demo`` is a package of its own)."""

from tiercache.cli.main import main

__all__ = ["main"]
