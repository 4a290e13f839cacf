"""The shape every family keeps (docs/CONTRIBUTING.md): checked on the source, so it stays that way.

* no import cycles among the modules of ``src/latent4d`` and ``viewer`` (imports inside functions count);
* training code (``<family>/module.py``, ``<family>/data.py``) never imports inference code
  (``pipeline.py``, ``commands.py``, ``reconstruct.py``, ``bench.py``);
* no function longer than 80 lines;
* every family package has the same core files.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"latent4d": ROOT / "src" / "latent4d", "latent4d.viewer": ROOT / "viewer"}
FAMILIES = ("hair", "objects", "motion", "binary", "smoke")
INFERENCE = ("pipeline", "commands", "reconstruct", "bench")
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, base in PACKAGES.items():
        for p in sorted(base.rglob("*.py")):
            rel = p.relative_to(base).with_suffix("")
            parts = [x for x in rel.parts if x != "__init__"]
            out[".".join([pkg, *parts])] = p
    return out


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        pkg_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg_parts[: len(pkg_parts) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + ".") and t not in PACKAGES:
                    g[name].add(t)
    return g


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(_graph(_modules())) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_training_code_never_imports_inference_code(family):
    mods = _modules()
    g = _graph(mods)
    bad = []
    for part in ("module", "data"):
        name = f"latent4d.{family}.{part}"
        if name not in mods:
            continue
        seen, todo = set(), [name]
        while todo:  # transitively: training code must not reach inference code through a helper
            m = todo.pop()
            for t in g.get(m, ()):
                if t in seen or not t.startswith("latent4d."):
                    continue
                seen.add(t)
                todo.append(t)
        bad += [f"{name} -> {t}" for t in sorted(seen) if t.rsplit(".", 1)[-1] in INFERENCE]
    assert bad == []


def test_no_function_longer_than_80_lines():
    long = []
    for base in (*PACKAGES.values(), ROOT / "scripts"):
        for p in sorted(base.rglob("*.py")):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


@pytest.mark.parametrize("family", ["hair", "objects", "motion", "binary"])
def test_families_share_the_core_file_names(family):
    have = {p.stem for p in (PACKAGES["latent4d"] / family).glob("*.py")}
    assert {"data", "module", "pipeline", "commands", "bench", "metrics", "types"} <= have
