"""The viewer's non-GUI parts: guide edits and densification, picking, what the panels read (through the
families' I/O modules and the viewer's mesh reader)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from latent4d.viewer import hair_edit
from latent4d.viewer.hair_panel import is_hair_file
from latent4d.viewer.motion_panel import is_sequence, read_motion
from latent4d.viewer.objects_panel import find_frame_files, read_frame

from latent4d.errors import InputError
from latent4d.hair.strands import Hairstyle


def _strand(n=40, length=0.3):
    t = np.linspace(0, 1, n)
    return np.stack([0.05 * np.sin(3 * t), -length * t, 0.02 * t], 1).astype(np.float32)


def test_polyline_ops_keep_the_root():
    x = _strand()
    L = hair_edit.arc_lengths(x)[-1]
    c = hair_edit.cut(x, 0.5)
    assert hair_edit.arc_lengths(c)[-1] == pytest.approx(0.5 * L, rel=1e-3)
    e = hair_edit.extend(x, 0.1)
    assert hair_edit.arc_lengths(e)[-1] == pytest.approx(L + 0.1, rel=0.02)
    cu = hair_edit.curl(x, 0.01, 4)
    assert np.abs(cu - x).max() == pytest.approx(0.01, rel=0.3)
    tgt = x[-1] + np.array([0.05, 0.02, 0.0])
    m = hair_edit.move_tip(x, tgt)
    assert np.allclose(m[-1], tgt, atol=1e-6)
    for y in (c, e, cu, m):
        assert np.allclose(y[0], x[0]) and len(y) == len(x)
    with pytest.raises(InputError):
        hair_edit.apply_op(x, "twist")


def _hair(S=400, P=30, seed=0):
    rng = np.random.default_rng(seed)
    roots = np.c_[rng.uniform(-0.1, 0.1, S), np.full(S, 1.8), rng.uniform(-0.1, 0.1, S)]
    t = np.linspace(0, 1, P)[None, :, None]
    strands = roots[:, None] + t * np.array([0.0, -0.25, 0.05])
    return Hairstyle.from_strands(strands)


def test_guide_editor_densify_undo_redo():
    ed = hair_edit.GuideEditor(_hair(), num_guides=32, num_points=30)
    assert ed.num_guides == 32 and np.allclose(ed.densify(), ed.dense0)
    assert np.allclose(ed.weights.sum(1), 1.0, atol=1e-5)
    lengths0 = hair_edit.arc_lengths(ed.densify())[:, -1]
    sel = ed.edit(5, "extend", radius=0.05, metres=0.1)
    assert len(sel) > 1 and ed.can_undo and not ed.can_redo
    lengths1 = hair_edit.arc_lengths(ed.densify())[:, -1]
    near = np.isin(ed.nbr, sel).any(1)
    assert (lengths1[near] > lengths0[near] + 0.01).mean() > 0.5, "strands near the edited guides grow"
    assert np.allclose(lengths1[~near], lengths0[~near]), "strands elsewhere do not move"
    assert ed.undo() and np.allclose(ed.densify(), ed.dense0)
    assert ed.redo() and np.allclose(hair_edit.arc_lengths(ed.densify())[:, -1], lengths1)
    # a drag: several moves merged into one undo step
    ed.edit(3, "move_tip", target=ed.guides[3, -1] + 0.01)
    ed.edit(3, "move_tip", merge=True, target=ed.guides[3, -1] + 0.01)
    assert ed.undo() and ed.undo() and not ed.can_undo
    idx = ed.preview_index(100)
    assert len(idx) == 100 and np.array_equal(idx, ed.preview_index(100))


def test_nearest_guide_prefers_the_closest_to_the_camera():
    xy = np.array([[[10.0, 10.0], [20.0, 20.0]], [[11.0, 10.0], [50.0, 50.0]], [[200.0, 200.0], [210, 210]]])
    depth = np.array([[2.0, 2.0], [1.0, 1.0], [1.0, 1.0]])
    assert hair_edit.nearest_guide(xy, depth, 10.5, 10.0) == 1
    assert hair_edit.nearest_guide(xy, depth, 100, 100) is None
    depth[1] = -1  # not drawn
    assert hair_edit.nearest_guide(xy, depth, 10.5, 10.0) == 0


def test_hair_file_detection(tmp_path):
    from latent4d.hair.formats import write_hair

    h = _hair(10, 5)
    for ext in (".data", ".hair", ".ply", ".npz", ".usda"):
        write_hair(tmp_path / f"h{ext}", h)
        assert is_hair_file(tmp_path / f"h{ext}")
    import trimesh

    trimesh.creation.box().export(tmp_path / "box.ply")
    assert not is_hair_file(tmp_path / "box.ply")
    np.savez(tmp_path / "seq.npz", vertices=np.zeros((2, 3, 3)), faces=np.array([[0, 1, 2]]))
    assert not is_hair_file(tmp_path / "seq.npz") and is_sequence(tmp_path / "seq.npz")


def test_sequence_reader_checks_its_input(tmp_path):
    import trimesh

    box = trimesh.creation.box()
    d = tmp_path / "seq"
    (d / "meshes").mkdir(parents=True)
    (d / "points").mkdir()
    for t in range(3):
        trimesh.Trimesh(box.vertices * (1 + 0.1 * t), box.faces).export(d / "meshes" / f"m_{t}.ply")
        trimesh.PointCloud(box.vertices).export(d / "points" / f"p_{t}.ply")
    seq = read_motion(d)
    assert seq.num_frames == 3 and seq.shared_topology and len(seq.points) == 3
    (d / "points" / "p_2.ply").unlink()
    with pytest.raises(InputError, match="3 mesh frames but 2 point-cloud frames"):
        read_motion(d)
    bad = tmp_path / "bad.npz"
    np.savez(bad, vertices=np.full((2, 3, 3), np.nan), faces=np.array([[0, 1, 2]]))
    with pytest.raises(InputError, match="NaN"):
        read_motion(bad)
    np.savez(bad, vertices=np.zeros((2, 3, 3)), faces=np.array([[0, 1, 7]]))
    with pytest.raises(InputError, match=r"bad\.npz: 'faces' index vertices outside \[0, 2\]"):
        read_motion(bad)
    np.savez(bad, vertices=np.zeros((2, 3, 3)), faces=np.array([[0, 1, 2]]), points=np.zeros((3, 5, 3)))
    with pytest.raises(InputError, match="'points' has 3 frames but 'vertices' 2"):
        read_motion(bad)
    np.savez(bad, vertices=np.zeros((2, 3, 3)), faces=np.array([[0, 1, 2]]), points=np.ones((2, 5, 3)))
    seq = read_motion(bad)
    assert seq.num_frames == 2 and len(seq.points) == 2 and seq.points[1].shape == (5, 3)


def test_rgbd_frame_reader(tmp_path):
    """Frame files found by name (prefix, colour / mask optional), read and checked by
    ``latent4d.objects.io.read_frame``."""
    from PIL import Image

    d = tmp_path / "f"
    d.mkdir()
    depth = np.zeros((12, 16), np.uint16)
    depth[3:9, 4:12] = 1500
    Image.fromarray(depth).save(d / "cam0_depth.png")
    Image.fromarray(np.full((12, 16, 3), 200, np.uint8)).save(d / "cam0_color.png")
    (d / "cam0_intrinsics.json").write_text(json.dumps({"fx": 10, "fy": 10, "cx": 8, "cy": 6}))
    files = find_frame_files(d / "cam0_depth.png")
    assert files["color"].name == "cam0_color.png" and files["intrinsics"].name == "cam0_intrinsics.json"
    assert files["mask"] is None
    f = read_frame(d / "cam0_depth.png")
    pts, _ = f.points()
    assert len(pts) == 48 and np.allclose(pts[:, 2], -1.5)  # OpenGL frame: the camera looks down -z
    assert f.frame.rgb.shape == (12, 16, 3) and f.frame.mask is None and f.path.name == "cam0_depth.png"
    (d / "cam0_intrinsics.json").write_text(json.dumps({"K": [[-1, 0, 0], [0, 1, 0], [0, 0, 1]]}))
    with pytest.raises(InputError, match="cam0_intrinsics.json.*focal"):
        read_frame(d)
    (d / "cam0_intrinsics.json").write_text(json.dumps({"fx": 10, "fy": 10, "cx": 8, "cy": 6}))
    Image.fromarray(np.full((10, 16, 3), 200, np.uint8)).save(d / "cam0_color.png")
    with pytest.raises(InputError, match="cam0_depth.png' is 16x12 but rgb '.*cam0_color.png' is 16x10"):
        read_frame(d)
    (d / "cam0_color.png").unlink()
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(d / "cam0_mask.png")
    f = read_frame(d)
    assert f.frame.rgb is None and f.frame.mask.shape == (12, 16), "colour and mask are optional"


def test_motion_reconstruction_output(tmp_path):
    import trimesh

    from latent4d.motion.io import write_tracked_sequence

    box = trimesh.creation.box()
    T = 4
    verts = np.stack([box.vertices * (1 + 0.1 * t) for t in range(T)]).astype(np.float32) * 0.4
    obs = np.random.default_rng(0).uniform(-0.3, 0.3, (T, 50, 3)).astype(np.float32)
    write_tracked_sequence(tmp_path / "out" / "sample_00", verts, box.faces, obs)
    for p in (
        tmp_path / "out",
        tmp_path / "out" / "sample_00",
        tmp_path / "out" / "sample_00" / "trajectories.npz",
    ):
        assert is_sequence(p)
        seq = read_motion(p)
        assert seq.num_frames == T and seq.shared_topology and len(seq.points) == T
        assert (
            seq.colors is not None and seq.colors.shape == (len(box.vertices), 3) and seq.colors.max() <= 1.0
        )
        assert np.allclose(seq.vertices[2], verts[2], atol=1e-5)
