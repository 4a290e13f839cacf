import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from latent4d.errors import InputError
from latent4d.geometry.sdf import MeshSDF
from latent4d.motion.oflow import (
    load_oflow_split,
    read_mesh_sequence,
    write_oflow_sequence,
    write_split_lists,
)

ROOT = Path(__file__).resolve().parents[2]


def _write_dataset(root: Path, seq, name="s0"):
    write_oflow_sequence(root / "cat" / name, seq.vertices * 3.0 + 1.0, seq.faces, 500, 400, 300, seed=0)


def test_oflow_roundtrip(tmp_path, blob_clip):
    seq, _ = blob_clip
    _write_dataset(tmp_path, seq)
    write_split_lists(tmp_path / "cat", {"train": ["s0"], "test": ["s0"]})
    f = np.load(tmp_path / "cat/s0/points_seq/00000002.npz")
    assert (
        f["points"].dtype == np.float16 and f["occupancies"].dtype == np.uint8 and len(f["occupancies"]) == 50
    )
    a = load_oflow_split(tmp_path, "train", num_frames=4, n_surface=200, n_uniform=100, n_near=100)
    assert a["surface"].shape == (1, 4, 200, 3) and a["uniform_occ"].shape == (1, 4, 100)
    # clip normalisation: the surface fills [-0.5, 0.5] along its largest side, as the procedural data
    s = a["surface"][0].reshape(-1, 3)
    assert np.isclose((s.max(0) - s.min(0)).max(), 1.0, atol=0.03)
    # samples correspond across frames and occupancies agree with the meshes (same normalisation)
    mapped = [(a["surface"][0, t] * a["scale"][0] + a["loc"][0] - 1.0) / 3.0 for t in range(4)]
    for t in (0, 3):
        assert MeshSDF(seq.mesh(t)).unsigned_distance(mapped[t]).max() < 1e-3
    pts = (a["near"][0, 1].astype(np.float32) * a["scale"][0] + a["loc"][0] - 1.0) / 3.0
    agree = MeshSDF(seq.mesh(1)).occupancy(pts) == a["near_occ"][0, 1]
    assert agree.mean() > 0.97


def test_oflow_errors(tmp_path, blob_clip):
    seq, _ = blob_clip
    _write_dataset(tmp_path, seq)
    write_split_lists(tmp_path / "cat", {"train": ["s0"]})
    (tmp_path / "cat/s0/points_seq/00000003.npz").unlink()
    with pytest.raises(InputError, match="mismatched frame counts"):
        load_oflow_split(tmp_path, "train", num_frames=4)
    with pytest.raises(Exception, match="no sequences for split 'val'"):
        load_oflow_split(tmp_path, "val", num_frames=4)


def test_prepare_script(tmp_path, blob_clip):
    seq, _ = blob_clip
    src = tmp_path / "meshes"
    for name in ("a", "b", "c"):
        (src / name).mkdir(parents=True)
        for t in range(3):
            trimesh.Trimesh(seq.vertices[t], seq.faces, process=False).export(
                src / name / f"frame_{t:03d}.obj"
            )
    out = tmp_path / "oflow"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/prepare_motion_dataset.py"),
            str(src),
            str(out),
            "--surface",
            "300",
            "--uniform",
            "200",
            "--near",
            "200",
            "--category",
            "toys",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    lists = {s: (out / "toys" / f"{s}.lst").read_text().split() for s in ("train", "val", "test")}
    assert sorted(lists["train"] + lists["val"] + lists["test"]) == ["a", "b", "c"]
    a = load_oflow_split(out, "train", num_frames=3, n_surface=100, n_uniform=50, n_near=50)
    assert a["surface"].shape[1:] == (3, 100, 3)
    # a sequence whose frames do not share one topology is rejected before anything is written
    bad = tmp_path / "bad"
    bad.mkdir()
    trimesh.creation.box().export(bad / "f0.obj")
    trimesh.creation.icosphere().export(bad / "f1.obj")
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts/prepare_motion_dataset.py"), str(bad), str(tmp_path / "o2")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "topology differs" in r.stderr
    assert not (tmp_path / "o2").exists()
    with pytest.raises(InputError, match="no mesh files"):
        read_mesh_sequence(src)  # holds sequence folders, not frames
