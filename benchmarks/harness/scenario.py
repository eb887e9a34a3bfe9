"""The contract of a benchmark scenario: one file in ``benchmarks/scenarios/`` exporting
``SCENARIO = Scenario(...)``.

A scenario declares its own sizes per preset (``smoke``, ``quick``, ``full``), measures
(``run(context, sizes)``: a JSON-ready :class:`Result`, stored under its name in
``results.json``), and renders from that stored result alone (``report(result)``: a Markdown
body per :class:`Section`, and the targets it checks; ``plot(result, out_dir)``: the PNG files it
drew), so that ``run.py --from results.json`` renders an earlier run again without measuring.

This module is imported by the processes the memory scenario spawns: it stays light (no
pyarrow, no matplotlib, no servers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypedDict, TypeVar

if TYPE_CHECKING:
    from harness.context import Context

Preset = Literal["smoke", "quick", "full"]
#: ``full`` for the committed report, ``quick`` for a run of a few minutes, ``smoke`` to
#: exercise every code path in seconds (figures meaningless).
PRESETS: tuple[Preset, ...] = ("smoke", "quick", "full")


class Target(TypedDict):
    """One row of the targets table (``informative``: reported next to a target, not one)."""

    key: str
    scenario: str
    target: str
    measured: str
    ratio: float | None
    met: bool
    reference: str
    informative: bool


def target(
    *,
    key: str,
    scenario: str,
    text: str,
    measured: str,
    ratio: float | None,
    met: bool,
    reference: str,
    informative: bool = False,
) -> Target:
    """One row of the targets table. ``informative``: reported next to a target, not one."""
    return {
        "key": key,
        "scenario": scenario,
        "target": text,
        "measured": measured,
        "ratio": ratio,
        "met": met,
        "reference": reference,
        "informative": informative,
    }


DataT = TypeVar("DataT")
TablesT = TypeVar("TablesT")


class Result(TypedDict, Generic[DataT, TablesT]):
    """What a scenario's ``run`` returns, as ``results.json`` keeps it.

    - ``data``: the figures (medians, spreads, raw rounds, request counts) the plots are drawn
      from;
    - ``tables``: Markdown, rendered when measured (the same tables the program prints);
    - ``targets``: :func:`target` records, one per target of the earlier issues it checks;
    - ``notes``: lines worth reading next to the tables (what could not be measured, and why).
    """

    data: DataT
    tables: TablesT
    targets: list[Target]
    notes: list[str]


@dataclass(frozen=True)
class Section:
    """A section of the report. ``name`` is also the marker of ``docs/benchmarks.md`` that
    ``--update-docs`` fills (``<!-- generated: NAME -->``); ``plot``, a file the scenario's
    ``plot`` draws, shown under the section (``alt`` its alternative text)."""

    name: str
    title: str
    plot: str | None = None
    alt: str = ""


@dataclass(frozen=True)
class Report:
    """A scenario's report: the Markdown body of each of its sections, by section name, and the
    targets it checks (rows of the targets table, in order)."""

    sections: dict[str, str]
    targets: list[Target] = field(default_factory=list)


def body(text: str, notes: list[str]) -> str:
    """A section's usual body: the tables, then the notes as a list."""
    lines = [f"- {n}" for n in notes]
    return "\n".join([text, "", *lines, *([""] if lines else [])])


SizesT = TypeVar("SizesT")
ResultT = TypeVar("ResultT", bound=Mapping[str, Any])


@dataclass(frozen=True)
class Scenario(Generic[SizesT, ResultT]):
    """One benchmark scenario.

    Args:
        name: What ``--only`` selects, the key in ``results.json``; the module's name.
        order: Where it runs, and where its sections and targets appear (ascending).
        sizes: How much work it does in each preset (``smoke``, ``quick``, ``full``): any
            object (a frozen dataclass of its own, usually), handed to ``run``.
        run: Measures, against the run's :class:`~harness.context.Context`; returns a
            JSON-ready result (a :class:`Result`, usually).
        sections: The report sections it fills, in order.
        report: From the stored result alone (as ``results.json`` has it): a Markdown body for
            each of ``sections``, and its targets.
        plot: From the stored result alone: draw PNG files into the directory; their names.
    """

    name: str
    order: int
    sizes: Mapping[Preset, SizesT]
    run: Callable[[Context, SizesT], ResultT]
    sections: tuple[Section, ...]
    report: Callable[[ResultT], Report]
    plot: Callable[[ResultT, Path], list[str]] | None = None
