"""The hair family's shape (issue 17): no import cycles among its modules, training code that never
imports inference code, and no function longer than 80 lines. Static (AST) checks, no imports."""

from __future__ import annotations

from codeshape import ROOT, cycles, import_graph, long_functions, modules, reachable

HAIR = ROOT / "src" / "latent4d" / "hair"
#: the hair family's other files (issue 17 ownership): the viewer's hair editing and the script
EXTRA = [ROOT / "viewer" / "hair_edit.py", ROOT / "viewer" / "hair_model.py", ROOT / "scripts" / "reconstruct_hair.py"]
TRAINING = ("latent4d.hair.module", "latent4d.hair.data")
INFERENCE = ("latent4d.hair.pipeline", "latent4d.hair.commands", "latent4d.hair.reconstruct", "latent4d.hair.bench")


def hair_graph() -> dict[str, set[str]]:
    """``latent4d.hair.<module>`` -> the hair modules it imports (the package's ``__init__`` left out)."""
    mods = modules()
    hair = {m for m, p in mods.items() if p.parent == HAIR and p.stem != "__init__"}
    return {m: targets & hair for m, targets in import_graph(mods).items() if m in hair}


def test_no_import_cycles_among_hair_modules():
    graph = hair_graph()
    assert "latent4d.hair.types" in graph and "latent4d.hair.reconstruct" in graph
    assert cycles(graph) == []


def test_training_code_never_reaches_inference_code():
    graph = hair_graph()
    for mod in TRAINING:
        assert not reachable(graph, mod) & set(INFERENCE), (mod, sorted(reachable(graph, mod)))


def test_no_function_longer_than_80_lines():
    assert long_functions([*sorted(HAIR.glob("*.py")), *EXTRA]) == []
