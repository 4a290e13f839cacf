"""The code's shape read from the source (AST only; nothing is imported or run): the import graph of
``src/latent4d`` and ``viewer``, its cycles, what a module reaches, and functions longer than the limit.

One checker for tests/trunk/test_code_shape.py, tests/hair/test_layout.py and
tests/viewer/test_structure.py (imported as ``codeshape``: tests/conftest.py puts this folder on
``sys.path``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: dotted package name -> its folder
PACKAGES = {"latent4d": ROOT / "src" / "latent4d", "latent4d.viewer": ROOT / "viewer"}
MAX_FUNCTION_LINES = 80


def modules(packages: dict[str, Path] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` below each package folder (an ``__init__.py``
    is its package's name)."""
    out = {}
    for pkg, base in packages.items():
        for p in sorted(base.rglob("*.py")):
            parts = [x for x in p.relative_to(base).with_suffix("").parts if x != "__init__"]
            out[".".join([pkg, *parts])] = p
    return out


def _targets(node: ast.AST, package: list[str]) -> list[str]:
    """The dotted names one import statement names; ``from pkg import x`` names ``pkg`` and ``pkg.x``
    (relative imports resolved against ``package``, the importing module's package)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        up = package[: len(package) - node.level + 1]
        base = ".".join([*up, base] if base else up)
    return [f"{base}.{a.name}" for a in node.names] + [base]


def imported(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The modules of ``mods`` that module ``name`` (file ``path``) imports: every import statement
    (module level, inside functions, under ``TYPE_CHECKING`` alike); a name that is not a module counts
    as the nearest enclosing module. The module's own packages (Python initialises them first) and the
    top-level packages of :data:`PACKAGES` are left out."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        for t in _targets(node, package):
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + ".") and t not in PACKAGES:
                out.add(t)
    return out


def import_graph(mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Module -> the modules it imports (:func:`imported`), over ``mods`` (default: :func:`modules`)."""
    mods = modules() if mods is None else mods
    return {m: imported(m, p, mods) for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, each sorted (Tarjan, iterative)."""
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
                    work.append((w, iter(sorted(graph.get(w, ())))))
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


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def long_functions(paths: Iterable[Path], max_lines: int = MAX_FUNCTION_LINES) -> list[str]:
    """``file:line name (n lines)`` for every function (methods and nested ones too) whose def line to
    last line spans more than ``max_lines`` lines."""
    long = []
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > max_lines:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    return long
