"""The shape every family keeps (docs/CONTRIBUTING.md): checked on the source, so it stays that way.

* no import cycles among the modules of ``src/latent4d`` and ``viewer`` (imports inside functions count);
* training code (``<family>/module.py``, ``<family>/data.py``) never imports inference code
  (``pipeline.py``, ``commands.py``, ``reconstruct.py``, ``bench.py``);
* no function longer than 80 lines;
* every family package has the same core files.
"""

from __future__ import annotations

import pytest
from codeshape import PACKAGES, ROOT, cycles, import_graph, long_functions, modules, reachable

FAMILIES = ("hair", "objects", "motion", "binary", "smoke")
INFERENCE = ("pipeline", "commands", "reconstruct", "bench")


def test_no_import_cycles():
    graph = import_graph()
    assert "latent4d.viewer.controller" in graph and graph["latent4d.viewer.controller"], "the graph is read"
    assert cycles(graph) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_training_code_never_imports_inference_code(family):
    graph = import_graph()
    bad = []
    for part in ("module", "data"):
        name = f"latent4d.{family}.{part}"
        reached = reachable(graph, name) if name in graph else set()  # transitively, through helpers too
        bad += [f"{name} -> {t}" for t in sorted(reached) if t.rsplit(".", 1)[-1] in INFERENCE]
    assert bad == []


def test_no_function_longer_than_80_lines():
    files = [*modules().values(), *sorted((ROOT / "scripts").rglob("*.py"))]
    assert len(files) > 50
    assert long_functions(files) == []


@pytest.mark.parametrize("family", ["hair", "objects", "motion", "binary"])
def test_families_share_the_core_file_names(family):
    have = {p.stem for p in (PACKAGES["latent4d"] / family).glob("*.py")}
    assert {"data", "module", "pipeline", "commands", "bench", "metrics", "types"} <= have
