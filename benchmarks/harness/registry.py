"""Finds the scenarios: every module of the ``scenarios`` package (``benchmarks/scenarios/``)
whose name does not start with ``_`` exports one ``SCENARIO``. Adding a scenario is adding a
file there; nothing else is edited."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from harness.scenario import PRESETS, Scenario

#: The report's own sections (the machine and the targets table), which no scenario may name.
RESERVED = ("machine", "targets")


def discover(package: str = "scenarios") -> dict[str, Scenario[Any, Any]]:
    """Import every scenario module of ``package``; the scenarios by name, in their order.

    Raises:
        TypeError: A module exports no ``SCENARIO``, or not a :class:`Scenario`.
        ValueError: A scenario is malformed: its name is not its module's, a preset is
            missing, a section name is taken.
    """
    root = importlib.import_module(package)
    found: list[Scenario[Any, Any]] = []
    for info in pkgutil.iter_modules(root.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        scenario = getattr(module, "SCENARIO", None)
        if not isinstance(scenario, Scenario):
            raise TypeError(f"{module.__file__}: no SCENARIO = Scenario(...) in this module")
        check(scenario, info.name)
        found.append(scenario)
    found.sort(key=lambda s: (s.order, s.name))
    taken: dict[str, str] = dict.fromkeys(RESERVED, "the report")
    for scenario in found:
        for section in scenario.sections:
            if section.name in taken:
                raise ValueError(
                    f"scenario {scenario.name!r}: section {section.name!r} is taken by "
                    f"{taken[section.name]}"
                )
            taken[section.name] = f"scenario {scenario.name!r}"
    return {s.name: s for s in found}


def check(scenario: Scenario[Any, Any], module: str) -> None:
    """A scenario's own consistency: named after its module, sized for every preset, with
    sections of distinct names."""
    if scenario.name != module:
        raise ValueError(f"scenario {scenario.name!r} is in module {module!r}: name them alike")
    missing = [p for p in PRESETS if p not in scenario.sizes]
    extra = [p for p in scenario.sizes if p not in PRESETS]
    if missing or extra:
        raise ValueError(
            f"scenario {scenario.name!r}: sizes for {', '.join(PRESETS)} "
            f"(missing: {', '.join(missing) or 'none'}; unknown: {', '.join(extra) or 'none'})"
        )
    names = [section.name for section in scenario.sections]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"scenario {scenario.name!r}: sections {names} (one or more, distinct)")
