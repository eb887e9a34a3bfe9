"""A benchmark scenario is one file (issue 13): ``benchmarks/scenarios/NAME.py`` exporting
``SCENARIO``, found by the registry, run and reported by ``run.py`` with nothing else edited.

In process and without servers: the registry over the real scenarios, and over a throwaway
package of scenarios written here, which ``run.py``'s own loop runs in the smoke preset and
renders. (``tests/integration/test_programs.py`` runs the documented example through
``run.py --smoke`` against the real servers.)
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
DOC = ROOT / "docs" / "benchmarks.md"

#: The scenarios that existed when the registry was introduced: none may go missing.
EARLIER = ("hot", "cold", "disk", "redis", "delta", "degraded", "concurrency", "scaling", "memory")


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """``benchmarks/`` importable as its programs see it (first on ``sys.path``): ``run.py``
    and the harness's modules. (Imported by name, not by import statements: the type checker
    checks this file without ``benchmarks/`` on its path.)"""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("benchmarks_run", BENCHMARKS / "run.py")
    assert spec is not None
    assert spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    return SimpleNamespace(
        run=run,
        registry=importlib.import_module("harness.registry"),
        report=importlib.import_module("harness.report"),
        scenario=importlib.import_module("harness.scenario"),
    )


def scenario_files() -> set[str]:
    return {p.stem for p in (BENCHMARKS / "scenarios").glob("*.py") if not p.stem.startswith("_")}


def test_the_registry_lists_exactly_the_scenario_files(bench: SimpleNamespace) -> None:
    scenarios = bench.run.discover()
    assert set(scenarios) == scenario_files()
    assert set(EARLIER) <= set(scenarios)
    orders = [s.order for s in scenarios.values()]
    assert orders == sorted(orders), "the registry hands them out in their order"
    for name, scenario in scenarios.items():
        assert isinstance(scenario, bench.scenario.Scenario), name
        assert scenario.name == name
        assert set(scenario.sizes) == set(bench.scenario.PRESETS), name
        assert scenario.sections, name
        assert callable(scenario.run), name
        assert callable(scenario.report), name


def test_the_earlier_scenarios_keep_their_order_and_sections(bench: SimpleNamespace) -> None:
    scenarios = bench.run.discover()
    assert [n for n in scenarios if n in EARLIER] == list(EARLIER)
    sections = [s.name for scenario in scenarios.values() for s in scenario.sections]
    for name in (
        "hot", "cold", "disk-read", "disk-eviction", "redis", "delta", "degraded", "concurrency",
        "scaling-count", "scaling-size", "scaling-block", "scaling-parquet", "memory",
    ):  # fmt: skip
        assert name in sections, name


def test_every_generated_section_of_the_doc_has_a_scenario(bench: SimpleNamespace) -> None:
    """``--update-docs`` fills each ``<!-- generated: NAME -->`` of docs/benchmarks.md from a
    section of that name: none may be left without one."""
    scenarios = bench.run.discover()
    markers = {m.group("name") for m in bench.report.MARKER.finditer(DOC.read_text())}
    names = set(bench.report.titles(scenarios))
    assert len(markers) == 20, markers  # the machine, the targets and 18 scenario sections
    assert markers <= names, markers - names


TINY = '''
"""A throwaway scenario: no server, one section, one target."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.context import Context
from harness.scenario import Report, Result, Scenario, Section, body, target

TinyResult = Result[dict[str, int], str]


@dataclass(frozen=True)
class Sizes:
    count: int


def run(ctx: Context, sz: Sizes) -> TinyResult:
    (ctx.workdir / "tiny.txt").write_text("x" * sz.count)
    return {
        "data": {"count": sz.count},
        "tables": f"| count |\\n|---:|\\n| {sz.count} |",
        "targets": [
            target(
                key="tiny-count",
                scenario="tiny",
                text="tiny: count ≤ 10x one",
                measured=f"{sz.count} vs 1",
                ratio=float(sz.count),
                met=sz.count <= 10,
                reference="one",
            )
        ],
        "notes": ["a note"],
    }


def report(result: TinyResult) -> Report:
    return Report({"tiny": body(result["tables"], result["notes"])}, result["targets"])


def plot(result: TinyResult, out: Path) -> list[str]:
    (out / "tiny.png").write_bytes(b"not really a PNG")
    return ["tiny.png"]


SCENARIO = Scenario(
    name="tiny",
    order=5,
    sizes={"smoke": Sizes(count=3), "quick": Sizes(count=30), "full": Sizes(count=300)},
    run=run,
    sections=(Section("tiny", "Tiny: a throwaway scenario", plot="tiny.png", alt="tiny"),),
    report=report,
    plot=plot,
)
'''

BROKEN = """
from harness.scenario import Scenario, Section, Report

def run(ctx, sz):
    raise RuntimeError("broke on purpose")

SCENARIO = Scenario(
    name="broken",
    order=6,
    sizes={"smoke": 1, "quick": 2, "full": 3},
    run=run,
    sections=(Section("broken", "Broken"),),
    report=lambda result: Report({"broken": ""}),
)
"""


def package(tmp_path: Path, files: dict[str, str]) -> str:
    """A package of scenario modules under ``tmp_path`` (importable); its name."""
    name = f"scenarios_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, text in files.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(text))
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    return name


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Packages to forget (from ``sys.modules``) and paths to drop (from ``sys.path``)."""
    names: list[str] = []
    before = list(sys.path)
    yield names
    sys.path[:] = before
    for module in list(sys.modules):
        if module.split(".")[0] in names:
            del sys.modules[module]


def test_a_new_file_is_a_scenario_that_runs_and_reports(
    bench: SimpleNamespace, tmp_path: Path, cleanup: list[str]
) -> None:
    name = package(tmp_path, {"tiny": TINY, "broken": BROKEN, "_helper": "X = 1\n"})
    cleanup.append(name)
    scenarios = bench.registry.discover(name)
    assert list(scenarios) == ["tiny", "broken"]  # by order; _helper is not a scenario

    results: dict[str, Any] = {"mode": "smoke", "scenarios": {}, "timings": {}}
    context = SimpleNamespace(workdir=tmp_path)
    bench.run.run_scenarios(scenarios, list(scenarios), "smoke", context, results)
    assert (tmp_path / "tiny.txt").read_text() == "xxx"  # the smoke preset's sizes
    assert results["scenarios"]["tiny"]["data"] == {"count": 3}
    assert "RuntimeError: broke on purpose" in results["scenarios"]["broken"]["error"]
    assert set(results["timings"]) == {"tiny", "broken"}

    # As results.json keeps it, then rendered as run.py --from does.
    stored = json.loads(json.dumps({**results, **run_header()}))
    out = tmp_path / "out"
    plots = bench.run.render(stored, out, scenarios)
    assert plots == ["targets.png", "tiny.png"]
    text = (out / "report.md").read_text()
    assert "## Tiny: a throwaway scenario\n\n| count |\n|---:|\n| 3 |\n\n- a note\n" in text
    assert "![tiny](tiny.png)" in text
    assert "| tiny: count ≤ 10x one | 3 vs 1 | 3.00x | yes |" in text
    assert "**1 of 1 targets met.**" in text
    assert "## Broken\n\n**This scenario failed:** `RuntimeError: broke on purpose`" in text
    assert "Scenarios that failed (their targets are not in the table): broken" in text
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == ["Machine and run", "Targets", "Tiny: a throwaway scenario", "Broken"]
    assert set(bench.report.sections(stored, "benchmarks/", plots, scenarios)) == {
        "machine", "targets", "tiny", "broken",
    }  # fmt: skip


def run_header() -> dict[str, Any]:
    """What run.py records besides the scenarios (for the machine section)."""
    return {
        "meta": {
            "cpu": "a CPU", "cpus": 2, "cpus_usable": 2, "mhz": None, "ram_bytes": None,
            "system": "Linux", "os": None, "python": "3", "versions": {}, "redis_server": None,
            "date": "today", "commit": None, "local_changes": [],
        },
        "settings": {
            "block_size_bytes": 1 << 20, "memory_bytes": 1 << 28, "redis_timeout_s": 0.05,
            "disk_timeout_s": 0.05, "breaker_failures": 5,
        },
        "profiles": {},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("X = 1\n", (TypeError, "no SCENARIO")),
        (TINY.replace('name="tiny"', 'name="other"'), (ValueError, "name them alike")),
        (TINY.replace(', "full": Sizes(count=300)', ""), (ValueError, "missing: full")),
        (TINY.replace('Section("tiny"', 'Section("targets"'), (ValueError, "is taken")),
    ],
)
def test_a_malformed_scenario_is_refused(
    bench: SimpleNamespace,
    tmp_path: Path,
    cleanup: list[str],
    text: str,
    refused: tuple[type[Exception], str],
) -> None:
    name = package(tmp_path, {"tiny": text})
    cleanup.append(name)
    error, message = refused
    with pytest.raises(error, match=message):
        bench.registry.discover(name)


def test_finding_the_scenarios_does_not_load_matplotlib() -> None:
    """A heavy heap before the measurements slows them (longer garbage collections): plots are
    drawn with matplotlib imported inside ``plot``."""
    import subprocess

    program = (
        "import sys\n"
        "from harness.registry import discover\n"
        "discover()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"
