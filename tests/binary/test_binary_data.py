"""Binary family data: digits, image folders (mixed / broken files), photos, procedural and mesh voxels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent4d.binary.data import (
    ImageDataModule,
    VoxelDataModule,
    digits_arrays,
    load_image_folder,
    load_mesh_folder,
    photo_crops,
    split_indices,
)
from latent4d.binary.synthetic import SHAPE_CATEGORIES, grid_points, shape_dataset, shape_occupancy
from latent4d.errors import ConfigError, InputError


def test_digits_are_real_and_upsampled():
    x, y = digits_arrays(16)
    assert x.shape == (1797, 1, 16, 16) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
    assert sorted(np.unique(y).tolist()) == list(range(10))


def test_splits_are_disjoint_stratified_and_seeded():
    _, y = digits_arrays(8)
    a = split_indices(len(y), y, 0.1, 0.2, seed=3)
    b = split_indices(len(y), y, 0.1, 0.2, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    allidx = np.concatenate([a["train"], a["val"], a["test"]])
    assert len(np.unique(allidx)) == len(y) == len(allidx)
    assert abs(len(a["test"]) - 0.2 * len(y)) <= 1
    assert np.bincount(y[a["test"]]).min() >= 30  # every digit present in the held-out split


def test_digits_datamodule_batches():
    dm = ImageDataModule(source="digits", image_size=16, batch_size=32, seed=0)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 16, 16) and y.dtype == torch.long
    assert dm.num_classes == 10


def test_array_datamodules_use_the_split_loader_rule():
    """One loader rule (latent4d.datamodule.SplitDataModule): shuffled training batches drop the last
    incomplete one, validation / test keep every sample in order; the tensors are built once."""
    from latent4d.datamodule import SplitDataModule

    dm = ImageDataModule(source="digits", image_size=8, batch_size=100, seed=0)
    assert isinstance(dm, SplitDataModule)
    x_train, _ = dm.arrays("train")
    assert len(dm.train_dataloader()) == len(x_train) // 100 and len(x_train) % 100
    x_val, y_val = dm.arrays("val")
    xs, ys = zip(*dm.val_dataloader(), strict=True)
    assert torch.equal(torch.cat(xs), x_val) and torch.equal(torch.cat(ys), y_val)
    assert dm.arrays("train")[0] is x_train


def _write_images(root):
    from PIL import Image

    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(root / "cats" / "rgb.jpg")
    Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), mode="L").save(root / "cats" / "gray.png")
    rgba = np.zeros((30, 25, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 0  # fully transparent red -> white after compositing
    Image.fromarray(rgba, mode="RGBA").save(root / "dogs" / "transparent.png")
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), mode="L").convert("P").save(
        root / "dogs" / "palette.gif")
    (root / "dogs" / "broken.png").write_bytes(b"not an image at all")
    (root / "dogs" / "notes.txt").write_text("ignored")


def test_image_folder_converts_mixed_inputs_and_skips_broken(tmp_path):
    _write_images(tmp_path)
    with pytest.warns(UserWarning, match="broken.png"):
        x, y, names = load_image_folder(tmp_path, image_size=12, channels=3)
    assert x.shape == (4, 3, 12, 12) and x.dtype == np.float32
    assert names == ["cats", "dogs"] and sorted(y.tolist()) == [0, 0, 1, 1]
    files = sorted(["cats/gray.png", "cats/rgb.jpg", "dogs/palette.gif", "dogs/transparent.png"])
    transparent = x[files.index("dogs/transparent.png")]
    np.testing.assert_allclose(transparent, 1.0, atol=1e-6)  # composited onto white
    gray = x[files.index("cats/gray.png")]
    np.testing.assert_allclose(gray[0], gray[1])  # grayscale replicated to RGB
    with pytest.warns(UserWarning):
        x1, _, _ = load_image_folder(tmp_path, image_size=8, channels=1)
    assert x1.shape == (4, 1, 8, 8)


def test_image_folder_without_images_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no readable images"):
        load_image_folder(tmp_path, 16)
    (tmp_path / "bad.jpg").write_bytes(b"\x00\x01")
    with pytest.warns(UserWarning, match="bad.jpg"), pytest.raises(InputError, match="no readable images"):
        load_image_folder(tmp_path, 16)
    with pytest.raises(InputError, match="does not exist"):
        load_image_folder(tmp_path / "missing", 16)
    with pytest.raises(ConfigError, match="root"):
        ImageDataModule(source="folder")


def test_photo_crops_from_disjoint_regions():
    tr = photo_crops(6, 16, "train", seed=0, photos=("astronaut", "camera"), photo_short_side=64)
    te = photo_crops(6, 16, "test", seed=0, photos=("astronaut", "camera"), photo_short_side=64)
    assert tr.shape == te.shape == (6, 3, 16, 16)
    assert 0 <= tr.min() and tr.max() <= 1 and tr.std() > 0.02
    assert not np.allclose(tr, te)


def test_procedural_shapes_are_nonempty_inside_and_labelled():
    for cat in SHAPE_CATEGORIES:
        occ = shape_occupancy(cat, seed=1, resolution=32)
        assert occ.shape == (32, 32, 32) and occ.dtype == bool
        assert 0.01 < occ.mean() < 0.6, cat
        border = np.concatenate([occ[0].ravel(), occ[-1].ravel(), occ[:, 0].ravel(), occ[:, -1].ravel(),
                                 occ[:, :, 0].ravel(), occ[:, :, -1].ravel()])
        assert not border.any(), cat
    assert not np.array_equal(shape_occupancy("box", 1), shape_occupancy("box", 2))
    d = shape_dataset(2, 16)
    assert d["occupancy"].shape == (12, 16, 16, 16) and d["labels"].tolist() == sorted(list(range(6)) * 2)


def test_voxel_datamodule_primitives():
    dm = VoxelDataModule(source="primitives", resolution=16, n_per_category=10, batch_size=8)
    x, y = dm.arrays("train")
    assert x.shape[1:] == (1, 16, 16, 16) and set(torch.unique(x).tolist()) <= {0.0, 1.0}
    assert dm.num_classes == 6 and y.max() == 5
    assert sum(len(dm.arrays(s)[0]) for s in ("train", "val", "test")) == 60


def test_mesh_folder_voxelised_and_broken_skipped(tmp_path):
    import trimesh

    (tmp_path / "a").mkdir()
    trimesh.creation.icosphere(subdivisions=3, radius=2.0).export(tmp_path / "a" / "sphere.ply")
    trimesh.creation.box(extents=(1, 1, 1)).export(tmp_path / "a" / "box.obj")
    (tmp_path / "a" / "broken.stl").write_bytes(b"solid nonsense garbage")
    with pytest.warns(UserWarning, match="broken.stl"):
        occ, labels, names = load_mesh_folder(tmp_path, resolution=24)
    assert occ.shape == (2, 24, 24, 24) and names == [] and (labels == -1).all()
    # the sphere is scaled so its bounding-box half-diagonal is 0.95: radius 0.95 / sqrt(3)
    r = 0.95 / np.sqrt(3)
    ref = (grid_points(24) ** 2).sum(-1) <= r ** 2
    sphere = occ[1]  # sorted: box.obj, sphere.ply
    inter, union = (sphere & ref).sum(), (sphere | ref).sum()
    assert inter / union > 0.85
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no readable meshes"):
        load_mesh_folder(tmp_path / "empty", resolution=8)


def test_objects_family_shapes_voxelised():
    pytest.importorskip("latent4d.objects.synthetic")
    from latent4d.binary.data import objects_occupancy

    d = objects_occupancy(1, resolution=16)
    assert d["occupancy"].shape == (len(d["names"]), 16, 16, 16)
    assert (d["occupancy"].reshape(len(d["names"]), -1).sum(1) >= 8).all()  # every object has an inside
    assert d["labels"].tolist() == list(range(len(d["names"])))
