"""Shared fixtures: the quick motion demo (four tiny trainings on 5-frame blob clips), a held-out clip, and
tiny randomly initialised networks of every kind (no training)."""

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


@pytest.fixture(scope="session")
def tiny_networks():
    """``make(shape_latents, deform_latents, frames)`` -> the four motion networks (width 16, one layer,
    4 latent channels), randomly initialised with seed 0; the keys are MotionPipeline's components."""
    import torch

    from latent4d.motion.deform import DeformVecSetAE
    from latent4d.motion.denoiser import DeformDenoiser, ShapeDenoiser
    from latent4d.motion.vecset import ShapeVecSetAE

    def make(shape_latents: int = 16, deform_latents: int = 8, frames: int = 3) -> dict:
        torch.manual_seed(0)
        small = dict(width=16, heads=2, dim_head=8, depth=1, decoder_heads=2)
        den = dict(latent_channels=4, width=16, depth=1, heads=2, dim_head=8, obs_tokens=4)
        return {
            "shape_ae": ShapeVecSetAE(num_latents=shape_latents, latent_channels=4, **small),
            "deform_ae": DeformVecSetAE(num_latents=deform_latents, latent_channels=4, **small),
            "shape_denoiser": ShapeDenoiser(num_latents=shape_latents, **den),
            "deform_denoiser": DeformDenoiser(
                num_latents=deform_latents, shape_channels=4, num_frames=frames, **den
            ),
        }

    return make
