"""The viewer's shape (issue 17): no import cycle through a viewer module, no long functions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VIEWER_FILES = [
    *sorted((ROOT / "viewer").glob("*.py")),
    *(ROOT / "src" / "latent4d" / f for f in ("viewer_entry.py", "render.py", "raster.py")),
    *sorted((ROOT / "tests" / "viewer").glob("*.py")),
]


def _modules() -> dict[str, Path]:
    mods = {}
    for base, pkg in ((ROOT / "src" / "latent4d", "latent4d"), (ROOT / "viewer", "latent4d.viewer")):
        for p in base.rglob("*.py"):
            parts = [pkg, *p.relative_to(base).with_suffix("").parts]
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> modules it imports (every import: module level, in functions, under TYPE_CHECKING).
    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        here = m.split(".") if p.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level:
                    mod = ".".join(here[: len(here) - node.level + 1] + ([mod] if mod else []))
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m:
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycle_through_the_viewer():
    graph = import_graph()
    assert "latent4d.viewer.controller" in graph and graph["latent4d.viewer.controller"], "the graph is read"
    bad = [c for c in cycles(graph) if any(m.startswith("latent4d.viewer") for m in c)]
    assert bad == [], f"import cycles through viewer modules: {bad}"


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_function_longer_than_80_lines():
    long = []
    for p in VIEWER_FILES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert len(VIEWER_FILES) > 8 and long == [], long
