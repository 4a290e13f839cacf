import numpy as np
import pytest
import torch

from latent4d.errors import InputError
from latent4d.geometry.sdf import MeshSDF
from latent4d.motion.data import DeformPairDataset, ShapeFrameDataset, check_arrays, frame_samples
from latent4d.motion.observe import (
    camera_path,
    check_sequence,
    partial_observation,
    resample_frames,
    sparse_observation,
)


def test_frame_samples_correspond_and_labels_match(blob_clip):
    seq, surface = blob_clip
    smp = frame_samples(seq.vertices, seq.faces, 256, 300, 300, rng=1)
    assert smp["surface"].shape == (4, 256, 3)
    for t in (0, 3):  # the shared (face, barycentric) samples lie on every frame's surface
        assert MeshSDF(seq.mesh(t)).unsigned_distance(smp["surface"][t]).max() < 1e-5
    occ = MeshSDF(seq.mesh(2)).occupancy(smp["uniform"][2].astype(np.float32))
    assert (occ == smp["uniform_occ"][2]).mean() > 0.99
    assert 0.2 < smp["near_occ"].mean() < 0.8  # near-surface points straddle the surface


def test_sparse_observation_corresponds(blob_clip):
    seq, surface = blob_clip
    obs = sparse_observation(surface, 100, 0.0, rng=0)
    idx = [np.argmin(np.linalg.norm(surface[0] - p, axis=1)) for p in obs[0][:10]]
    np.testing.assert_allclose(obs[3][:10], surface[3][idx], atol=1e-6)
    noisy = sparse_observation(surface, 100, 0.01, rng=0)
    assert 0.005 < np.abs(noisy - obs).std() < 0.02
    with pytest.raises(InputError, match="asked for 500"):
        sparse_observation(surface, 500)


def test_partial_observation_sees_one_side(blob_clip):
    seq, _ = blob_clip
    obs = partial_observation(seq.vertices, seq.faces, 200, "fixed", 0.0, rng=3, resolution=48)
    assert obs.shape == (4, 200, 3)
    eye = camera_path(4, "fixed", np.random.default_rng(3))[0]
    # every point lies on the surface, and on the camera's side of the centre
    assert MeshSDF(seq.mesh(0)).unsigned_distance(obs[0]).max() < 0.01
    side = (obs[0] - seq.vertices[0].mean(0)) @ (eye / np.linalg.norm(eye))
    assert (side > -0.02).mean() > 0.95
    moving = camera_path(5, "moving", np.random.default_rng(0))
    assert np.linalg.norm(moving[0] - moving[-1]) > 0.5


def test_resample_and_bad_sequences():
    frames = [np.random.rand(n, 3).astype(np.float32) for n in (10, 50, 300)]
    out = resample_frames(frames, 64, rng=0)
    assert out.shape == (3, 64, 3)
    assert np.isin(out[2][:, 0], frames[2][:, 0]).all() and np.isin(out[0][:, 0], frames[0][:, 0]).all()
    with pytest.raises(InputError, match="empty"):
        check_sequence([])
    with pytest.raises(InputError, match="at least 2 frames"):
        check_sequence([np.zeros((5, 3))])
    with pytest.raises(InputError, match="frame 1 has no points"):
        check_sequence([np.zeros((5, 3)), np.zeros((0, 3))])
    bad = np.zeros((5, 3))
    bad[2, 1] = np.nan
    with pytest.raises(InputError, match="frame 1 contains NaN"):
        check_sequence([np.zeros((5, 3)), bad])


def _arrays(surface):
    T = surface.shape[0]
    n = 64
    rng = np.random.default_rng(0)
    return {
        "surface": surface[None],
        "uniform": rng.random((1, T, n, 3)).astype(np.float16),
        "uniform_occ": rng.random((1, T, n)) > 0.5,
        "near": rng.random((1, T, n, 3)).astype(np.float16),
        "near_occ": rng.random((1, T, n)) > 0.5,
    }


def test_datasets_items(blob_clip):
    _, surface = blob_clip
    a = _arrays(surface)
    ds = ShapeFrameDataset(a, n_points=128, n_uniform=32, n_near=16, deterministic=True)
    it = ds[2]
    assert it["points"].shape == (128, 3) and it["queries"].shape == (48, 3) and it["near"].sum() == 16
    assert torch.equal(ds[2]["points"], it["points"])  # deterministic
    dp = DeformPairDataset(a, n_points=100, n_queries=50, deterministic=True)
    assert len(dp) == 3
    it = dp[1]
    src, tgt = it["frames"].tolist()
    assert (src, tgt) == (0, 2)
    i = int(np.argmin(np.linalg.norm(surface[0] - it["query"][0].numpy(), axis=1)))
    np.testing.assert_allclose(it["query_target"][0].numpy(), surface[2][i], atol=1e-6)
    with pytest.raises(InputError, match="1024 input points"):
        ShapeFrameDataset(a, n_points=1024)


def test_aspect_augmentation_scales_cloud_and_queries_together(blob_clip):
    from latent4d.errors import ConfigError

    _, surface = blob_clip
    a = _arrays(surface)
    plain = ShapeFrameDataset(
        a, n_points=128, n_uniform=32, n_near=16, deterministic=True, augment_aspect=0.6
    )
    assert torch.equal(plain[1]["points"], ShapeFrameDataset(a, 128, 32, 16, deterministic=True)[1]["points"])
    ds = ShapeFrameDataset(a, n_points=surface.shape[1], n_uniform=64, n_near=64, augment_aspect=0.6)
    torch.manual_seed(0)
    ratios = []
    for _ in range(40):
        it = ds[0]
        # every stored point is drawn (n = stored count), so the extents compare the whole cloud
        f = (it["points"].max(0).values - it["points"].min(0).values) / torch.from_numpy(
            np.ptp(surface[0].astype(np.float32), 0)
        )
        ratios.append(f)
        assert it["occ"].shape == (128,)
    r = torch.stack(ratios)
    assert torch.allclose(r.max(1).values, torch.ones(40), atol=1e-4)  # one axis keeps its extent
    assert (r.min(1).values < 0.95).sum() >= 8 and r.min() >= 0.6 - 1e-4  # others shrink, within range
    assert (r.min(1).values > 1 - 1e-4).sum() >= 8  # about half the items are left as they are
    with pytest.raises(ConfigError, match="augment_aspect"):
        ShapeFrameDataset(a, n_points=128, augment_aspect=1.5)


def test_check_arrays_mismatched_frames(blob_clip):
    _, surface = blob_clip
    a = _arrays(surface)
    a["uniform"] = a["uniform"][:, :2]
    with pytest.raises(InputError, match="mismatched frame counts"):
        check_arrays(a, "x")
    a = _arrays(surface[:1])
    with pytest.raises(InputError, match="at least 2 frames"):
        check_arrays(a, "x")
