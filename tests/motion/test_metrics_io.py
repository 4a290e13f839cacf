import numpy as np
import pytest
import trimesh

from latent4d.errors import InputError
from latent4d.motion.io import load_tracked_sequence, normalization, read_sequence, write_tracked_sequence
from latent4d.motion.metrics import chamfer_l1, correspondence_l2, iou, mesh_iou


def test_metrics_on_known_cases(blob_clip):
    seq, _ = blob_clip
    m = seq.mesh(0)
    assert mesh_iou(m, m, 20000) == 1.0
    assert chamfer_l1(m, m, 20000) < 5e-3
    shifted = trimesh.Trimesh(m.vertices + [0.05, 0, 0], m.faces, process=False)
    assert mesh_iou(shifted, m, 20000) < 0.9
    assert chamfer_l1(shifted, m, 20000) > 0.02
    assert iou(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)) == pytest.approx(1 / 3)
    np.testing.assert_allclose(correspondence_l2(seq.vertices, seq.vertices, seq.faces), 0, atol=1e-5)
    moved = seq.vertices.copy()
    moved[1:] += [0.0, 0.03, 0.04]
    np.testing.assert_allclose(
        correspondence_l2(moved, seq.vertices, seq.faces), [0, 0.05, 0.05, 0.05], atol=1e-5
    )
    with pytest.raises(InputError, match="predicted frames"):
        correspondence_l2(moved[:2], seq.vertices, seq.faces)


def test_read_sequence_formats(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.random((20 + t, 3)).astype(np.float32) for t in range(3)]
    d = tmp_path / "seq"
    d.mkdir()
    trimesh.PointCloud(frames[0]).export(d / "f000.ply")
    np.savez(d / "f001.npz", points=frames[1])
    np.savetxt(d / "f002.xyz", frames[2])
    got = read_sequence(d)
    assert [len(f) for f in got] == [20, 21, 22]
    np.testing.assert_allclose(got[2], frames[2], atol=1e-6)
    np.savez(tmp_path / "all.npz", points=rng.random((4, 30, 3)))
    assert len(read_sequence(tmp_path / "all.npz")) == 4
    loc, scale = normalization(got)
    allp = (np.concatenate(got) - loc) / scale
    assert np.isclose((allp.max(0) - allp.min(0)).max(), 1.0)


@pytest.mark.parametrize(
    "case,message",
    [
        ("empty", "empty sequence"),
        ("one", "at least 2 frames"),
        ("noframe", "has no points"),
        ("nan", "NaN"),
        ("shape", r"\(T, N, 3\)"),
    ],
)
def test_read_sequence_errors(tmp_path, case, message):
    d = tmp_path / "in"
    d.mkdir()
    if case == "one":
        np.savetxt(d / "a.xyz", np.zeros((4, 3)))
    elif case == "noframe":
        np.savetxt(d / "a.xyz", np.zeros((4, 3)))
        np.savez(d / "b.npz", points=np.zeros((0, 3)))
    elif case == "nan":
        np.savetxt(d / "a.xyz", np.zeros((4, 3)))
        np.savetxt(d / "b.xyz", np.full((4, 3), np.nan))
    elif case == "shape":
        np.savez(tmp_path / "bad.npz", points=np.zeros((4, 3)))
        d = tmp_path / "bad.npz"
    with pytest.raises(InputError, match=message):
        read_sequence(d)


def test_write_tracked_sequence_layout_and_atomicity(tmp_path, blob_clip, monkeypatch):
    seq, surface = blob_clip
    out = write_tracked_sequence(
        tmp_path / "rec" / "sample_00",
        seq.vertices,
        seq.faces,
        surface[:, :50],
        loc=[1, 2, 3],
        scale=2.0,
        info={"mode": "sparse"},
    )
    names = sorted(p.name for p in out.iterdir())
    assert names[:2] == ["input_0000.ply", "input_0001.ply"] and "mesh_0003.ply" in names
    data = load_tracked_sequence(out)
    np.testing.assert_allclose(data["vertices"], seq.vertices * 2 + [1, 2, 3], atol=1e-5)
    assert data["faces"].shape == seq.faces.shape and data["colors"].shape == (seq.vertices.shape[1], 3)
    m3 = trimesh.load(out / "mesh_0003.ply", process=False)
    np.testing.assert_allclose(m3.vertices, data["vertices"][3], atol=1e-4)
    assert data["info"]["mode"] == "sparse" and data["info"]["frames"] == 4
    with pytest.raises(InputError, match="observations"):
        write_tracked_sequence(tmp_path / "rec" / "sample_01", seq.vertices, seq.faces, np.zeros((4, 5)))
    # a failure half-way (after the meshes) leaves neither the folder nor temporary files
    import latent4d.motion.io as mio

    def broken(path, points):
        raise OSError("disk full")

    monkeypatch.setattr(mio, "_write_ply_cloud", broken)
    with pytest.raises(OSError, match="disk full"):
        write_tracked_sequence(tmp_path / "rec" / "sample_01", seq.vertices, seq.faces, surface[:, :50])
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["sample_00"]
