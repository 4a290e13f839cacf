import numpy as np
import pytest
import trimesh

from latent4d.errors import InputError
from latent4d.geometry import backproject_depth, check_intrinsics, look_at, render_rgbd

K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])


def test_plane_depth_is_analytic():
    plane = trimesh.Trimesh(vertices=[[-5, -5, 2], [5, -5, 2], [5, 5, 2], [-5, 5, 2]], faces=[[0, 1, 2], [0, 2, 3]])
    fr = render_rgbd([plane], K, np.eye(4), 320, 240)
    assert np.allclose(fr.depth, 2.0, atol=1e-5)  # z-depth, not ray length
    assert (fr.mask == 1).all()


def test_sphere_depth_is_analytic_and_backprojects_onto_the_sphere():
    s = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    s.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(s.vertices), 1))
    w2c = look_at([0, 0, -3], [0, 0, 0])
    fr = render_rgbd([s], K, w2c, 320, 240)
    # centre pixel looks straight at the sphere: depth = 3 - 0.5
    assert abs(fr.depth[120, 160] - 2.5) < 2e-3
    assert fr.depth[0, 0] == 0 and fr.mask[0, 0] == 0
    # analytic silhouette radius in pixels: f * r / sqrt(d^2 - r^2)
    area = (fr.mask == 1).sum()
    rad = 300 * 0.5 / np.sqrt(9 - 0.25)
    assert abs(area - np.pi * rad**2) / (np.pi * rad**2) < 0.03
    assert (fr.rgb[fr.mask == 1] == [255, 0, 0]).all()
    pts, pix = backproject_depth(fr.depth, K, fr.mask == 1, cam_to_world=np.linalg.inv(w2c))
    assert len(pts) == area
    assert np.abs(np.linalg.norm(pts, axis=1) - 0.5).max() < 2e-3


def test_instance_ids_and_occlusion():
    near = trimesh.creation.box(extents=[0.5, 0.5, 0.1])
    near.apply_translation([0, 0, 1.0])
    far = trimesh.creation.box(extents=[4, 4, 0.1])
    far.apply_translation([0, 0, 3.0])
    fr = render_rgbd([near, far], K, np.eye(4), 320, 240, ids=[7, 9])
    assert fr.mask[120, 160] == 7 and fr.mask[10, 10] == 9
    assert abs(fr.depth[120, 160] - 0.95) < 1e-4


def test_bad_intrinsics_and_depth():
    with pytest.raises(InputError, match="focal"):
        check_intrinsics([[0, 0, 1], [0, 1, 1], [0, 0, 1]])
    with pytest.raises(InputError, match="3x3"):
        check_intrinsics(np.eye(4))
    with pytest.raises(InputError, match="depth"):
        backproject_depth(np.zeros((2, 3, 4)), K)
    with pytest.raises(InputError, match="mask shape"):
        backproject_depth(np.ones((4, 4)), K, mask=np.ones((3, 3)))


def test_orbit_eye_convention():
    """Azimuth 0 looks from +z, 90 from +x; elevation 90 from above; distance and centre respected."""
    from latent4d.geometry.rgbd import orbit_eye

    c = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(orbit_eye(c, 2.0, 0, 0), c + [0, 0, 2], atol=1e-12)
    np.testing.assert_allclose(orbit_eye(c, 2.0, 90, 0), c + [2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(orbit_eye(c, 2.0, 33, 90), c + [0, 2, 0], atol=1e-12)
    np.testing.assert_allclose(orbit_eye(c, 1.5, np.pi / 3, 0.4, degrees=False), orbit_eye(c, 1.5, 60, np.rad2deg(0.4)))


def test_rgbd_frame_is_the_one_frame_type():
    """render_rgbd returns an RGBDFrame (rgb, depth, mask, K, normals, world_to_cam); frames without
    rgb / mask are allowed; points() back-projects all valid pixels or one instance's."""
    from latent4d.geometry.rgbd import RGBDFrame

    near = trimesh.creation.box(extents=[0.5, 0.5, 0.1])
    near.apply_translation([0, 0, 1.0])
    fr = render_rgbd([near], K, np.eye(4), 320, 240, ids=[3])
    assert isinstance(fr, RGBDFrame) and fr.rgb.dtype == np.uint8 and fr.normals.shape == (240, 320, 3)
    assert (fr.width, fr.height) == (320, 240) and fr.instance_ids == [3]
    pts, pix = fr.points(3)
    assert len(pts) == int((fr.mask == 3).sum()) and np.allclose(pts[:, 2], 0.95, atol=1e-4)
    bare = RGBDFrame(rgb=None, depth=fr.depth, mask=None, K=K)
    assert bare.instance_ids == [] and bare.world_to_cam is None and len(bare.points()[0]) == len(pts)
    with pytest.raises(InputError, match="no instance mask"):
        bare.points(3)
