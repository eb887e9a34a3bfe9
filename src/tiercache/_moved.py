"""Old import paths of modules that moved (kept for one release; see CHANGELOG, "Deprecated").

A module left at its old path is one call, :func:`alias`: importing it warns once and hands out
the module at its new path, so every name (and every later import) is the same object.
"""

from __future__ import annotations

import importlib
import sys
import warnings


def alias(old: str, new: str) -> None:
    """Make the module ``old`` (being imported) the module ``new``, with a DeprecationWarning."""
    warnings.warn(
        f"{old} moved to {new}; the old path goes away in the next release",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = importlib.import_module(new)
