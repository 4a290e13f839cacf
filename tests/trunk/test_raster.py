"""The numpy rasteriser behind ``latent4d.render``: coverage, depth order, lines, points."""

import numpy as np
import pytest
import trimesh

from latent4d import raster
from latent4d.errors import InputError
from latent4d.render import render_image


def _cam(w=64, h=48):
    return raster.Camera(eye=np.array([0.0, 0.0, 5.0]), center=np.zeros(3), fov=40.0, width=w, height=h)


def test_projection_centre_and_axes():
    cam = _cam()
    p = cam.project(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert np.allclose(p[0], [32, 24, 5])
    assert p[1, 0] > 32 and np.isclose(p[1, 1], 24)  # +x is to the right
    assert p[2, 1] < 24  # +y is up (smaller row)


def test_nearer_triangle_wins_whatever_the_drawing_order():
    cam = _cam()
    quad = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    red, green = np.tile([1.0, 0, 0], (4, 1)), np.tile([0, 1.0, 0], (4, 1))
    for order in ((0, 1), (1, 0)):
        zb = raster.ZBuffer(64, 48, (1, 1, 1))
        layers = [(quad + [0, 0, 1], red), (quad * [2, 2, 1], green)]  # red in front, green larger behind
        for i in order:
            raster.draw_triangles(zb, cam, layers[i][0], faces, layers[i][1])
        img = zb.image()
        assert img[24, 32, 0] > 200 and img[24, 32, 1] < 50  # centre: the nearer (red) quad
        assert img[24, 5, 1] > 200  # outside the red quad: the green one shows
        assert (img[0, 0] == 255).all()  # the corner is background


def test_lines_and_points_are_drawn_where_projected():
    cam = _cam()
    zb = raster.ZBuffer(64, 48, (1, 1, 1))
    raster.draw_lines(zb, cam, np.array([[-1.0, 0, 0], [1.0, 0, 0]]), np.array([[0, 1]]), np.zeros((1, 3)))
    raster.draw_points(zb, cam, np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 1.0]]), size=3)
    img = zb.image()
    row = img[24]
    dark = np.flatnonzero(row.sum(1) < 30)
    assert dark.min() < 25 and dark.max() > 39 and len(dark) == dark.max() - dark.min() + 1  # unbroken
    p = cam.project(np.array([[0.0, 1.0, 0.0]]))[0]
    y, x = int(p[1]), int(p[0])
    assert img[y, x, 2] > 200 and img[y, x, 0] < 50
    assert (img[:, :, 2] > 200).sum() - (img.sum(2) > 700).sum() <= 9  # a 3 x 3 square of blue


def test_render_backends_agree_on_coverage():
    box = trimesh.creation.box(extents=[1, 1, 1])
    a = render_image([box], width=80, height=60, backend="software")
    b = render_image([box], width=80, height=60, backend="open3d")
    fa, fb = a.min(2) < 200, b.min(2) < 200  # not background (Open3D's white is slightly grey)
    assert abs(fa.mean() - fb.mean()) < 0.05
    with pytest.raises(InputError, match="unknown render backend"):
        render_image([box], backend="povray")
