"""The package's shape: no import circle between tiercache's modules (issue 13).

Lazy imports inside functions count too: they hide a circle from the interpreter, not from a
reader.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tiercache"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                for alias in node.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    if target in modules and target != "tiercache":
                        graph[name].add(target)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in modules)
    return graph


def _find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        for target in sorted(graph[name]):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in done:
                found = visit(target, [*path, target])
                if found:
                    return found
        done.add(name)
        return None

    for start in sorted(graph):
        found = visit(start, [start])
        if found:
            return found
    return None


def test_no_import_circle_between_modules() -> None:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = _imports(modules)
    assert graph["tiercache.chain"], "the import graph was not read"  # the test can see edges
    assert _find_circle(graph) is None, " -> ".join(_find_circle(graph) or [])


def test_the_circle_finder_finds_a_circle() -> None:
    assert _find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_circle({"a": {"b"}, "b": set()}) is None


#: The packages built on the core; the core imports nothing from them.
OUTER = ("integrations", "ops", "cli", "testing")
#: Modules allowed to: the package's facade re-exports public names (``tiercache.warm``), and
#: the old import paths of moved modules (:mod:`tiercache._moved`) hand out the new ones.
FACADES = {"tiercache"}
#: Core modules that still reach outward, each with the reason (none should remain).
REACHING_OUT: dict[str, str] = {}
#: Modules over the size limit, each with the reason (see docs/architecture.md).
LARGE: dict[str, str] = {}
MAX_LINES = 450


def _is_outer(name: str) -> bool:
    return any(name.startswith(f"tiercache.{outer}") for outer in OUTER)


def _shims() -> set[str]:
    return {
        _module_name(path)
        for path in PACKAGE.rglob("*.py")
        if "from tiercache._moved import" in path.read_text()
    }


def test_the_core_imports_nothing_from_the_packages_built_on_it() -> None:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = _imports(modules)
    exempt = FACADES | _shims() | set(REACHING_OUT)
    reaching = {
        name: sorted(t for t in targets if _is_outer(t))
        for name, targets in graph.items()
        if not _is_outer(name) and name not in exempt
    }
    assert {name: targets for name, targets in reaching.items() if targets} == {}
    for name in REACHING_OUT:  # the allowance is still needed: it goes when it is not
        assert any(_is_outer(t) for t in graph[name]), f"{name} no longer reaches out"


def test_modules_stay_small() -> None:
    sizes = {
        _module_name(path): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")
    }
    over = {name: n for name, n in sizes.items() if n > MAX_LINES and name not in LARGE}
    assert over == {}
    fine = sorted(name for name in LARGE if sizes.get(name, 0) <= MAX_LINES)
    assert fine == [], "no longer large: take them off LARGE"


def test_old_import_paths_still_work_for_one_release() -> None:
    shims = _shims()
    assert "tiercache.delta" in shims
    assert "tiercache.testing.s3server" in shims
    for old in sorted(shims):
        path = PACKAGE.parent / Path(*old.split(".")).with_suffix(".py")
        text = path.read_text()
        sys.modules.pop(old, None)
        if 'alias(__name__, "' in text:  # the module moved whole: the same module object
            new = text.split('alias(__name__, "')[1].split('"')[0]
            with pytest.deprecated_call(match=f"{old} moved to {new}"):
                module = importlib.import_module(old)
            assert module is importlib.import_module(new)
            continue
        # The module was split: every public name of the new modules, the same objects.
        news = ast.literal_eval(text.split("gather(__name__, ")[1].rsplit(")", 1)[0])
        with pytest.deprecated_call(match=f"{old} moved to"):
            module = importlib.import_module(old)
        for new in news:
            for name, value in vars(importlib.import_module(new)).items():
                if not name.startswith("_"):
                    assert getattr(module, name) is value, (old, name)


def test_the_old_redis_harness_path_still_has_its_cluster() -> None:
    sys.modules.pop("tiercache.testing.redisserver", None)
    with pytest.deprecated_call():
        old = importlib.import_module("tiercache.testing.redisserver")
    from tiercache.testing import RedisCluster, RedisServer

    assert old.RedisCluster is RedisCluster
    assert old.RedisServer is RedisServer
