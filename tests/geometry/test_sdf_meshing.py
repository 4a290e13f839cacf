import numpy as np
import pytest
import torch
import trimesh

from latent4d.errors import InputError
from latent4d.geometry import MeshSDF, chamfer_distance, dense_mesh, marching_cubes, sdf_samples
from latent4d.smoke.metrics import mesh_chamfer_l1


@pytest.fixture(scope="module")
def watertight():
    box = trimesh.creation.box(extents=[0.8, 0.5, 0.6])
    box.apply_transform(trimesh.transformations.rotation_matrix(0.5, [1, 1, 0]))
    return box


def test_sign_matches_trimesh_contains(watertight):
    rng = np.random.default_rng(0)
    q = rng.uniform(-0.7, 0.7, size=(4000, 3))
    sdf = MeshSDF(watertight).signed_distance(q)
    inside = watertight.contains(q)
    d = np.abs(trimesh.proximity.signed_distance(watertight, q))
    far = d > 1e-3  # skip points on the surface
    assert ((sdf[far] < 0) == inside[far]).mean() > 0.999
    assert np.allclose(np.abs(sdf), d, atol=1e-4)


def test_sphere_sdf_is_analytic():
    s = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    q = np.random.default_rng(1).uniform(-1, 1, size=(2000, 3))
    sdf = MeshSDF(s).signed_distance(q)
    assert np.abs(sdf - (np.linalg.norm(q, axis=1) - 0.5)).max() < 2e-3


def test_sdf_samples_and_clamp(watertight):
    pts, sdf = sdf_samples(watertight, 500, 1500, clamp=0.05, rng=0)
    assert pts.shape == (2000, 3) and sdf.shape == (2000,)
    assert sdf.max() <= 0.05 and sdf.min() >= -0.05
    assert (np.abs(sdf[500:]) < 0.05).mean() > 0.8  # near-surface samples are near


def test_closest_attribute_interpolates_vertex_colours():
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    col = (s.vertices[:, :1] > 0).astype(np.float32).repeat(3, 1)  # right half white
    c = MeshSDF(s).closest_attribute(np.array([[0.9, 0, 0], [-0.9, 0, 0]]), col)
    assert c[0].min() > 0.99 and c[1].max() < 0.01


def test_marching_cubes_sphere():
    f = lambda p: p.norm(dim=-1) - 0.6
    m = dense_mesh(f, 64)
    r = np.linalg.norm(m.vertices, axis=1)
    assert np.abs(r - 0.6).max() < 2.0 / 64
    assert m.is_watertight
    assert m.volume > 0  # outward normals
    assert abs(m.volume - 4 / 3 * np.pi * 0.6**3) / (4 / 3 * np.pi * 0.6**3) < 0.03
    # occupancy-style volumes (inside positive)
    occ = -f(torch.from_numpy(np.stack(np.meshgrid(*[np.linspace(-1 + 1 / 64, 1 - 1 / 64, 64)] * 3,
                                                  indexing="ij"), -1).reshape(-1, 3)).float()).reshape(64, 64, 64)
    m2 = marching_cubes(occ, inside="positive")
    assert m2.volume > 0
    d = chamfer_distance(torch.tensor(m.vertices), torch.tensor(m2.vertices))
    assert float(d) < 1e-10  # the same surface from either sign convention
    assert mesh_chamfer_l1(m, trimesh.creation.icosphere(subdivisions=5, radius=0.6), n=20000) < 0.01


def test_empty_volume_gives_empty_mesh_and_bad_mesh_errors():
    assert len(marching_cubes(np.ones((8, 8, 8))).faces) == 0
    with pytest.raises(InputError):
        MeshSDF((np.zeros((3, 3)), np.zeros((0, 3), int)))
    with pytest.raises(InputError, match="NaN"):
        MeshSDF((np.full((3, 3), np.nan), np.array([[0, 1, 2]])))
