"""``latent4d bench motion_oflow`` at a tiny size: the O-Flow dataset it writes (held-out lists = ``bench
motion``'s held-out clips), the four experiments trained on it, the official-protocol rows per list and
input mode, the side-by-side rows against ``bench motion``'s evaluation path, loading time against the
training step, and loading throughput / peak memory on the large-frame sequence (here 2,000 points)."""

from __future__ import annotations

import json

import numpy as np
import pytest

TINY = {
    "frames": 5,
    "kinds": ("blob",),
    "train": 3,
    "val": 1,
    "held_out": 1,
    "samples": 400,
    "partial_resolution": 32,
    "common": [
        "data.num_frames=5",
        "data.clip_stride=4",
        "data.n_points=128",
        "data.batch_size=4",
        "motion_latents.shape.num_latents=16",
        "motion_latents.deform.num_latents=16",
        "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1",
    ],
    "extra": {
        # the shape AE of the quick demo (width 32, 40 steps at lr 3e-3): enough to find the blobs' surface
        "shape_ae": [
            "data.n_uniform=128",
            "data.n_near=128",
            "trainer.max_epochs=10",
            "model.lr=3e-3",
            "model.ae.width=32",
            "model.ae.depth=1",
        ],
        "deform_ae": [
            "data.n_queries=64",
            "data.pairs_per_sequence=2",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
        ],
        "shape_diffusion": ["data.n_obs=32", "data.noise=0.002", "trainer.max_epochs=1"],
        "deform_diffusion": ["data.n_obs=32", "data.noise=0.002", "trainer.max_epochs=1"],
    },
    "evaluate": {"steps": 2, "resolution": 24, "n_iou": 2000, "n_chamfer": 2000},
    "loading_items": 2,
    "loading_points": 2000,
}


@pytest.fixture(scope="module")
def oflow_bench(tmp_path_factory):
    from latent4d.bench import BenchReport
    from latent4d.motion import bench, bench_oflow

    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("bench_oflow")
    mp.setattr(bench, "RUNS", tmp / "runs")
    mp.setitem(bench_oflow.OFLOW_SIZES, "quick", TINY)
    report = BenchReport("motion_oflow", True, tmp / "out")
    bench.bench_motion_oflow(report, quick=True)
    yield report, tmp / "runs"
    mp.undo()


def test_dataset_holds_the_motion_bench_held_out_clips(oflow_bench):
    from latent4d.motion.evaluate import held_out
    from latent4d.motion.oflow import OFlowIndex, read_clip_surface

    _, runs = oflow_bench
    cat = runs / "quick_oflow_data" / "procedural"
    lists = {
        s: (cat / f"{s}.lst").read_text().split() for s in ("train", "val", "test", "test_new_individual")
    }
    assert lists["test"] == ["test_motion_00"] and lists["test_new_individual"] == ["test_identity_00"]
    assert len(lists["train"]) == 3 and len(lists["val"]) == 1
    assert len(set(sum(lists.values(), []))) == 6  # no sequence in two lists
    # the unseen-identity list holds bench motion's clip: its frame-0 surface points lie on that mesh
    clip = [c for c in held_out(1, 5, kinds=("blob",)) if c.split == "test_identity"][0]
    index = OFlowIndex(runs / "quick_oflow_data", "test_new_individual", 5, 4, 0, ["procedural"])
    pts = read_clip_surface(index, 0, np.arange(50), np.array([0, 0, 0, 1], np.float32), frames=[0])[0]
    import trimesh

    d = trimesh.proximity.closest_point(clip.sequence.mesh(0), pts)[1]
    assert d.max() < 1e-2


def test_official_rows_per_list_and_mode_and_loading(oflow_bench):
    report, runs = oflow_bench
    rec = {r["metric"]: r for r in report.records}
    saved = json.loads((runs / "quick_oflow_deform_diffusion" / "evaluation_oflow.json").read_text())
    assert set(saved["splits"]) == {"test", "test_new_individual"}
    # frame 0 from the seconds-trained shape diffusion may have no surface: then a note says so
    sampled = [m for m in rec if m.endswith("frame 0 from the shape diffusion: IoU")]
    assert len(sampled) == 4 or any("shape diffusion): " in n and "no surface" in n for n in report.notes)
    for split in ("test", "test_new_individual"):
        for mode in ("sparse", "partial"):
            key = f"{split} / {mode}, frame 0 from the shape AE"
            assert 0.0 <= rec[f"{key}: IoU"]["value"] <= 1.0 and rec[f"{key}: IoU"]["clips"] == 1
            assert np.isfinite(rec[f"{key}: Chamfer-L1"]["value"]) and rec[f"{key}: Chamfer-L1"]["value"] > 0
            assert np.isfinite(rec[f"{key}: correspondence L2"]["value"])
    for exp in ("shape_ae", "deform_ae", "shape_diffusion", "deform_diffusion"):
        assert (runs / f"quick_oflow_{exp}" / "models").is_dir()
        load = next(r for m, r in rec.items() if m.startswith(f"O-Flow {exp}: loading per"))
        step = next(r for m, r in rec.items() if m.startswith(f"O-Flow {exp}: time per training step"))
        ratio = rec[f"O-Flow {exp}: loading a batch / training step"]
        assert load["value"] > 0 and step["value"] > 0 and load["items"] == 2
        batch = int(step["metric"].split("batch ")[1].rstrip(")"))
        assert ratio["value"] == pytest.approx(load["value"] * batch / step["value"])


def test_dataset_is_reused_with_the_same_settings_and_rebuilt_otherwise(oflow_bench):
    from latent4d.bench import BenchReport
    from latent4d.motion.bench_oflow import _oflow_dataset

    _, runs = oflow_bench
    stamp = runs / "quick_oflow_data" / "bench_dataset.json"
    before = stamp.stat().st_mtime_ns
    rep = BenchReport("x", True, runs / "x")
    _oflow_dataset(rep, runs, True, TINY)
    assert stamp.stat().st_mtime_ns == before and any("reused" in n for n in rep.notes)
    _oflow_dataset(rep, runs, True, {**TINY, "val": 2})
    assert len((runs / "quick_oflow_data" / "procedural" / "val.lst").read_text().split()) == 2


def test_side_by_side_with_the_motion_bench_path(oflow_bench):
    """Per frame-0 source, mode and metric: the O-Flow-path value equals the official row of the same
    clips converted to procedural units, the bench-motion-path value is a real measurement, and the
    reported difference and noise follow from the per-clip pairs."""
    report, runs = oflow_bench
    rows = [r for r in report.records if r["metric"].startswith("side by side, ")]
    labels = {r["metric"].split(": ")[1].split(",")[0] for r in rows}
    assert labels == {"IoU", "Chamfer-L1", "correspondence L2"}
    shape_ae = [r for r in rows if "frame 0 from the shape AE" in r["metric"]]
    assert len(shape_ae) == 6  # 2 modes x 3 metrics
    for r in rows:
        pairs = np.array(r["per_clip"])
        assert r["clips"] == len(pairs) == 2  # one unseen-motion + one unseen-identity clip
        assert r["value"] == pytest.approx(r["oflow_path"] - r["bench_motion_path"], abs=1e-9)
        assert r["oflow_path"] == pytest.approx(pairs[:, 0].mean(), abs=1e-4)
        d = pairs[:, 0] - pairs[:, 1]
        assert r["noise_2sem"] == pytest.approx(2 * d.std(ddof=1) / np.sqrt(2), abs=1e-4)
        assert r["met"] == (abs(r["value"]) <= r["noise_2sem"])
        if r["metric"].split(": ")[1].startswith("IoU"):
            assert 0.0 <= r["bench_motion_path"] <= 1.0
        else:
            assert r["bench_motion_path"] > 0
    # the O-Flow-path IoU is the mean of the official rows of both lists (no unit change)
    rec = {r["metric"]: r for r in report.records}
    for mode in ("sparse", "partial"):
        official = np.mean(
            [
                rec[f"{s} / {mode}, frame 0 from the shape AE: IoU"]["value"]
                for s in ("test", "test_new_individual")
            ]
        )
        side = rec[f"side by side, {mode}, frame 0 from the shape AE: IoU, O-Flow path - bench motion path"]
        assert side["oflow_path"] == pytest.approx(official, abs=1e-9)


def test_loading_a_large_frame_sequence(oflow_bench):
    """Throughput and memory rows of the four training loaders on the large-frame sequence, whose files
    hold the configured point count (float16 surface points, packed occupancies)."""
    from latent4d.motion.oflow import npz_member

    report, runs = oflow_bench
    rec = {r["metric"]: r for r in report.records}
    seq = runs / "quick_oflow_100k" / "procedural" / "seq_100k"
    pcl = npz_member(seq / "pcl_seq" / "00000000.npz", "points")
    assert pcl.shape == (2000, 3) and pcl.dtype == np.float16
    occ = npz_member(seq / "points_seq" / "00000004.npz", "occupancies")
    assert occ.dtype == np.uint8 and occ.size == 250
    per_item = {"shape_ae": 1, "deform_ae": 2, "shape_diffusion": 1, "deform_diffusion": 5}
    for exp, frames in per_item.items():
        r = rec[f"2,000-point sequence, {exp}: loading throughput"]
        assert r["frames_per_item"] == frames and r["items"] == 2 and r["value"] > 0
        assert r["value"] == pytest.approx(frames * 1e3 / r["ms_per_item"])
        assert rec[f"2,000-point sequence, {exp}: loading a batch / training step"]["value"] > 0
        assert (
            rec[f"2,000-point sequence, {exp}: numpy / Python peak while streaming (tracemalloc)"]["value"]
            > 0
        )
        assert rec[f"2,000-point sequence, {exp}: RSS growth while streaming"]["rss_before"] > 0
    rss = rec["2,000-point sequence: peak RSS of the loading process"]
    assert rss["value"] >= rss["after_imports"] > 0
    assert rec["2,000-point sequence: size on disk"]["value"] > 0
