"""Strand maths, the scalp (UV map, frames, roots) and the procedural generator."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from latent4d.errors import InputError
from latent4d.hair.scalp import Head, Scalp
from latent4d.hair.strands import Hairstyle, curvature, resample_polylines, to_local, to_world
from latent4d.hair.synthetic import (
    StyleParams,
    generate_hairstyle,
    generate_strands,
    generate_strands_batch,
    sample_style,
    style_labels,
)


def test_resample_by_arc_length_keeps_ends_and_spacing():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(4, 37, 3)) * np.array([1, 1, 1]) * rng.random((4, 37, 1)), 1)
    r = resample_polylines(x, 100)
    assert r.shape == (4, 100, 3)
    assert np.allclose(r[:, 0], x[:, 0], atol=1e-5) and np.allclose(r[:, -1], x[:, -1], atol=1e-4)
    # points lie on the polyline with equal arc spacing: total length preserved within chord error
    seg = np.linalg.norm(np.diff(r, axis=1), axis=-1)
    L = np.linalg.norm(np.diff(x, axis=1), axis=-1).sum(1)
    assert (seg.sum(1) <= L + 1e-4).all() and (seg.sum(1) > 0.8 * L).all()
    # a straight line is resampled exactly evenly
    t = np.array([0.0, 0.05, 0.1, 0.5, 0.9, 1.0])  # uneven input spacing along a straight line
    line = (t[:, None] * np.array([1.0, 2.0, 0.0]))[None]
    rl = resample_polylines(line, 11)
    d = np.linalg.norm(np.diff(rl, axis=1), axis=-1)
    assert np.allclose(d, np.sqrt(5) / 10, rtol=1e-5)


def test_hairstyle_resample_keeps_bald_roots_and_attributes():
    h = Hairstyle.from_list([np.random.rand(5, 3), np.random.rand(1, 3), np.random.rand(9, 3)])
    h = Hairstyle(h.points, h.counts, thickness=np.arange(h.num_points, dtype=np.float32))
    r = h.resample(100)
    assert r.counts.tolist() == [100, 1, 100]
    assert np.array_equal(r.strand(1), h.strand(1))
    assert r.thickness.shape == (r.num_points,) and r.thickness[0] == 0 and r.thickness[-1] == h.num_points - 1
    strands, idx = h.hair_strands(50)
    assert strands.shape == (2, 50, 3) and idx.tolist() == [0, 2]
    with pytest.raises(InputError, match="different point counts"):
        _ = h.strands


def test_local_frames_are_exact_inverses(scalp):
    roots, _ = scalp.sample_roots(50, seed=3)
    F = scalp.frames(roots)
    strands = roots[:, None] + np.random.default_rng(1).normal(size=(50, 100, 3)).astype(np.float32) * 0.05
    strands[:, 0] = roots
    back = to_world(to_local(strands, roots, F), roots, F)
    assert np.abs(back - strands).max() < 1e-5
    assert np.allclose(to_local(strands, roots, F)[:, 0], 0, atol=1e-6)


def test_curvature_of_a_circle():
    t = np.linspace(0, np.pi, 200)
    r = 0.05
    circle = np.stack([r * np.cos(t), r * np.sin(t), 0 * t], 1)[None]
    assert np.allclose(curvature(circle), 1 / r, rtol=1e-3)
    assert np.allclose(curvature(np.linspace([0, 0, 0], [1, 1, 1], 10)[None]), 0, atol=1e-6)


def test_scalp_uv_map_frames_and_roots(scalp):
    roots, uv = scalp.sample_roots(2000, seed=0)
    assert np.allclose(scalp.head.radial_distance(roots), 0, atol=1e-6)
    assert scalp.in_region(roots).all() and (uv >= 0).all() and (uv <= 1).all()
    p, ok = scalp.from_uv(uv)  # the spherical map is inverted exactly on the scalp
    assert ok.all() and np.abs(p - roots).max() < 1e-5
    F = scalp.frames(roots)
    assert np.allclose(np.einsum("nji,njk->nik", F, F), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(F), 1, atol=1e-5)
    assert np.allclose(F[:, :, 2], scalp.head.normal(roots), atol=1e-5)
    eps = 1e-4  # t points towards increasing u, b keeps u constant to first order
    du_t = scalp.uv(roots + eps * F[:, :, 0])[:, 0] - uv[:, 0]
    du_b = scalp.uv(roots + eps * F[:, :, 1])[:, 0] - uv[:, 0]
    assert (du_t > 0).all() and np.abs(du_b).max() < 0.02 * du_t.min()
    # deterministic, and density gives the expected count
    assert np.array_equal(scalp.sample_roots(10, seed=5)[0], scalp.sample_roots(10, seed=5)[0])
    n = len(scalp.sample_roots(density=10.0)[0])
    assert abs(n - 10.0 * scalp.area() * 1e4) <= 1
    assert 550 < scalp.area() * 1e4 < 800  # cm^2, a human scalp


def test_scalp_grid_and_serialisation(scalp):
    g = scalp.grid(32)
    assert g.mask.shape == (1024,) and 600 < g.mask.sum() < 1000
    assert np.isfinite(g.roots[g.mask]).all() and np.isnan(g.roots[~g.mask]).all()
    s2 = Scalp.from_dict(scalp.to_dict())
    assert np.allclose(s2.uv(g.roots[g.mask]), scalp.uv(g.roots[g.mask]))


def test_scalp_from_mesh(tmp_path, scalp):
    head = scalp.head.mesh(4)
    keep = scalp.in_region(head.triangles_center)
    top = trimesh.Trimesh(head.vertices, head.faces[keep])
    top.remove_unreferenced_vertices()
    top.export(tmp_path / "scalp.obj")
    ms = Scalp.from_mesh(tmp_path / "scalp.obj")
    roots, uv = ms.sample_roots(500, seed=0)
    assert np.abs(scalp.head.radial_distance(roots)).max() < 0.003
    n = ms.normals(roots)
    assert (np.einsum("ij,ij->i", n, scalp.head.normal(roots)) > 0.95).mean() > 0.95
    g = ms.grid(16)
    assert g.mask.sum() > 100
    far = top.copy()
    far.apply_translation([0, -1.0, 0])
    far.export(tmp_path / "far.obj")
    with pytest.raises(InputError, match="does not match the head frame"):
        Scalp.from_mesh(tmp_path / "far.obj")
    with pytest.raises(InputError, match="does not exist"):
        Scalp.from_mesh(tmp_path / "missing.obj")


def test_head_push_out_and_resolve():
    head = Head()
    inside = head.c + np.random.default_rng(0).normal(size=(100, 3)) * 0.02
    out = head.push_out(inside, 0.001)
    assert not head.inside(out).any()
    strands = np.linspace(head.c + [0.2, 0.1, 0], head.c + [-0.2, 0.1, 0], 100)[None].astype(np.float32)
    strands[0, 0] = head.surface_point(strands[0, :1])[0] * 1.0
    res = head.resolve_strands(strands)
    assert not head.inside(res[:, 1:]).any()


def test_generator_is_deterministic_diverse_and_outside_the_head(scalp):
    roots, uv = scalp.sample_roots(300, seed=0)
    a, aux = generate_strands(sample_style(11), roots, scalp, uv)
    b, _ = generate_strands(sample_style(11), roots, scalp, uv)
    c, _ = generate_strands(sample_style(12), roots, scalp, uv)
    assert a.shape == (300, 100, 3) and np.array_equal(a, b)
    assert np.abs(a - c).mean() > 0.005
    assert np.array_equal(a[:, 0], roots)
    assert not scalp.head.inside(a[:, 1:]).any()
    assert set(aux) == {"parting_distance", "bang"}
    # batching several styles gives the same strands as one at a time
    both = generate_strands_batch([sample_style(11), sample_style(12)], roots, scalp, uv)
    assert np.array_equal(both[0][0], a) and np.array_equal(both[1][0], c)


def test_generator_styles_parting_curls_and_labels(scalp):
    roots, uv = scalp.sample_roots(3000, seed=1)
    base = dict(length=0.3, clump_strength=0.0, noise=0.0, bangs=False, lift=0.1)
    st = StyleParams(seed=1, curl="straight", parting="centre", parting_u=0.5, **base)
    x, aux = generate_strands(st, roots, scalp, uv)
    # strands on the two sides of the parting leave in opposite directions along t (+u)
    F = scalp.frames(roots)
    first = x[:, 5] - x[:, 0]
    along_t = np.einsum("ij,ij->i", first, F[:, :, 0])
    near = np.isfinite(aux["parting_distance"]) & (aux["parting_distance"] < 0.01) & (uv[:, 1] < 0.4)
    left, right = near & (uv[:, 0] < 0.5), near & (uv[:, 0] >= 0.5)
    assert left.sum() > 10 and right.sum() > 10
    assert (along_t[left] < 0).mean() > 0.9 and (along_t[right] > 0).mean() > 0.9
    curly, _ = generate_strands(StyleParams(seed=1, curl="curly", curl_radius=0.008, turns=5, **base), roots[:500],
                                scalp)
    lab_s, lab_c = style_labels(x[:500], scalp), style_labels(curly, scalp)
    assert lab_c["curliness"] > lab_s["curliness"] + 1.0  # log(1 + curvature): > e times curlier
    assert lab_s["length"] == pytest.approx(0.3, rel=0.05)
    long = StyleParams(seed=1, curl="straight", **{**base, "length": 0.5})
    assert style_labels(generate_strands(long, roots[:500], scalp)[0], scalp)["length"] > 0.45


def test_generate_hairstyle_dense():
    h = generate_hairstyle(3, 12000)
    assert h.num_strands == 12000 and h.is_uniform and h.strands.shape == (12000, 100, 3)
    assert h.root_uv.shape == (12000, 2) and h.meta["procedural"]["seed"] == 3
