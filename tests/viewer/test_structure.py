"""The viewer's shape (issue 17): no import cycle through a viewer module, no long functions."""

from __future__ import annotations

from codeshape import ROOT, cycles, import_graph, long_functions

VIEWER_FILES = [
    *sorted((ROOT / "viewer").glob("*.py")),
    *(ROOT / "src" / "latent4d" / f for f in ("viewer_entry.py", "render.py", "raster.py")),
    *sorted((ROOT / "tests" / "viewer").glob("*.py")),
]


def test_no_import_cycle_through_the_viewer():
    graph = import_graph()
    assert "latent4d.viewer.controller" in graph and graph["latent4d.viewer.controller"], "the graph is read"
    bad = [c for c in cycles(graph) if any(m.startswith("latent4d.viewer") for m in c)]
    assert bad == [], f"import cycles through viewer modules: {bad}"


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_function_longer_than_80_lines():
    assert len(VIEWER_FILES) > 8
    assert long_functions(VIEWER_FILES) == []
