import numpy as np
import pytest
import torch

from latent4d.geometry.meshing import dense_mesh
from latent4d.geometry.mise import mise_mesh, mise_volume


def _sphere_logits(x: torch.Tensor) -> torch.Tensor:
    """Occupancy-like logits of a sphere of radius 0.3 (inside positive), saturating like a network's."""
    return 12.0 * torch.tanh(30.0 * (0.3 - x.norm(dim=-1)))


def test_mise_matches_the_dense_surface_with_a_fraction_of_the_evaluations():
    mesh, evals = mise_mesh(_sphere_logits, 128, 0.55, start_resolution=16)
    dense = dense_mesh(_sphere_logits, 128, 0.55, inside="positive")
    assert evals < 0.2 * 128 ** 3
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(r - 0.3).max() < 2e-3
    assert mesh.is_watertight and abs(len(mesh.faces) - len(dense.faces)) < 0.02 * len(dense.faces)
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.3 ** 3, rel=0.02)  # outward normals


def test_mise_volume_is_exact_near_the_surface():
    vol, evals = mise_volume(_sphere_logits, 64, 0.55, start_resolution=8)
    assert vol.shape == (65, 65, 65) and evals < 65 ** 3
    ax = torch.linspace(-0.55, 0.55, 65)
    pts = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1)
    exact = _sphere_logits(pts.reshape(-1, 3)).reshape(65, 65, 65)
    near = (pts.norm(dim=-1) - 0.3).abs() < 0.02
    torch.testing.assert_close(vol[near], exact[near], atol=1e-4, rtol=0)
    assert ((vol > 0) == (exact > 0)).float().mean() > 0.999


def test_mise_bad_settings_and_empty_functions():
    with pytest.raises(ValueError, match="power of two"):
        mise_volume(_sphere_logits, 100, start_resolution=16)
    mesh, evals = mise_mesh(lambda x: -torch.ones(len(x)), 32, start_resolution=8)
    assert len(mesh.faces) == 0 and evals == 9 ** 3  # nothing crosses: no refinement
