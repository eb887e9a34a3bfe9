"""Old import paths of modules that moved (kept for one release; see CHANGELOG, "Deprecated").

A module left at its old path is one call: :func:`alias` for a module that moved whole (importing
the old path warns and hands out the module at its new path, so every name and every later import
is the same object), :func:`gather` for one split in several (the old path holds the public
names of the new modules).
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


def gather(old: str, new: list[str]) -> None:
    """Make the module ``old`` (being imported) hold the public names of the modules ``new``,
    with a DeprecationWarning: for a module split in several."""
    warnings.warn(
        f"{old} moved to {', '.join(new)}; the old path goes away in the next release",
        DeprecationWarning,
        stacklevel=3,
    )
    namespace = vars(sys.modules[old])
    for name in new:
        module = importlib.import_module(name)
        namespace.update((k, v) for k, v in vars(module).items() if not k.startswith("_"))
