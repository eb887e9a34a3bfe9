"""The report of ``run.py``: the machine, the targets table, and each scenario's sections.

Everything here works from ``results.json`` alone (``run.py --from results.json`` renders again
without measuring): the scenarios' ``report`` functions read their stored results. The sections
are the generated parts of ``docs/benchmarks.md``: each sits between ``<!-- generated: NAME -->``
and ``<!-- /generated: NAME -->`` there, and :func:`update_doc` replaces exactly those, leaving
the prose around them alone.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.fmt import fmt_ratio
from harness.scenario import Report, Scenario, Target
from tiercache.parsing import GIB, KIB, MIB

PACKAGES = (
    "tiercache",
    "fsspec",
    "s3fs",
    "pyarrow",
    "deltalake",
    "datafusion",
    "redis",
    "diskcache",
    "xxhash",
    "moto",
    "matplotlib",
)


# -- the machine -------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _run(*args: str, cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=10, check=False, cwd=cwd
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, RAM, system, versions, commit."""
    cpuinfo = _read("/proc/cpuinfo")
    meminfo = _read("/proc/meminfo")
    mem_kib = _first(r"^MemTotal:\s+(\d+)", meminfo)
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    redis_server = None
    try:
        from tiercache.testing import find_redis_binaries

        out = _run(find_redis_binaries()[0], "--version")
        redis_server = _first(r"v=(\S+)", out or "")
    except RuntimeError:
        pass
    root = Path(__file__).resolve().parents[2]
    commit = _run("git", "rev-parse", "--short", "HEAD", cwd=root)
    # What was measured is src/ (and benchmarks/): say whether they differ from the commit.
    dirty = {
        folder: bool(_run("git", "status", "--porcelain", "--", folder, cwd=root))
        for folder in ("src", "benchmarks")
    }
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _first(r"^model name\s*:\s*(.+)$", cpuinfo) or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "mhz": _first(r"^cpu MHz\s*:\s*(.+)$", cpuinfo),
        "ram_bytes": int(mem_kib) * KIB if mem_kib else None,
        "system": f"{platform.system()} {platform.release()}",
        "os": _first(r'^PRETTY_NAME="?([^"\n]+)"?', _read("/etc/os-release")),
        "python": sys.version.split()[0],
        "versions": versions,
        "redis_server": redis_server,
        "commit": commit,
        "local_changes": [folder for folder, changed in dirty.items() if changed],
    }


def machine_lines(meta: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    ram = f"{meta['ram_bytes'] / GIB:.1f} GiB RAM" if meta.get("ram_bytes") else "RAM unknown"
    cpus = f"{meta['cpus']} CPUs" + (
        f" ({meta['cpus_usable']} usable)" if meta["cpus_usable"] != meta["cpus"] else ""
    )
    mhz = f" at {float(meta['mhz']):,.0f} MHz" if meta.get("mhz") else ""
    return [
        f"- **Machine**: {meta['cpu']}{mhz}, {cpus}, {ram}; {meta['os'] or meta['system']} "
        f"({meta['system']}); a shared VM, so every figure is a ratio against a reference "
        "measured in the same run.",
        f"- **Software**: Python {meta['python']}, {versions}; redis-server "
        f"{meta['redis_server'] or 'unknown'}.",
        f"- **Run**: {meta['date']}, commit {meta['commit'] or 'unknown'}"
        + (
            f" with uncommitted changes in {' and '.join(f'`{f}/`' for f in changes)}."
            if (changes := meta.get("local_changes"))
            else " (`src/` and `benchmarks/` as committed)."
        ),
    ]


# -- sections ------------------------------------------------------------------------------------


def image(prefix: str, name: str, alt: str, plots: list[str]) -> list[str]:
    """A Markdown image line, if the plot was drawn."""
    if name not in plots:
        return []
    return [f"![{alt}]({prefix}{name})", ""]


def stored_ok(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A scenario's stored result, if it ran and did not fail."""
    stored: dict[str, Any] | None = results["scenarios"].get(name)
    if stored is None or "error" in stored:
        return None
    return stored


def reports(results: dict[str, Any], scenarios: dict[str, Scenario[Any, Any]]) -> dict[str, Report]:
    """Every scenario's report, in the order of ``results`` (the order they ran in); a scenario
    that failed has none. One that no module defines any more (an older ``results.json``) keeps
    the targets it stored, and no section."""
    out: dict[str, Report] = {}
    for name in results["scenarios"]:
        stored = stored_ok(results, name)
        if stored is None:
            continue
        scenario = scenarios.get(name)
        out[name] = (
            scenario.report(stored)
            if scenario is not None
            else Report({}, list(stored.get("targets", [])))
        )
    return out


def all_targets(results: dict[str, Any], scenarios: dict[str, Scenario[Any, Any]]) -> list[Target]:
    """The rows of the targets table, scenario by scenario in the order they ran."""
    return [t for report in reports(results, scenarios).values() for t in report.targets]


def targets_section(results: dict[str, Any], rows: list[Target]) -> list[str]:
    kept = [t for t in rows if not t["informative"]]
    met = sum(t["met"] for t in kept)
    lines = [
        "| target (issue) | measured | ratio | met |",
        "|---|---|---:|---|",
    ]
    for t in rows:
        verdict = ("yes" if t["met"] else "**no**") if not t["informative"] else "(not a target)"
        ratio = fmt_ratio(t["ratio"])
        text = t["target"] if not t["informative"] else f"· {t['target']}"
        lines.append(f"| {text} | {t['measured']} | {ratio} | {verdict} |")
    lines += ["", f"**{met} of {len(kept)} targets met.**"]
    missed = [t["target"] for t in kept if not t["met"]]
    if missed:
        lines.append("Missed: " + "; ".join(missed) + ".")
    failed = [name for name, s in results["scenarios"].items() if "error" in s]
    if failed:
        lines.append(
            "**Scenarios that failed (their targets are not in the table): "
            + ", ".join(failed)
            + ".**"
        )
    lines.append("")
    return lines


def run_lines(results: dict[str, Any]) -> list[str]:
    took = results.get("took_s", 0.0)
    settings = results["settings"]
    profiles = "; ".join(p["describe"] for p in results["profiles"].values())
    scenarios = ", ".join(
        f"{name} {results['timings'].get(name, 0):.0f} s" for name in results["scenarios"]
    )
    load = results.get("load", {})
    loads = ""
    if "start" in load and "end" in load:
        loads = (
            f" Load average (1 min) {load['start'][0]:.2f} at the start, {load['end'][0]:.2f} at "
            f"the end, on {results['meta']['cpus']} CPUs (the run itself accounts for about one)."
        )
    return [
        f"- **Mode**: `{results['mode']}` — took {took / 60:.1f} min ({scenarios}).{loads}",
        f"- **Settings**: block size {settings['block_size_bytes'] // KIB:,} KiB, RAM tier "
        f"{settings['memory_bytes'] // MIB:,} MiB, Redis and disk timeouts "
        f"{settings['redis_timeout_s'] * 1e3:g} / {settings['disk_timeout_s'] * 1e3:g} ms "
        "(defaults unless `TIERCACHE_*` said otherwise).",
        f"- **Origin**: moto's S3 server in a subprocess; readers reach it through "
        f"`tiercache.testing.HttpFaultProxy` running in a process of its own. Profiles: "
        f"{profiles}.",
    ]


def scenario_error(stored: dict[str, Any] | None) -> list[str] | None:
    """What a section shows for a scenario that did not run, or failed; None when it ran."""
    if stored is None:
        return ["*Not run.*", ""]
    if "error" in stored:
        return [f"**This scenario failed:** `{stored['error'].splitlines()[-1]}`", ""]
    return None


#: The report's own sections, before the scenarios'.
TITLES = {"machine": "Machine and run", "targets": "Targets"}


def titles(scenarios: dict[str, Scenario[Any, Any]]) -> dict[str, str]:
    """Every section's heading in ``report.md``, by name, in the report's order."""
    out = dict(TITLES)
    for scenario in scenarios.values():
        out.update((section.name, section.title) for section in scenario.sections)
    return out


def sections(
    results: dict[str, Any], prefix: str, plots: list[str], scenarios: dict[str, Scenario[Any, Any]]
) -> dict[str, str]:
    """Every generated section, by name, in the report's order (the machine, the targets, then
    each scenario's sections in the scenarios' order); images linked as ``prefix + file``."""
    by_name = reports(results, scenarios)
    out: dict[str, list[str]] = {
        "machine": machine_lines(results["meta"]) + run_lines(results) + [""],
        "targets": targets_section(results, all_targets(results, scenarios))
        + image(prefix, "targets.png", "targets", plots),
    }
    for scenario in scenarios.values():
        error = scenario_error(results["scenarios"].get(scenario.name))
        bodies = by_name[scenario.name].sections if error is None else {}
        for section in scenario.sections:
            if error is None and section.name not in bodies:
                raise ValueError(f"scenario {scenario.name!r}: report() has no {section.name!r}")
            lines = error if error is not None else [bodies[section.name]]
            if section.plot is not None:
                lines = lines + image(prefix, section.plot, section.alt, plots)
            out[section.name] = lines
    return {name: "\n".join(lines).rstrip() + "\n" for name, lines in out.items()}


def report(
    results: dict[str, Any], plots: list[str], scenarios: dict[str, Scenario[Any, Any]]
) -> str:
    """The stand-alone report of one run (``report.md`` next to ``results.json``)."""
    parts = sections(results, "", plots, scenarios)
    headings = titles(scenarios)
    lines = [
        f"# tiercache benchmarks: `{results['mode']}` run",
        "",
        "Generated by `python benchmarks/run.py`; every figure is measured in this run, against "
        "a reference measured alongside it. `docs/benchmarks.md` explains what each scenario "
        "does and how to read it.",
        "",
    ]
    for name, text in parts.items():
        lines += [f"## {headings[name]}", "", text]
    return "\n".join(lines)


MARKER = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated: (?P=name) -->)",
    re.DOTALL,
)


def update_doc(path: Path, parts: dict[str, str]) -> list[str]:
    """Replace every generated section of the document at ``path``; return the names replaced."""
    text = path.read_text()
    replaced: list[str] = []

    def swap(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in parts:
            return match.group(0)
        replaced.append(name)
        return f"{match.group(1)}{parts[name]}{match.group(4)}"

    path.write_text(MARKER.sub(swap, text))
    return replaced
