"""``latent4d bench motion_oflow`` at a tiny size: the O-Flow dataset it writes (held-out lists = ``bench
motion``'s held-out clips), the four experiments trained on it, the official-protocol rows per list and
input mode, and loading time against the training step."""

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
}


@pytest.fixture(scope="module")
def oflow_bench(tmp_path_factory):
    from latent4d.bench import BenchReport
    from latent4d.motion import bench

    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("bench_oflow")
    mp.setattr(bench, "RUNS", tmp / "runs")
    mp.setitem(bench.OFLOW_SIZES, "quick", TINY)
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
    from latent4d.motion import bench

    _, runs = oflow_bench
    stamp = runs / "quick_oflow_data" / "bench_dataset.json"
    before = stamp.stat().st_mtime_ns
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "RUNS", runs)
        rep = BenchReport("x", True, runs / "x")
        bench._oflow_dataset(rep, True, TINY)
        assert stamp.stat().st_mtime_ns == before and any("reused" in n for n in rep.notes)
        bench._oflow_dataset(rep, True, {**TINY, "val": 2})
        assert len((runs / "quick_oflow_data" / "procedural" / "val.lst").read_text().split()) == 2
