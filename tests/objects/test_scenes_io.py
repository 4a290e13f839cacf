"""Synthetic RGB-D scenes and the RGB-D file formats (16-bit depth PNG in mm, masks, intrinsics JSON)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from latent4d.errors import InputError
from latent4d.objects.io import (
    load_scene,
    read_depth_png,
    read_frame,
    read_intrinsics,
    read_rgbd,
    save_scene,
    write_depth_png,
)
from latent4d.objects.scenes import make_scene
from latent4d.objects.synthetic import make_object


@pytest.fixture(scope="module")
def scene():
    objs = [make_object(c, 1000, 48) for c in ("mug", "camera", "can")]
    return make_scene(objs, seed=1, n_objects=3)


def test_scene_content_and_ground_truth(scene):
    assert scene.rgb.shape == (480, 640, 3) and scene.depth.shape == (480, 640)
    assert scene.instance_ids == [o.instance_id for o in scene.objects]
    assert 1 <= len(scene.objects) <= 3
    for o in scene.objects:
        assert np.allclose(o.R @ o.R.T, np.eye(3), atol=1e-6) and np.linalg.det(o.R) > 0
        # the ground-truth pose maps the canonical mesh onto the rendered (noise-free) depth
        v = o.scale * np.asarray(o.mesh.vertices) @ o.R.T + o.t
        u = np.rint(scene.K[0, 0] * v[:, 0] / v[:, 2] + scene.K[0, 2]).astype(int)
        w = np.rint(scene.K[1, 1] * v[:, 1] / v[:, 2] + scene.K[1, 2]).astype(int)
        seen = scene.mask[w, u] == o.instance_id
        assert seen.mean() > 0.2
        diff = scene.depth_clean[w[seen], u[seen]] - v[seen, 2]
        assert (diff < 0.003).mean() > 0.98  # the rendered surface is never behind the posed mesh
        assert (np.abs(diff) < 0.003).mean() > 0.3  # and coincides with its front side
        assert np.allclose(o.size, o.scale * o.extents)
    # noise: holes and perturbations, but close to the clean depth where valid
    valid = (scene.depth > 0) & (scene.depth_clean > 0)
    assert 0.8 < valid.sum() / (scene.depth_clean > 0).sum() < 1.0
    assert np.median(np.abs(scene.depth[valid] - scene.depth_clean[valid])) < 0.005
    assert not np.array_equal(scene.depth[valid], scene.depth_clean[valid])


def test_scene_roundtrip(scene, tmp_path):
    paths = save_scene(scene, tmp_path)
    raw = Image.open(paths["depth"])
    assert raw.mode.startswith("I;16") and np.asarray(raw).max() > 300  # millimetres
    back = load_scene(tmp_path)
    assert np.abs(back.depth - scene.depth).max() < 1e-6 and np.array_equal(back.mask, scene.mask)
    assert np.array_equal(back.rgb, scene.rgb) and np.allclose(back.K, scene.K)
    assert [o.name for o in back.objects] == [o.name for o in scene.objects]
    assert np.allclose(back.objects[0].R, scene.objects[0].R)
    meta = json.loads(paths["intrinsics"].read_text())
    assert meta["width"] == 640 and meta["height"] == 480


def test_bad_rgbd_inputs(scene, tmp_path):
    save_scene(scene, tmp_path)
    rgb, depth, mask, intr = (tmp_path / f for f in ("rgb.png", "depth.png", "mask.png", "intrinsics.json"))
    # 8-bit depth
    Image.fromarray((scene.depth * 100).astype(np.uint8)).save(tmp_path / "d8.png")
    with pytest.raises(InputError, match="16-bit"):
        read_rgbd(rgb, tmp_path / "d8.png", mask, intr)
    # wrong size
    write_depth_png(tmp_path / "small.png", scene.depth[::2, ::2])
    with pytest.raises(InputError, match="320x240 but rgb"):
        read_rgbd(rgb, tmp_path / "small.png", mask, intr)
    # all-invalid depth
    write_depth_png(tmp_path / "zero.png", np.zeros_like(scene.depth))
    with pytest.raises(InputError, match="no valid pixel"):
        read_rgbd(rgb, tmp_path / "zero.png", mask, intr)
    # empty mask
    Image.fromarray(np.zeros((480, 640), np.uint8)).save(tmp_path / "m0.png")
    with pytest.raises(InputError, match="mask .* is empty"):
        read_rgbd(rgb, depth, tmp_path / "m0.png", intr)
    # zero focal length
    (tmp_path / "k0.json").write_text(json.dumps({"fx": 0.0, "fy": 500.0, "cx": 320, "cy": 240}))
    with pytest.raises(InputError, match="focal lengths must be positive"):
        read_rgbd(rgb, depth, mask, tmp_path / "k0.json")
    (tmp_path / "k1.json").write_text(json.dumps({"fx": 500.0}))
    with pytest.raises(InputError, match="missing fy, cx, cy"):
        read_intrinsics(tmp_path / "k1.json")
    with pytest.raises(InputError, match="does not exist"):
        read_depth_png(tmp_path / "nope.png")
    # float depth as .npy in metres is accepted
    np.save(tmp_path / "d.npy", scene.depth)
    assert np.allclose(read_rgbd(rgb, tmp_path / "d.npy", mask, intr).depth, scene.depth)


def test_colour_coded_mask(scene, tmp_path):
    save_scene(scene, tmp_path)
    pal = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    Image.fromarray(pal[scene.mask]).save(tmp_path / "mask_rgb.png")
    f = read_rgbd(tmp_path / "rgb.png", tmp_path / "depth.png", tmp_path / "mask_rgb.png", tmp_path / "intrinsics.json")
    assert len(f.instance_ids) == len(scene.instance_ids)
    assert np.array_equal(f.mask > 0, scene.mask > 0)


def test_one_frame_type_and_optional_rgb_mask(scene, tmp_path):
    """A scene is an RGB-D frame (geometry.rgbd.RGBDFrame) with ground truth; read_frame reads a frame
    without rgb or mask (what a viewer shows) with the same checks as read_rgbd."""
    from latent4d.geometry.rgbd import RGBDFrame
    from latent4d.objects.types import Scene

    assert isinstance(scene, RGBDFrame) and isinstance(scene, Scene)
    assert scene.world_to_cam.shape == (4, 4) and scene.normals.shape == (480, 640, 3)
    paths = save_scene(scene, tmp_path)
    f = read_frame(paths["depth"], paths["intrinsics"])
    assert type(f) is RGBDFrame and f.rgb is None and f.mask is None and f.instance_ids == []
    assert (f.width, f.height) == (640, 480) and np.allclose(f.depth, load_scene(tmp_path).depth)
    pts, pix = f.points()
    assert len(pts) == int((f.depth > 0).sum()) and pix.shape == (len(pts), 2)
    g = read_frame(paths["depth"], paths["intrinsics"], mask=paths["mask"])
    assert g.instance_ids == scene.instance_ids
    iid = scene.instance_ids[0]
    assert len(g.points(iid)[0]) == int(((g.mask == iid) & (g.depth > 0)).sum())
    with pytest.raises(InputError, match="no instance mask"):
        f.points(1)
    Image.fromarray(np.zeros((240, 320), np.uint8)).save(tmp_path / "small_mask.png")
    with pytest.raises(InputError, match="320x240 but depth"):
        read_frame(paths["depth"], paths["intrinsics"], mask=tmp_path / "small_mask.png")
    write_depth_png(tmp_path / "far.png", np.full((480, 640), 40.0))
    with pytest.raises(InputError, match="median valid depth"):
        read_frame(tmp_path / "far.png", paths["intrinsics"])
