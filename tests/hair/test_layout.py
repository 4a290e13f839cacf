"""The hair family's shape (issue 17): no import cycles among its modules, training code that never
imports inference code, and no function longer than 80 lines. Static (AST) checks, no imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HAIR = ROOT / "src" / "latent4d" / "hair"
#: the hair family's other files (issue 17 ownership): the viewer's hair editing and the script
EXTRA = [ROOT / "viewer" / "hair_edit.py", ROOT / "viewer" / "hair_model.py", ROOT / "scripts" / "reconstruct_hair.py"]
TRAINING = ("latent4d.hair.module", "latent4d.hair.data")
INFERENCE = ("latent4d.hair.pipeline", "latent4d.hair.commands", "latent4d.hair.reconstruct", "latent4d.hair.bench")
MAX_LINES = 80


def _imports(path: Path) -> set[str]:
    """Every module a file imports (top level, inside functions, under TYPE_CHECKING alike)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def import_graph() -> dict[str, set[str]]:
    """``latent4d.hair.<module>`` -> the hair modules it imports."""
    mods = {f"latent4d.hair.{p.stem}": p for p in HAIR.glob("*.py") if p.stem != "__init__"}
    return {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_no_import_cycles_among_hair_modules():
    graph = import_graph()
    assert "latent4d.hair.types" in graph and "latent4d.hair.reconstruct" in graph
    assert cycles(graph) == []


def test_training_code_never_reaches_inference_code():
    graph = import_graph()
    for mod in TRAINING:
        assert not reachable(graph, mod) & set(INFERENCE), (mod, sorted(reachable(graph, mod)))


def test_no_function_longer_than_80_lines():
    long = []
    for path in [*sorted(HAIR.glob("*.py")), *EXTRA]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []
