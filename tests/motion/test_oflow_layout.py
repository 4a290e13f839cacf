"""A real-layout fixture: procedural mesh sequences exported as OBJ frames go through
scripts/prepare_motion_dataset.py into the O-Flow / Motion2VecSets layout; the four motion
experiments (experiment=motion/dfaust/*, CPU presets) train on it a few steps, streamed and cached.
Nothing is downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import trimesh

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("1000_walk", "1000_bend", "1000_twist", "1001_walk", "1001_wave", "1002_bend")


def _prepare():
    spec = importlib.util.spec_from_file_location(
        "prepare_motion_dataset", ROOT / "scripts/prepare_motion_dataset.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _export(folder: Path, vertices, faces) -> None:
    folder.mkdir(parents=True)
    for t, v in enumerate(vertices):
        trimesh.Trimesh(v, faces, process=False).export(folder / f"frame_{t:03d}.obj")


@pytest.fixture(scope="module")
def oflow_root(tmp_path_factory):
    from latent4d.motion.synthetic import procedural_sequence

    tmp = tmp_path_factory.mktemp("oflow_layout")
    for k, name in enumerate(NAMES):
        seq = procedural_sequence(int(name[:4]), k, num_frames=10, kinds=("blob",))
        _export(tmp / "meshes" / name, seq.vertices * 1.7 + 0.3, seq.faces)
    args = [
        str(tmp / "meshes"),
        str(tmp / "oflow"),
        "--category",
        "toys",
        "--surface",
        "800",
        "--uniform",
        "600",
        "--near",
        "600",
        "--val",
        "0.2",
        "--test",
        "0.2",
        "--identity",
        r"^(\d+)_",
        "--new-individuals",
        "0.34",
        "--partial-resolution",
        "48",
    ]
    assert _prepare()(args) == 0
    return tmp / "oflow"


def test_prepared_layout_and_disjoint_splits(oflow_root):
    cat = oflow_root / "toys"
    lists = {
        s: (cat / f"{s}.lst").read_text().split() for s in ("train", "val", "test", "test_new_individual")
    }
    everything = sum(lists.values(), [])
    assert sorted(everything) == sorted(NAMES)  # each sequence in exactly one list
    held = {n[:4] for n in lists["test_new_individual"]}
    assert len(held) == 1 and all(n[:4] not in held for s in ("train", "val", "test") for n in lists[s])
    for folder in ("pcl_seq", "points_seq", "points_near_seq", "depth_rotate45"):
        assert len(list((cat / NAMES[0] / folder).glob("*.npz"))) == 10
    d = np.load(cat / NAMES[0] / "points_seq/00000003.npz")
    assert (
        d["points"].dtype == np.float16 and d["occupancies"].dtype == np.uint8 and d["occupancies"].size == 75
    )


def test_too_few_sequences_is_refused(tmp_path, blob_clip):
    seq, _ = blob_clip
    _export(tmp_path / "one" / "only", seq.vertices, seq.faces)
    out = tmp_path / "out"
    assert (
        _prepare()([str(tmp_path / "one"), str(out), "--surface", "50", "--uniform", "50", "--near", "50"])
        == 2
    )
    assert not out.exists()  # nothing written: one sequence cannot be train, val and test at once


def test_exported_animation_parts_seams_and_holes(tmp_path, capsys):
    """Two interpenetrating closed boxes, exported with seam-duplicated vertices, and an open box."""
    from latent4d.motion.oflow import read_queries

    a = trimesh.creation.box(extents=(1.0, 0.4, 0.4))
    b = trimesh.creation.box(extents=(0.4, 1.0, 0.4))
    parts = trimesh.util.concatenate([a, b])
    # UV seams: every face gets its own three vertices (what OBJ exporters do along seams, at worst)
    v, f = parts.vertices[parts.faces].reshape(-1, 3), np.arange(len(parts.faces) * 3).reshape(-1, 3)
    for k in range(2):
        _export(tmp_path / "in" / f"s{k}", np.stack([v * (1 + 0.05 * t) for t in range(3)]), f)
    opened = trimesh.creation.box()
    _export(tmp_path / "in" / "s2", np.stack([opened.vertices] * 3), opened.faces[2:])
    out = tmp_path / "out"
    args = [
        str(tmp_path / "in"),
        str(out),
        "--surface",
        "300",
        "--uniform",
        "4000",
        "--near",
        "100",
        "--val",
        "0.3",
        "--test",
        "0.3",
        "--no-partial",
    ]
    assert _prepare()(args) == 0
    printed = capsys.readouterr().out
    assert "WARNING s2: not watertight" in printed and "s0: 3 frames, 2 part(s)" in printed
    assert "WARNING s0" not in printed  # the seams were welded: the parts are closed
    path = out / "sequences/s0/points_seq/00000000.npz"
    world, occ = read_queries(path, np.arange(4000), np.zeros(3, np.float32), 1.0)  # world units (frame 0)
    scale = float(np.load(path)["scale"])
    inside = (np.abs(world) <= [0.5, 0.2, 0.2]).all(1) | (np.abs(world) <= [0.2, 0.5, 0.2]).all(1)
    near_edge = (np.abs(np.abs(world) - 0.5) < 0.01 * scale).any(1) | (
        np.abs(np.abs(world) - 0.2) < 0.01 * scale
    ).any(1)
    assert (occ == inside)[~near_edge].mean() > 0.995  # the overlap of the two parts is inside (union)
    rep = __import__("json").loads((out / "sequences/prepare_report.json").read_text())["sequences"]
    assert rep["s0"]["n_parts"] == 2 and rep["s0"]["open_edges"] == 0 and rep["s2"]["open_edges"] > 0


def _train(exp: str, root: Path, out: Path, *extra: str):
    from latent4d.train import compose_config, run_training

    overrides = [
        f"experiment=motion/dfaust/{exp}",
        f"preset=motion_oflow_{exp}_cpu",
        f"data.root={root}",
        "data.category=toys",
        "callbacks=minimal",
        "logger=csv",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1",
        "+trainer.enable_progress_bar=false",
        "data.num_frames=5",
        "data.clip_stride=4",
        "data.n_points=128",
        "data.batch_size=4",
        *extra,
    ]
    cfg = compose_config(overrides, out)
    run_training(cfg)
    return cfg


def test_four_experiments_train_on_the_layout(oflow_root, tmp_path, monkeypatch):
    import latent4d.motion.oflow as oflow

    monkeypatch.setenv("LATENT4D_CACHE", str(tmp_path / "cache"))
    opened: list[str] = []
    real = oflow.npz_member
    monkeypatch.setattr(oflow, "npz_member", lambda p, k: (opened.append(str(p)), real(p, k))[1])

    def whole_split(*a, **k):
        raise AssertionError("a whole split was loaded")

    monkeypatch.setattr(oflow, "load_oflow_split", whole_split)
    monkeypatch.setattr(oflow, "_load_clip", whole_split)
    small = ["motion_latents.shape.num_latents=16", "motion_latents.deform.num_latents=16"]
    _train("shape_ae", oflow_root, tmp_path / "sae", "data.n_uniform=64", "data.n_near=64", *small)
    _train(
        "deform_ae", oflow_root, tmp_path / "dae", "data.n_queries=64", "data.pairs_per_sequence=2", *small
    )
    links = [f"shape_ae_run={tmp_path / 'sae'}", f"deform_ae_run={tmp_path / 'dae'}", "data.n_obs=32"]
    for exp in ("shape_diffusion", "deform_diffusion"):
        cfg = _train(exp, oflow_root, tmp_path / exp, *links, *small, "data.test_split=test_new_individual")
        assert cfg.data.source == "oflow"
    for run in ("sae", "dae", "shape_diffusion", "deform_diffusion"):
        assert (tmp_path / run / "metrics.json").is_file()
    # latents were encoded once into memory-mapped caches: one folder per (split, autoencoders)
    caches = sorted(p.name for p in (tmp_path / "cache").glob("motion-oflow-latents-*"))
    assert len(caches) >= 5 and all((tmp_path / "cache" / c / "shape.npy").is_file() for c in caches)
    assert opened and all(p.endswith(".npz") for p in opened)
