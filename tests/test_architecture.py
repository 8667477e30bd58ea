"""The shape of `app/`: feature packages import one another one way only (no package cycles).

Every `import app.X…` / `from app.X… import …` counts, at module level or inside a function:
a deferred import is still a dependency. A cycle means two features cannot be understood, tested
or changed apart; this test names the files that close it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"


def package_edges() -> dict[str, dict[str, set[str]]]:
    """{package: {imported package: {files that import it}}} among app's sub-packages."""
    packages = {p.name for p in APP.iterdir() if (p / "__init__.py").is_file()}
    edges: dict[str, dict[str, set[str]]] = {}
    for path in APP.rglob("*.py"):
        parts = path.relative_to(APP).parts
        if len(parts) < 2:
            continue  # main.py, cli.py, models.py: the composition root, above every feature
        owner = parts[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                bits = name.split(".")
                if bits[0] == "app" and len(bits) > 1 and bits[1] in packages and bits[1] != owner:
                    edges.setdefault(owner, {}).setdefault(bits[1], set()).add(
                        str(path.relative_to(APP.parent))
                    )
    return edges


def cycles(edges: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    counter = iter(range(10**6))

    def visit(v: str) -> Iterator[None]:
        index[v] = low[v] = next(counter)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                yield from visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))
        yield None

    for node in sorted(set(edges) | {w for targets in edges.values() for w in targets}):
        if node not in index:
            list(visit(node))
    return found


def test_no_package_import_cycles() -> None:
    edges = package_edges()
    assert edges, "no imports found: the walk is broken"
    found = cycles(edges)
    detail = [
        f"{a} -> {b}: {sorted(edges[a][b])}"
        for comp in found
        for a in comp
        for b in comp
        if b in edges.get(a, {})
    ]
    assert not found, "package import cycles:\n" + "\n".join(detail)


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The checker itself: a two-package loop and a three-package loop are found, a chain is not."""
    loop = {"a": {"b": {"x"}}, "b": {"a": {"y"}}, "c": {"d": {"z"}}}
    assert cycles(loop) == [["a", "b"]]
    ring = {"a": {"b": set()}, "b": {"c": set()}, "c": {"a": set()}}
    assert cycles(ring) == [["a", "b", "c"]]
    assert cycles({"a": {"b": set()}, "b": {"c": set()}}) == []


def test_core_imports_no_feature() -> None:
    edges = package_edges()
    assert not edges.get("core"), f"core imports features: {edges.get('core')}"
