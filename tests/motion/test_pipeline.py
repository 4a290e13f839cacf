import numpy as np
import pytest
import torch

from latent4d.errors import ConfigError, InputError
from latent4d.motion.metrics import correspondence_l2, mesh_iou
from latent4d.motion.pipeline import MotionPipeline, extract_mesh, occupancy_keep
from latent4d.motion.reconstruct import MotionSolver, reconstruct_config


def _ellipsoid_logits(xyz: torch.Tensor) -> torch.Tensor:
    """Occupancy logits of an ellipsoid (positive inside), saturating like a trained network."""
    r = (xyz / torch.tensor([0.3, 0.2, 0.25])).norm(dim=-1)
    return (20.0 * (1.0 - r)).clamp(-8, 8)


def test_octree_extraction_matches_dense():
    dense = extract_mesh(_ellipsoid_logits, 64, method="dense")
    octree = extract_mesh(_ellipsoid_logits, 64, method="octree")
    assert len(octree.faces) > 100 and octree.is_watertight
    assert mesh_iou(octree, dense, 20000) > 0.99
    assert abs(len(octree.faces) - len(dense.faces)) < 0.02 * len(dense.faces)
    ext = octree.vertices.max(0) - octree.vertices.min(0)
    np.testing.assert_allclose(ext, [0.6, 0.4, 0.5], atol=0.02)


def test_occupancy_keep_is_monotone_in_cell_size():
    keep = occupancy_keep(slope=10.0)
    v = torch.tensor([0.0, 1.0, 5.0])
    assert keep(v, 0.5).tolist() == [True, True, True]
    assert keep(v, 0.02).tolist() == [True, False, False]


def test_no_surface_gives_empty_mesh():
    m = extract_mesh(lambda x: torch.full((len(x),), -5.0), 32)
    assert len(m.faces) == 0


def test_autoencode_and_reconstruct_with_tiny_runs(tiny_runs, blob_clip):
    seq, surface = blob_clip
    pipe = MotionPipeline.from_runs(shape_ae=tiny_runs["shape_ae"], deform_ae=tiny_runs["deform_ae"])
    rec = pipe.autoencode(surface[:, :192], resolution=32)
    assert rec.vertices.shape[0] == 4 and rec.vertices.shape[1] == len(np.unique(rec.faces))
    assert np.isfinite(rec.vertices).all()
    corr = correspondence_l2(rec.vertices, seq.vertices, seq.faces)
    assert corr.shape == (4,) and np.isfinite(corr).all()
    with pytest.raises(InputError, match="same number of points"):
        pipe.autoencode([surface[0], surface[1][:100]])

    full = MotionPipeline.from_runs(
        shape_diffusion=tiny_runs["shape_diffusion"], deform_diffusion=tiny_runs["deform_diffusion"]
    )
    assert full.window == 5
    # 7 frames with a window of 5: two chained windows; different counts -> per-frame (partial) mode
    frames = [surface[t % 4][: 60 + t] for t in range(7)]
    solver = MotionSolver(
        full,
        reconstruct_config(
            ["num_samples=2", "steps=2", "resolution=24", "n_obs=32", "guidance=0", "fuse=false"]
        ),
    )
    recs = solver.reconstruct(frames, mesh0=seq.mesh(0))
    assert len(recs) == 2 and recs[0].vertices.shape == (7, seq.vertices.shape[1], 3)
    np.testing.assert_allclose(recs[0].vertices[0], seq.vertices[0], atol=1e-6)
    assert recs[0].observations.shape == (7, 32, 3)
    # samples differ (diffusion is stochastic) but are reproducible with the seed
    again = solver.reconstruct(frames, mesh0=seq.mesh(0))
    np.testing.assert_allclose(again[1].vertices, recs[1].vertices, atol=1e-5)
    assert np.abs(recs[0].vertices[1:] - recs[1].vertices[1:]).max() > 0
    with pytest.raises(ConfigError, match="mode"):
        reconstruct_config(["mode=dense"])
    with pytest.raises(InputError, match="at least 2 frames"):
        solver.reconstruct(frames[:1])


def test_pipeline_without_networks_says_what_is_missing():
    with pytest.raises(ConfigError, match="no shape ae"):
        MotionPipeline().encode_shape(np.zeros((10, 3)))
    with pytest.raises(ConfigError, match="does not exist"):
        MotionPipeline.from_runs(shape_ae="/nonexistent/run")


def test_pipeline_folders_and_run_layouts(tmp_path, tiny_networks):
    """save_pretrained / from_pretrained (latent4d.pipeline.LatentPipeline) keep every component; a run
    directory holds its networks under the names of the run that trained them (``ae``, ``denoiser``,
    a diffusion run's ``shape_ae`` / ``deform_ae``); from_runs combines runs; a network of another
    class is refused, naming it."""
    nets = tiny_networks(shape_latents=8, deform_latents=8, frames=3)
    pipe = MotionPipeline(**nets)
    pipe.save_pretrained(tmp_path / "pipe")
    again = MotionPipeline.from_pretrained(tmp_path / "pipe")
    assert set(again.components) == set(nets) and again.window == 3
    for name, net in nets.items():
        for a, b in zip(net.state_dict().values(), again.components[name].state_dict().values()):
            torch.testing.assert_close(a, b)
    # run layouts: an autoencoder run (models/ae) and a deformation diffusion run
    nets["shape_ae"].save_pretrained(tmp_path / "sae" / "models" / "ae")
    for sub, net in (
        ("denoiser", nets["deform_denoiser"]),
        ("shape_ae", nets["shape_ae"]),
        ("deform_ae", nets["deform_ae"]),
    ):
        net.save_pretrained(tmp_path / "dd" / "models" / sub)
    run = MotionPipeline.from_pretrained(tmp_path / "dd")
    assert set(run.components) == {"shape_ae", "deform_ae", "deform_denoiser"}
    assert set(MotionPipeline.from_pretrained(tmp_path / "sae").components) == {"shape_ae"}
    both = MotionPipeline.from_runs(shape_ae=tmp_path / "sae", deform_diffusion=tmp_path / "dd")
    assert set(both.components) == {"shape_ae", "deform_ae", "deform_denoiser"}
    with pytest.raises(ConfigError, match="holds a ShapeVecSetAE"):
        MotionPipeline.from_runs(deform_ae=tmp_path / "sae")
