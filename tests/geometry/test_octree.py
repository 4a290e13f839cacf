"""Octree extraction: the half-diagonal bound, sparse marching cubes, differentiable surface points."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latent4d.geometry.meshing import dense_mesh
from latent4d.geometry.octree import (
    octree_band,
    octree_mesh,
    octree_surface_points,
    project_to_surface,
    sdf_keep,
    shapo_keep,
)


def sphere(r=0.6, c=(0.0, 0.0, 0.0)):
    c = torch.tensor(c)
    return lambda p: (p - c).norm(dim=-1) - r


def sphere_and_box(p):
    a = p.norm(dim=-1) - 0.55
    b = (p - torch.tensor([0.45, 0.2, 0.0])).abs().max(-1).values - 0.3
    return torch.minimum(a, b)


def surface_cells(fn, level, bounds=1.0, samples=6):
    """Indices of the target-level cells that truly contain the zero level (sign change among
    ``samples^3`` points per cell), by brute force."""
    R = 2 ** level
    side = 2 * bounds / R
    lin = (torch.arange(samples) + 0.5) / samples - 0.5
    off = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1).reshape(-1, 3) * side
    ax = -bounds + (torch.arange(R) + 0.5) * side
    cen = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    v = fn((cen[:, None, :] + off[None]).reshape(-1, 3)).reshape(len(cen), -1)
    has = (v.min(1).values < 0) & (v.max(1).values > 0)
    return set(map(tuple, ((cen[has] + bounds) / side - 0.5).round().long().tolist()))


def test_half_diagonal_keeps_every_surface_cell():
    # small spheres near cell corners: the surface enters cells only near their corners, where
    # the centre value is close to the half-diagonal
    inscribed = lambda v, side: v.abs() <= 0.5 * side  # noqa: E731 - too tight: loses corner cells
    lost = False
    for c in [(0.0, 0.0, 0.0), (0.251, 0.249, 0.0), (-0.26, 0.5, 0.49)]:
        fn = sphere(0.04, c)
        truth = surface_cells(fn, 5)
        ours = set(map(tuple, octree_band(fn, 5, keep=sdf_keep()).indices().tolist()))
        shapo = set(map(tuple, octree_band(fn, 5, keep=shapo_keep()).indices().tolist()))
        tight = set(map(tuple, octree_band(fn, 5, keep=inscribed).indices().tolist()))
        assert truth <= ours  # provably complete
        assert ours <= shapo
        lost |= not truth <= tight
    assert lost  # a bound below the half-diagonal drops surface cells
    # and it is tighter than ShAPO's |sdf| < side: fewer evaluations on a real surface
    assert octree_band(sphere_and_box, 6).evaluations < octree_band(sphere_and_box, 6, keep=shapo_keep()).evaluations


def test_band_is_sparse_and_counts_evaluations():
    band = octree_band(sphere_and_box, 7)
    assert band.evaluations == sum(band.per_level)
    assert band.evaluations < 0.1 * 128**3
    # children of kept cells: |v| <= parent bound (sqrt(3) side) + centre offset (sqrt(3)/2 side)
    assert torch.all(band.values.abs() <= 1.5 * math.sqrt(3) * band.side + 1e-6)


@pytest.mark.parametrize("level", [4, 6])
def test_sparse_marching_cubes_matches_dense(level):
    sparse, band = octree_mesh(sphere_and_box, level)
    dense = dense_mesh(sphere_and_box, 2 ** level)
    assert len(sparse.faces) == len(dense.faces)
    assert sparse.is_watertight and dense.is_watertight
    assert abs(sparse.volume - dense.volume) < 1e-4
    a = np.sort(np.round(np.asarray(sparse.vertices), 5), axis=0)
    b = np.sort(np.round(np.asarray(dense.vertices), 5), axis=0)
    assert np.abs(a - b).max() < 1e-4
    assert band.fill is None  # the sparse path never allocates the dense volume


def test_dense_fill_path_still_available():
    m, band = octree_mesh(sphere(), 5, sparse=False)
    assert band.fill is not None and band.fill.shape == (32, 32, 32)
    assert m.is_watertight and abs(m.volume - 4 / 3 * math.pi * 0.6**3) < 0.02


def test_occupancy_keep_rule_and_positive_inside():
    occ = lambda p: torch.sigmoid(20 * (0.5 - p.norm(dim=-1)))  # noqa: E731
    keep = lambda v, side: (v > 0.02) & (v < 0.98)  # noqa: E731
    m, _ = octree_mesh(occ, 5, keep=keep, level_set=0.5, inside="positive")
    r = np.linalg.norm(m.vertices, axis=1)
    assert m.is_watertight and abs(r.mean() - 0.5) < 0.02
    assert m.volume > 0  # outward winding


def test_surface_points_on_surface_and_differentiable():
    radius = torch.tensor(0.5, requires_grad=True)
    fn = lambda p: p.norm(dim=-1) - radius  # noqa: E731
    col = lambda p: torch.sigmoid(p * 3 + radius)  # noqa: E731
    out = octree_surface_points(fn, 5, color_fn=col)
    pts = out["points"]
    assert len(pts) > 500
    assert torch.allclose(pts.norm(dim=-1), torch.full((len(pts),), 0.5), atol=2e-3)
    assert out["colors"].shape == pts.shape
    # moving the radius moves every projected point outward along its normal
    pts.norm(dim=-1).sum().backward()
    assert radius.grad is not None and radius.grad.item() == pytest.approx(len(pts), rel=1e-3)


def test_project_to_surface_without_create_graph_keeps_value_gradient():
    z = torch.tensor([0.1, 0.0, 0.0], requires_grad=True)
    fn = lambda p: (p - z).norm(dim=-1) - 0.4  # noqa: E731
    p = torch.tensor([[0.7, 0.0, 0.0], [0.1, 0.6, 0.0]])
    proj, vals, nrm = project_to_surface(fn, p, create_graph=False)
    assert torch.allclose((proj - z.detach()).norm(dim=-1), torch.tensor([0.4, 0.4]), atol=1e-5)
    proj[:, 0].sum().backward()  # gradient flows through f even with constant normals
    assert z.grad is not None and z.grad.abs().sum() > 0


@pytest.mark.parametrize("create_graph", [True, False])
def test_chunked_projection_and_band_match_one_call(create_graph):
    """Evaluating ``fn`` chunk by chunk (the CPU default keeps activations in cache) gives the same
    points, values, normals, band and gradients as one call over every point."""
    from latent4d.geometry.octree import CHUNK_CPU, CHUNK_GPU, default_chunk

    assert default_chunk("cpu") == CHUNK_CPU < CHUNK_GPU == default_chunk("cuda")
    grads = []
    outs = []
    for chunk in (7, 10**6):
        z = torch.tensor([0.05, -0.02, 0.1], requires_grad=True)
        fn = lambda p, z=z: (p - z).norm(dim=-1) - 0.5  # noqa: E731
        band = octree_band(fn, 5, chunk=chunk)
        proj, vals, nrm = project_to_surface(fn, band.centers, create_graph=create_graph, chunk=chunk)
        (proj.sum() + vals.sum()).backward()
        outs.append((band.centers, band.values, proj.detach(), vals.detach(), nrm.detach()))
        grads.append(z.grad.clone())
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)
    empty = project_to_surface(sphere(), torch.zeros(0, 3), chunk=4)
    assert [t.shape[0] for t in empty] == [0, 0, 0]
