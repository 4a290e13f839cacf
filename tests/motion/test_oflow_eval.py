"""The paper's evaluation protocol on O-Flow data (``latent4d evaluate ... data.source=oflow``) and
``reconstruct motion`` from an O-Flow ``pcl_seq`` folder: the metrics against a hand computation on one
clip, and both commands end to end on a tiny dataset made by scripts/prepare_motion_dataset.py."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import trimesh
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]


def _nn(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: for each row of a, (distance to, index of) its nearest row of b."""
    d = np.linalg.norm(a[:, None].astype(np.float64) - b[None].astype(np.float64), axis=-1)
    return d.min(1), d.argmin(1)


def test_official_metrics_match_a_hand_computation():
    from latent4d.geometry.sampling import sample_surface
    from latent4d.motion.evaluate import official_clip_metrics

    box = trimesh.creation.box(extents=(0.6, 0.4, 0.4))
    shift = np.array([0.05, 0.0, 0.0])
    T = 3
    verts = np.stack([box.vertices + t * shift for t in range(T)]).astype(np.float32)  # predicted track
    rng = np.random.default_rng(0)
    # the "true" clip: the same box 0.02 further along x, 300 corresponding surface points
    surf, _, _ = sample_surface(box.vertices, box.faces, 300, 1)
    pcl = np.stack([surf + t * shift + [0.02, 0, 0] for t in range(T)]).astype(np.float32)
    points = rng.uniform(-0.5, 0.5, (T, 2000, 3)).astype(np.float32)
    half = np.array([0.3, 0.2, 0.2])
    occ = np.stack([(np.abs(points[t] - t * shift - [0.02, 0, 0]) <= half).all(1) for t in range(T)])

    m = official_clip_metrics(verts, box.faces, pcl, points, occ, n_chamfer=500, seed=7)

    _, ind = _nn(verts[0], pcl[0])  # frame-0 vertices matched once to the frame-0 points
    for t in range(T):
        pred_in = (np.abs(points[t] - t * shift) <= half).all(1)
        hand_iou = (pred_in & occ[t]).sum() / (pred_in | occ[t]).sum()
        assert m["iou"][t] == pytest.approx(hand_iou, abs=2e-3)  # (a point on a face may go either way)
        samples, _, _ = sample_surface(verts[t], box.faces, 500, 7 + t)
        acc, _ = _nn(samples, pcl[t])
        comp, _ = _nn(pcl[t], samples)
        assert m["chamfer_l1"][t] == pytest.approx((acc.mean() + comp.mean()) / 2, rel=1e-4)
        corr = np.linalg.norm(verts[t] - pcl[t][ind], axis=-1).mean()
        assert m["corr_l2"][t] == pytest.approx(corr, rel=1e-5)
    assert 0.85 < m["iou_mean"] < 0.97  # a 0.02 shift of a 0.6-wide box
    assert m["corr_l2_mean"] == pytest.approx(np.mean(m["corr_l2"]))
    assert m["corr_l2_moving_mean"] == pytest.approx(np.mean(m["corr_l2"][1:]))


def _prepare():
    """``main`` of scripts/prepare_motion_dataset.py."""
    return runpy.run_path(str(ROOT / "scripts/prepare_motion_dataset.py"))["main"]


@pytest.fixture(scope="module")
def oflow_root(tmp_path_factory):
    """Five blob sequences of 7 frames (world units: x1.7 + 0.3), prepared into the O-Flow layout."""
    from latent4d.motion.synthetic import procedural_sequence

    tmp = tmp_path_factory.mktemp("oflow_eval")
    names = ("1000_walk", "1000_bend", "1000_twist", "1001_wave", "1002_bend")
    for k, name in enumerate(names):
        seq = procedural_sequence(int(name[:4]), k, num_frames=7, kinds=("blob",))
        d = tmp / "meshes" / name
        d.mkdir(parents=True)
        for t, v in enumerate(seq.vertices):
            trimesh.Trimesh(v * 1.7 + 0.3, seq.faces, process=False).export(d / f"frame_{t:03d}.obj")
    args = [str(tmp / "meshes"), str(tmp / "oflow"), "--category", "toys", "--surface", "3000"]
    args += ["--uniform", "3000", "--near", "200", "--val", "0.25", "--test", "0.25", "--identity"]
    args += [r"^(\d+)_", "--new-individuals", "0.34", "--partial-resolution", "48"]
    assert _prepare()(args) == 0
    return tmp / "oflow"


def test_evaluate_official_protocol_on_an_oflow_split(tiny_runs, oflow_root):
    from latent4d.config import load_run_config
    from latent4d.motion import commands

    run = tiny_runs["deform_diffusion"]
    args = {"data": {"source": "oflow", "root": str(oflow_root)}, "mode": "all", "clips": 1}
    args.update(resolution=24, steps=2, n_iou=2000, n_chamfer=2000)
    res = commands.evaluate(run, load_run_config(run), OmegaConf.create(args))
    saved = json.loads((run / "evaluation_oflow.json").read_text())
    assert set(saved["splits"]) == {"test", "test_new_individual"}
    for split in saved["splits"].values():
        assert set(split) == {"sparse", "partial"}
        for r in split.values():
            assert r["clips"] == 1 and 0.0 <= r["iou"] <= 1.0 and np.isfinite(r["chamfer_l1"])
            row = r["rows"][0]
            assert len(row["iou"]) == 5 and len(row["corr_l2"]) == 5  # the run's 5-frame windows
            # latent4d units: the clip fills [-0.5, 0.5] (the dataset's units are 1.7x larger here)
            assert r["latent4d_units"]["chamfer_l1_mean"] > r["chamfer_l1"]
    assert res["protocol"]["corr_l2"].startswith("each frame-0 vertex")
    with pytest.raises(Exception, match="deformation diffusion run"):
        commands.evaluate(
            tiny_runs["shape_ae"], load_run_config(tiny_runs["shape_ae"]), OmegaConf.create(args)
        )
    with pytest.raises(Exception, match="data.root"):
        commands.evaluate(run, load_run_config(run), OmegaConf.create({"data": {"source": "oflow"}}))


def _float16_copy(src: Path, dst: Path) -> Path:
    """``src`` (a pcl_seq folder) with float16 points, as D-FAUST's pcl_seq ships."""
    dst.mkdir(parents=True)
    for f in sorted(src.glob("*.npz")):
        d = dict(np.load(f))
        np.savez(dst / f.name, points=d["points"].astype(np.float16), loc=d["loc"], scale=d["scale"])
    return dst


def test_pcl_seq_folder_is_read_in_world_units_with_corresponding_subsets(oflow_root, tmp_path):
    from latent4d.motion.io import read_sequence

    folder = _float16_copy(oflow_root / "toys" / "1000_walk" / "pcl_seq", tmp_path / "pcl_seq")
    full = np.stack(read_sequence(folder))  # every point: world = loc + scale * points
    d = np.load(folder / "00000002.npz")
    assert d["points"].dtype == np.float16 and full.shape == (7, 3000, 3)
    np.testing.assert_allclose(full[2], d["loc"] + d["scale"] * d["points"].astype(np.float32), atol=1e-5)
    lo, hi = full.reshape(-1, 3).min(0), full.reshape(-1, 3).max(0)
    assert (hi - lo).max() > 1.0  # world units (the meshes were scaled by 1.7), not the stored [-0.5, 0.5]
    sub = np.stack(read_sequence(folder, max_points=200, seed=3))
    assert sub.shape == (7, 200, 3)
    idx = [int(np.flatnonzero((full[0] == p).all(1))[0]) for p in sub[0]]
    np.testing.assert_array_equal(sub, full[:, idx])  # one index set for every frame: still corresponding


def test_reconstruct_from_an_oflow_pcl_seq_folder(tiny_runs, oflow_root, tmp_path):
    from latent4d.motion import commands

    folder = _float16_copy(oflow_root / "toys" / "1000_walk" / "pcl_seq", tmp_path / "pcl_seq")
    out = tmp_path / "rec"
    opts = [f"input={folder}", f"out={out}", f"shape_run={tiny_runs['shape_diffusion']}"]
    opts += [f"deform_run={tiny_runs['deform_diffusion']}", "render=false", "steps=2", "resolution=24"]
    commands.reconstruct([*opts, "max_points=500", "guidance=0", "fuse=false", "n_obs=64"])
    tr = np.load(out / "sample_00" / "trajectories.npz")
    assert tr["observations"].shape == (7, 64, 3)
    obs = tr["observations"].reshape(-1, 3)
    assert (obs.max(0) - obs.min(0)).max() > 1.0  # the outputs are in the capture's (world) units
    assert np.isfinite(tr["vertices"]).all() and len(tr["vertices"]) == 7


def test_official_demo_frames_are_read_in_frame_order(tmp_path):
    from latent4d.motion.io import read_sequence

    for t in range(12):  # inputs_0 ... inputs_11 (the official demo layout): 10 and 11 come last
        np.savetxt(tmp_path / f"inputs_{t}.xyz", np.full((4, 3), float(t)))
    frames = read_sequence(tmp_path)
    assert [float(f[0, 0]) for f in frames] == [float(t) for t in range(12)]


def _sphere_depth(center: np.ndarray, r: float, fx: float, c: float, size: int, wall: float) -> np.ndarray:
    """Depth (metres) along z of a sphere in front of a wall, pinhole camera (OpenCV frame)."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    ray = np.stack([(u - c) / fx, (v - c) / fx, np.ones_like(u)], -1)  # z = 1
    a, b = (ray**2).sum(-1), -2 * (ray @ center)
    disc = b**2 - 4 * a * (center @ center - r * r)
    z = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    return np.minimum(z, wall)


def test_depth_image_sequence_is_backprojected(tmp_path):
    from PIL import Image

    from latent4d.motion.io import read_sequence

    fx, c, size = 100.0, 31.5, 64
    (tmp_path / "intrinsics.json").write_text(json.dumps({"fx": fx, "fy": fx, "cx": c, "cy": c}))
    centers = [np.array([0.02 * t, 0.05, 2.0]) for t in range(3)]
    for t, ctr in enumerate(centers):
        mm = np.rint(_sphere_depth(ctr, 0.3, fx, c, size, wall=4.0) * 1000).astype(np.uint16)
        Image.fromarray(mm).save(tmp_path / f"depth_{t}.png")
    frames = read_sequence(tmp_path, depth_max=3.0)
    everything = read_sequence(tmp_path)  # the wall too
    assert len(frames) == 3 and all(len(a) > len(f) for a, f in zip(everything, frames))
    for f, ctr in zip(frames, centers):
        ctr_up = ctr * [1, -1, -1]  # the camera frame turned y-up
        assert np.abs(np.linalg.norm(f - ctr_up, axis=1) - 0.3).max() < 0.01
    assert len(read_sequence(tmp_path, max_points=50)[0]) == 50
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(tmp_path / "depth_3.png")
    with pytest.raises(Exception, match="32x32 pixels"):
        read_sequence(tmp_path)


def test_reconstruct_from_a_depth_image_sequence(tiny_runs, tmp_path):
    from PIL import Image

    from latent4d.motion import commands

    depth = tmp_path / "depth"
    depth.mkdir()
    (depth / "intrinsics.json").write_text(json.dumps({"fx": 100.0, "fy": 100.0, "cx": 31.5, "cy": 31.5}))
    for t in range(5):
        z = _sphere_depth(np.array([0.02 * t, 0.0, 2.0]), 0.3, 100.0, 31.5, 64, wall=4.0)
        Image.fromarray(np.rint(z * 1000).astype(np.uint16)).save(depth / f"{t:04d}.png")
    out = tmp_path / "rec"
    opts = [f"input={depth}", f"out={out}", f"shape_run={tiny_runs['shape_diffusion']}", "depth_max=3"]
    opts += [f"deform_run={tiny_runs['deform_diffusion']}", "render=false", "steps=2", "resolution=24"]
    commands.reconstruct([*opts, "mode=partial", "guidance=0", "fuse=false", "n_obs=64"])
    tr = np.load(out / "sample_00" / "trajectories.npz")
    assert tr["observations"].shape == (5, 64, 3)
    assert -2.0 < tr["observations"][..., 2].mean() < -1.7  # the sphere's near side, metres, turned y-up


def test_long_captures_run_in_windows_overlapping_by_one_frame():
    from latent4d.motion.reconstruct import windows

    assert list(windows(17, 17)) == [(0, 17)]
    spans = list(windows(300, 17))  # a long capture: shown with a progress bar
    assert spans[0] == (0, 17) and spans[-1][1] == 300 and len(spans) == 19
    assert all(b[0] == a[1] - 1 and b[1] - b[0] <= 17 for a, b in zip(spans, spans[1:]))


def test_bench_pcl_scores_a_reconstruction_folder_against_the_stored_truth(oflow_root, tmp_path):
    """``bench motion_oflow``'s reconstruct rows: an output folder holding the true meshes (world units)
    scores near-perfectly with the official protocol; the meshes moved by 5 % of the size score worse."""
    from latent4d.motion.bench_pcl import _score
    from latent4d.motion.io import write_tracked_sequence
    from latent4d.motion.oflow import read_split_list

    seq = read_split_list(oflow_root, "test", ["toys"])[0]
    frames = sorted((oflow_root.parent / "meshes" / seq.name).glob("frame_*.obj"))
    meshes = [trimesh.load(f, process=False) for f in frames]
    verts = np.stack([m.vertices for m in meshes]).astype(np.float32)
    write_tracked_sequence(tmp_path / "true" / "sample_00", verts, meshes[0].faces, None)
    write_tracked_sequence(tmp_path / "moved" / "sample_00", verts + 0.05 * 1.7, meshes[0].faces, None)
    good = _score(oflow_root, "toys", "test", tmp_path / "true", 3000, 3000)
    bad = _score(oflow_root, "toys", "test", tmp_path / "moved", 3000, 3000)
    assert good["sequence"] == f"toys/{seq.name}" and len(good["iou"]) == 7
    assert good["iou_mean"] > 0.9 and good["chamfer_l1_mean"] < 0.02 and good["corr_l2_mean"] < 0.02
    assert bad["iou_mean"] < good["iou_mean"] - 0.1 and bad["corr_l2_mean"] > good["corr_l2_mean"] + 0.03
