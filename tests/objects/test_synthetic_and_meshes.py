"""Procedural objects and mesh-folder loading (normalisation, colours, watertight repair)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import trimesh

from latent4d.errors import InputError
from latent4d.objects.meshes import MeshRepairWarning, load_colored_mesh, load_mesh_folder, make_watertight
from latent4d.objects.synthetic import CATEGORIES, make_object, normalize_mesh


@pytest.mark.parametrize("category", CATEGORIES)
def test_procedural_objects_are_watertight_normalised_and_coloured(category):
    o = make_object(category, 3, resolution=56)
    m = o.mesh
    assert m.is_watertight and m.volume > 0
    lo, hi = m.bounds
    assert np.allclose(0.5 * (lo + hi), 0, atol=1e-6)
    assert 0.5 * np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=1e-6)
    vc = np.asarray(m.visual.vertex_colors)
    assert vc.shape == (len(m.vertices), 4) and len(np.unique(vc[:, :3], axis=0)) > 1
    assert o.name == f"{category}_00003"


def test_procedural_is_deterministic_and_varies_with_seed():
    a, b, c = make_object("mug", 1, 48), make_object("mug", 1, 48), make_object("mug", 2, 48)
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and a.params == b.params
    assert a.params != c.params


def test_canonical_orientation_up_is_y():
    bottle = make_object("bottle", 0, 48).mesh
    ext = bottle.extents
    assert ext[1] > ext[0] and ext[1] > ext[2]  # tall along +y
    # the neck is at the top: the top slice is much thinner than the middle
    v = np.asarray(bottle.vertices)
    top = v[v[:, 1] > v[:, 1].max() - 0.1]
    mid = v[np.abs(v[:, 1] - np.median(v[:, 1])) < 0.05]
    assert np.ptp(top[:, 0]) < 0.6 * np.ptp(mid[:, 0])
    mv = np.asarray(make_object("mug", 0, 48).mesh.vertices)
    rim = mv[mv[:, 1] > mv[:, 1].max() - 0.03]
    assert rim[:, 0].mean() < -0.1  # the handle (+x) pushes the body's axis to -x in the centred box


def test_unknown_category():
    with pytest.raises(InputError, match="unknown category 'teapot'"):
        make_object("teapot", 0)


def _write_colored(path, mesh):
    mesh.export(path)
    return path


def test_mesh_folder_loads_colours_repairs_and_skips(tmp_path):
    good = make_object("can", 0, 48).mesh.copy()
    good.apply_scale(0.3)
    good.apply_translation([2.0, 1.0, -1.0])
    (tmp_path / "can").mkdir()
    _write_colored(tmp_path / "can" / "a.ply", good)
    holey = make_object("bottle", 0, 48).mesh.copy()
    c = holey.triangles_center
    hole = c[np.argmax(c[:, 0])]  # a small hole (radius 0.04) in the side of the body
    holey.update_faces(np.linalg.norm(c - hole, axis=1) > 0.04)
    holey.remove_unreferenced_vertices()
    assert not holey.is_watertight
    _write_colored(tmp_path / "holey.obj", holey)
    sheet = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 1]], [[0, 1, 2], [1, 3, 2]])
    sheet.export(tmp_path / "sheet.off")
    (tmp_path / "broken.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 99\nend_header\n1 2\n")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        objs, skipped = load_mesh_folder(tmp_path, repair_resolution=64)
    msgs = " | ".join(str(x.message) for x in w if issubclass(x.category, MeshRepairWarning))
    assert "holey.obj: mesh is not watertight" in msgs
    assert {s.path for s in skipped} == {"sheet.off", "broken.ply"}
    assert "encloses no volume" in next(s.reason for s in skipped if s.path == "sheet.off")
    assert [o.category for o in objs] == ["can", "mesh"]
    for o in objs:
        assert o.mesh.is_watertight
        lo, hi = o.mesh.bounds
        assert 0.5 * np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=1e-6)
    # colours survive the export / load round trip and the repair (closest-point transfer)
    can_cols = np.asarray(objs[0].mesh.visual.vertex_colors)[:, :3]
    assert len(np.unique(can_cols, axis=0)) > 1
    rep_cols = np.asarray(objs[1].mesh.visual.vertex_colors)[:, :3].astype(float)
    src_cols = np.asarray(holey.visual.vertex_colors)[:, :3].astype(float)
    assert abs(rep_cols.mean() - src_cols.mean()) < 20


def test_repair_stays_close_to_the_original():
    from latent4d.geometry.sdf import MeshSDF

    orig = make_object("mug", 1, 56).mesh
    m = orig.copy()
    c = m.triangles_center
    m.update_faces(np.linalg.norm(c - c[np.argmax(c[:, 2])], axis=1) > 0.05)
    m.remove_unreferenced_vertices()
    fixed = make_watertight(m, resolution=64)
    assert fixed.is_watertight
    d = MeshSDF(orig).unsigned_distance(fixed.vertices)
    assert np.median(d) < 0.01


def test_bad_mesh_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_colored_mesh(tmp_path / "nope.obj")
    (tmp_path / "x.xyz").write_text("1 2 3\n")
    with pytest.raises(InputError, match="unsupported mesh format"):
        load_colored_mesh(tmp_path / "x.xyz")
    with pytest.raises(InputError, match="holds no mesh file"):
        load_mesh_folder(tmp_path)
    with pytest.raises(InputError, match="degenerate bounding box"):
        normalize_mesh(trimesh.Trimesh([[0, 0, 0]] * 3, [[0, 1, 2]], process=False))
