"""The package's shape: no import circle between tiercache's modules (issue 13).

Lazy imports inside functions count too: they hide a circle from the interpreter, not from a
reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

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
