import numpy as np
import pytest
import torch
import trimesh

from latent4d.errors import InputError
from latent4d.geometry import farthest_point_sampling, interpolate_barycentric, sample_surface


def _fps_reference(p: np.ndarray, n: int) -> list[int]:
    idx = [0]
    d = np.full(len(p), np.inf)
    for _ in range(n - 1):
        d = np.minimum(d, ((p - p[idx[-1]]) ** 2).sum(1))
        idx.append(int(d.argmax()))
    return idx


def test_fps_matches_reference_and_batches():
    p = torch.rand(2, 200, 3, generator=torch.Generator().manual_seed(0))
    idx = farthest_point_sampling(p, 16)
    assert idx.shape == (2, 16)
    for b in range(2):
        assert idx[b].tolist() == _fps_reference(p[b].numpy(), 16)


def test_fps_respects_lengths_and_rejects_small_clouds():
    p = torch.rand(1, 50, 3)
    idx = farthest_point_sampling(p, 10, lengths=torch.tensor([20]))
    assert (idx < 20).all() and len(set(idx[0].tolist())) == 10
    with pytest.raises(InputError, match="10 samples"):
        farthest_point_sampling(torch.rand(5, 3), 10)


def test_surface_samples_lie_on_the_mesh_and_correspond_across_deformations():
    m = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    pts, f, b = sample_surface(m.vertices, m.faces, 2000, 0)
    assert pts.shape == (2000, 3)
    r = np.linalg.norm(pts, axis=1)
    assert (r <= 0.5 + 1e-6).all() and (r > 0.49).all()  # chords of a fine icosphere
    assert np.allclose(b.sum(1), 1.0, atol=1e-6) and (b >= 0).all()
    # same (face, bary) on a deformed copy = the same material points, deformed
    A = np.diag([2.0, 1.0, 0.5])
    moved = interpolate_barycentric(m.vertices @ A.T, m.faces, f, b)
    assert np.allclose(moved, pts @ A.T, atol=1e-5)
    t = interpolate_barycentric(torch.tensor(m.vertices @ A.T, dtype=torch.float64), m.faces, f, b)
    assert np.allclose(t.numpy(), moved, atol=1e-6)


def test_surface_samples_are_uniform_by_area():
    # two triangles, areas 1 : 3
    V = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [5, 0, 0], [8, 0, 0], [5, 2, 0]], float)
    F = np.array([[0, 1, 2], [3, 4, 5]])
    _, f, _ = sample_surface(V, F, 20000, 1)
    assert abs((f == 1).mean() - 0.75) < 0.02


def test_surface_sampling_rejects_degenerate_meshes():
    with pytest.raises(InputError):
        sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10)
