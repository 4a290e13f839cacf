"""Units and frame of hair files (latent4d.hair.align): the root-on-scalp check every hair-file command
applies, the similarity registration behind ``latent4d align``, its inverse, and bad scalp meshes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from latent4d.cli import main
from latent4d.errors import InputError
from latent4d.hair.align import (
    TOLERANCE_MEDIAN,
    SimilarityTransform,
    apply_transform,
    check_on_scalp,
    root_placement,
)
from latent4d.hair.formats import read_hair, write_hair
from latent4d.hair.scalp import Scalp
from latent4d.hair.synthetic import generate_hairstyle


def _rotation(axis, degrees: float) -> np.ndarray:
    a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = math.radians(degrees)
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K


#: a known similarity: centimetres, turned 25 degrees about a tilted axis, origin at the head centre
KNOWN = SimilarityTransform(0.01, _rotation([0.3, 1.0, -0.2], 25.0), np.array([0.0, 1.775, 0.0]))


@pytest.fixture(scope="module")
def hair():
    return generate_hairstyle(2_000_001, 1500, root_seed=1, num_points=20)


@pytest.fixture(scope="module")
def misplaced(hair):
    """The hairstyle as another tool would export it (KNOWN undone: x_file = KNOWN^-1 x_head)."""
    return apply_transform(hair, KNOWN, inverse=True)


def test_procedural_roots_are_on_the_scalp(hair):
    pl = check_on_scalp(hair, Scalp(), "procedural")
    assert pl.on_scalp and pl.median < 1e-6 and pl.p95 < 1e-6
    assert 0.9 < pl.scale < 1.1 and pl.offset < 0.01


def test_misplaced_file_is_refused_with_offset_scale_and_fix(misplaced, tmp_path):
    pl = root_placement(misplaced.roots)
    assert pl.median > 1.0 and 80 < pl.scale < 120  # centimetres: ~100 x the scalp
    with pytest.raises(InputError) as e:
        check_on_scalp(misplaced, Scalp(), "groom.data")
    msg = str(e.value)
    assert "groom.data" in msg and "not on the scalp" in msg and "(median)" in msg
    assert f"{pl.scale:.3g} x the scalp's size" in msg and "centimetres" in msg
    assert "latent4d align groom.data groom_aligned.data units=cm" in msg
    # a small shift stays within the tolerance, a 3 cm one does not
    moved = apply_transform(misplaced, KNOWN)
    moved.points[:] += [0.0, 0.5 * TOLERANCE_MEDIAN, 0.0]
    assert check_on_scalp(moved).on_scalp
    moved.points[:] += [0.0, 0.03, 0.0]
    with pytest.raises(InputError, match="not on the scalp"):
        check_on_scalp(moved)


@pytest.mark.parametrize("units", ["auto", "cm"])
def test_align_recovers_a_known_similarity(hair, misplaced, units):
    aligned, tf = misplaced.align_to(Scalp(), units=units)
    assert tf.scale == pytest.approx(0.01, rel=0.02)
    angle = math.degrees(math.acos(np.clip((np.trace(tf.rotation.T @ KNOWN.rotation) - 1) / 2, -1, 1)))
    assert angle < 3.0
    assert tf.residual["median_m"] < 0.002
    assert check_on_scalp(aligned).on_scalp
    err = np.linalg.norm(aligned.points - hair.points, axis=1)
    assert np.median(err) < 0.02  # strands (up to ~0.5 m long) land within 2 cm of where they were


def test_inverse_round_trips(hair, misplaced, tmp_path):
    back = apply_transform(misplaced, KNOWN)
    assert np.abs(back.points - hair.points).max() < 1e-5
    tf = SimilarityTransform(0.37, _rotation([1, 2, 3], 40), np.array([0.1, -2.0, 0.3]), "auto", {"median_m": 1e-4})
    path = tf.save(tmp_path / "t.json")
    loaded = SimilarityTransform.load(path)
    there = apply_transform(hair, loaded)
    again = apply_transform(there, path, inverse=True)
    assert np.abs(again.points - hair.points).max() < 1e-5 and loaded.units == "auto"
    thick = hair.with_meta()
    thick.thickness = np.full(hair.num_points, 2.0, np.float32)
    assert apply_transform(thick, tf).thickness[0] == pytest.approx(0.74)


@pytest.mark.parametrize("bad, phrase", [
    ({"scale": -1, "rotation": np.eye(3).tolist(), "translation": [0, 0, 0]}, "positive"),
    ({"scale": 1, "rotation": (2 * np.eye(3)).tolist(), "translation": [0, 0, 0]}, "not a rotation"),
    ({"scale": 1, "rotation": [[1, 0], [0, 1]], "translation": [0, 0, 0]}, "3x3"),
    ({"rotation": np.eye(3).tolist()}, "scale"),
    ([1, 2, 3], "JSON object"),
])
def test_bad_transform_files(tmp_path, bad, phrase):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(InputError, match=phrase):
        SimilarityTransform.load(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON transform"):
        SimilarityTransform.load(p)


def _cli(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr()


def test_cli_align_writes_file_and_json(hair, misplaced, tmp_path, capsys):
    src, out = tmp_path / "groom.ply", tmp_path / "out" / "groom_aligned.hair"
    write_hair(src, misplaced)
    code, cap = _cli(capsys, "align", str(src), str(out), "units=cm")
    assert code == 0, cap.err
    tf = json.loads((tmp_path / "out" / "groom_aligned_transform.json").read_text())
    assert tf["scale"] == pytest.approx(0.01, rel=0.02) and tf["units"] == "cm" and tf["residual"]["median_m"] < 2e-3
    assert check_on_scalp(read_hair(out)).on_scalp
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["groom_aligned.hair", "groom_aligned_transform.json"]
    # results go back into the user's frame
    back = tmp_path / "back.data"
    code, cap = _cli(capsys, "align", str(out), str(back), f"inverse={tmp_path / 'out' / 'groom_aligned_transform.json'}")
    assert code == 0, cap.err
    assert np.abs(read_hair(back).points - misplaced.points).max() < 1e-3
    # bad options / paths: one error line, nothing written
    for args, phrase in [((str(src), str(tmp_path / "x.txt")), "OUT"), ((str(tmp_path / "no.data"), str(out)), "IN"),
                         ((str(src), str(tmp_path / "y.data"), "units=inch"), "units"),
                         ((str(src), str(tmp_path / "y.data"), "scalp=" + str(tmp_path / "none.obj")), "scalp")]:
        code, cap = _cli(capsys, "align", *args)
        assert code == 2 and phrase in cap.err, cap.err
    assert not (tmp_path / "y.data").exists() and not (tmp_path / "y_transform.json").exists()


def test_cli_align_refuses_what_it_cannot_align(tmp_path, capsys):
    """A handful of roots in a line cannot be put on the scalp: an error, and no output files."""
    line = np.linspace(0, 1, 40)[:, None] * [1.0, 0.0, 0.0]
    strands = np.stack([line, line + [0, -0.2, 0]], 1).astype(np.float32)
    from latent4d.hair.strands import Hairstyle

    write_hair(tmp_path / "line.data", Hairstyle.from_strands(strands))
    code, cap = _cli(capsys, "align", str(tmp_path / "line.data"), str(tmp_path / "o.data"))
    assert code == 2 and "could not put the roots on the scalp" in cap.err
    assert not (tmp_path / "o.data").exists() and not (tmp_path / "o_transform.json").exists()


def test_bad_scalp_meshes(tmp_path):
    import trimesh

    with pytest.raises(InputError, match="does not exist"):
        Scalp.from_mesh(tmp_path / "none.obj")
    (tmp_path / "junk.obj").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(InputError, match="junk.obj"):
        Scalp.from_mesh(tmp_path / "junk.obj")
    (tmp_path / "m.stl2").write_text("x")
    with pytest.raises(InputError, match="unknown mesh format"):
        Scalp.from_mesh(tmp_path / "m.stl2")
    head = Scalp().head.mesh(2)
    with pytest.raises(InputError, match="faces index vertices outside"):
        Scalp.from_mesh(trimesh.Trimesh(head.vertices, np.vstack([head.faces, [[0, 1, 10**6]]]), process=False))
    v = np.array(head.vertices)
    v[0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        Scalp.from_mesh(trimesh.Trimesh(v, head.faces, process=False))
    cm = trimesh.Trimesh(np.array(head.vertices) * 100, head.faces, process=False)  # centimetres
    with pytest.raises(InputError, match=r"does not match the head frame.*size 100 x"):
        Scalp.from_mesh(cm)
    ok = Scalp.from_mesh(head)
    assert ok.is_mesh and np.median(ok.surface_distance(ok.sample_roots(200)[0])) < 1e-6
