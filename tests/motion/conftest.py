"""Shared fixtures: the quick motion demo (four tiny trainings on 5-frame blob clips) and a held-out clip."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_result(tmp_path_factory):
    """``latent4d.motion.commands.demo(quick=True)``: runs shape AE, deformation AE, shape diffusion and
    deformation diffusion, then reconstructs a held-out clip."""
    from latent4d.motion.commands import demo

    out = tmp_path_factory.mktemp("motion_demo")
    res = demo(out, quick=True)
    res["out"] = out
    return res


@pytest.fixture(scope="session")
def tiny_runs(demo_result):
    from pathlib import Path

    return {k: Path(v) for k, v in demo_result["runs"].items()}


@pytest.fixture(scope="session")
def blob_clip():
    """A held-out 4-frame blob clip (normalised mesh sequence + 384 corresponding surface samples)."""
    from latent4d.motion.data import frame_samples
    from latent4d.motion.synthetic import procedural_sequence

    seq = procedural_sequence(1_000_003, 7, num_frames=4, kinds=("blob",))
    smp = frame_samples(seq.vertices, seq.faces, 384, 64, 64, rng=0)
    return seq, smp["surface"]
