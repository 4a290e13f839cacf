"""The NOCS evaluation protocol (latent4d.objects.nocs) against hand-computed boxes and a tiny set."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from latent4d.errors import InputError
from latent4d.objects.nocs import (
    FrameBoxes,
    PoseBox,
    average_precision,
    evaluate_frames,
    match_by_iou,
    plot_precision_recall,
    pose_error,
    read_eval_folder,
    reference_iou,
    y_rotation,
)

I3 = np.eye(3)


def box(cat, t, size=(1.0, 1.0, 1.0), R=I3, **kw):
    return PoseBox(cat, R, t, size, **kw)


def test_unit_cubes_offset_half_along_x():
    """Intersection 0.5 x 1 x 1, union 1.5: IoU 1/3 (axis-aligned and exact)."""
    a, b = box("camera", (0, 0, 2)), box("camera", (0.5, 0, 2))
    assert reference_iou(a, b, "aabb") == pytest.approx(1 / 3)
    assert reference_iou(a, b, "exact") == pytest.approx(1 / 3)


def test_published_formula_takes_extents_per_corner():
    """The reference's axis=0 min/max: per corner over (x, y, z). Hand-computed for the cubes above
    at z = 2: corner extents 2,1,3,2,3,2,3,2 (prod 432) and 2,1,2.5,1.5,3,2,3,2 (prod 270); the overlap
    is the second box's, so IoU = 270 / 432 = 0.625 (not 1/3)."""
    a, b = box("camera", (0, 0, 2)), box("camera", (0.5, 0, 2))
    assert reference_iou(a, b, "nocs") == pytest.approx(270 / 432)
    assert reference_iou(a, a, "nocs") == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["nocs", "aabb", "exact"])
def test_symmetric_bottle_turned_about_its_axis_matches(method):
    R = y_rotation(0.3) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])  # tilted, to leave no axis alignment
    gt = box("bottle", (0.1, -0.05, 0.8), (0.08, 0.2, 0.05), R)
    turned = box("bottle", gt.t, gt.size, R @ y_rotation(math.radians(54)))  # a multiple of 18 degrees
    assert reference_iou(turned, gt, method) == pytest.approx(1.0, abs=1e-9)
    cam_gt = box("camera", gt.t, gt.size, R)
    cam = box("camera", gt.t, gt.size, R @ y_rotation(math.radians(54)))
    assert reference_iou(cam, cam_gt, method) < 0.9
    # a mug is symmetric only when its handle is hidden
    mug_hidden = box("mug", gt.t, gt.size, R, handle_visible=False)
    assert reference_iou(box("mug", gt.t, gt.size, turned.R), mug_hidden, method) == pytest.approx(1.0, abs=1e-9)
    mug_seen = box("mug", gt.t, gt.size, R, handle_visible=True)
    assert reference_iou(box("mug", gt.t, gt.size, turned.R), mug_seen, method) < 0.9


def test_pose_error_symmetric_and_not():
    gt = box("bottle", (0, 0, 1))
    p = box("bottle", (0.03, 0, 1), R=y_rotation(1.0))
    assert pose_error(p, gt) == pytest.approx((0.0, 3.0), abs=1e-6)
    cam = box("camera", (0, 0, 1.0))
    assert pose_error(box("camera", (0, 0, 1), R=y_rotation(math.radians(7))), cam)[0] == pytest.approx(7.0)


def test_srt_conversion():
    R = y_rotation(0.4)
    srt = np.eye(4)
    srt[:3, :3] = 0.3 * R
    srt[:3, 3] = [0.1, 0.2, 0.9]
    b = PoseBox.from_srt(srt, [0.5, 1.0, 0.4], "can")
    np.testing.assert_allclose(b.R, R, atol=1e-12)
    np.testing.assert_allclose(b.size, [0.15, 0.3, 0.12])
    with pytest.raises(InputError, match="determinant"):
        PoseBox.from_srt(np.diag([1.0, 1.0, -1.0, 1.0]), [1, 1, 1], "can")


def test_greedy_matching_by_score_then_iou():
    # two predictions (score order) on one ground truth: only the first matches; strict threshold
    pm, gm = match_by_iou(np.array([[0.6], [0.9]]), 0.5)
    assert pm.tolist() == [0, -1] and gm.tolist() == [0]
    pm, _ = match_by_iou(np.array([[0.5]]), 0.5)
    assert pm.tolist() == [-1]  # iou == threshold does not match (reference: iou > thres)


def test_average_precision_hand_computed():
    # score order: FP, TP, TP with 3 ground truths -> precision 0, 1/2, 2/3 at recall 0, 1/3, 2/3
    # envelope at the recall steps: 2/3, 2/3 -> AP = 1/3 * 2/3 + 1/3 * 2/3 = 4/9
    assert average_precision([-1, 0, 1], [0.9, 0.8, 0.7], 3) == pytest.approx(4 / 9)
    assert average_precision([], [], 2) == 0.0
    assert average_precision([], [], 0) == 0.0


def _tiny_set():
    """Frame 1: a bottle found exactly (0.9) plus a far false positive (0.95); a mug missed.
    Frame 2: a camera found 1.5 cm / 6 degrees off (0.8)."""
    bottle = box("bottle", (0, 0, 1), (0.07, 0.2, 0.07))
    fp = box("bottle", (0.4, 0, 1), (0.07, 0.2, 0.07), score=0.95)
    mug = box("mug", (0.2, 0, 1), (0.1, 0.1, 0.08))
    cam = box("camera", (0, 0, 1), (0.1, 0.08, 0.06))
    cam_pred = box("camera", (0.015, 0, 1), cam.size, y_rotation(math.radians(6)), score=0.8)
    return [FrameBoxes([bottle, mug], [fp, box("bottle", bottle.t, bottle.size, score=0.9)], "f1"),
            FrameBoxes([cam], [cam_pred], "f2")]


def test_map_on_a_tiny_set():
    r = evaluate_frames(_tiny_set(), methods=("aabb", "exact"))
    c = r["categories"]
    # bottle: FP then TP over 1 gt -> AP 0.5; mug: nothing found -> 0; camera: found -> 1 at IoU25/50
    assert c["bottle"]["IoU50"] == pytest.approx(0.5)
    assert c["mug"]["IoU50"] == 0.0
    assert c["camera"]["IoU25"] == pytest.approx(1.0)
    assert r["mean"]["IoU25"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    # pose criteria count the IoU-0.1 matches only: the bottle's FP drops out -> AP 1
    assert c["bottle"]["5deg2cm"] == pytest.approx(1.0)
    # the camera is 6 degrees / 1.5 cm off: fails 5deg*, passes 10deg2cm and 10deg5cm
    assert c["camera"]["5deg5cm"] == 0.0 and c["camera"]["10deg2cm"] == pytest.approx(1.0)
    assert r["mean"]["10deg5cm"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert c["bottle"]["IoU50_exact"] == pytest.approx(0.5)
    assert c["bottle"]["ground_truths"] == 1 and c["bottle"]["predictions"] == 2
    # counting every prediction for pose ("pose + detection"): the bottle FP ranks first -> AP 0.5
    r2 = evaluate_frames(_tiny_set(), methods=("aabb",), pose_iou=None)
    assert r2["categories"]["bottle"]["5deg2cm"] == pytest.approx(0.5)


def test_published_formula_lets_a_distant_box_match():
    """With the published per-corner formula the false positive 40 cm to the side has IoU 0.66 with
    the bottle, so it (higher score) takes the match: AP 1 at IoU50 where the exact IoU gives 0.5."""
    r = evaluate_frames(_tiny_set())  # methods nocs (primary) and exact
    assert r["iou_method"] == "nocs"
    assert r["categories"]["bottle"]["IoU50"] == pytest.approx(1.0)
    assert r["categories"]["bottle"]["IoU50_exact"] == pytest.approx(0.5)


def test_eval_folder_json_and_plot(tmp_path):
    frames = _tiny_set()
    for f in frames:
        d = tmp_path / "frames" / f.name
        (d / "reconstruction").mkdir(parents=True)
        js = [{"category": b.category, "R": b.R.tolist(), "t": b.t.tolist(), "size": b.size.tolist(),
               "score": b.score, "status": "ok"} for b in f.preds]
        (d / "reconstruction" / "summary.json").write_text(json.dumps({"objects": js + [{"status": "skipped"}]}))
        (d / "gt.json").write_text(json.dumps({"objects": [{"category": b.category, "R": b.R.tolist(),
                                                            "t": b.t.tolist(), "size": b.size.tolist()}
                                                           for b in f.gts]}))
    read, notes = read_eval_folder(tmp_path / "frames")
    assert notes == [] and [len(f.preds) for f in read] == [2, 1]
    r = evaluate_frames(read, methods=("aabb",))
    assert r["mean"]["IoU25"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    png = plot_precision_recall(r, tmp_path / "pr.png")
    from PIL import Image

    img = np.asarray(Image.open(png))
    assert img.shape[0] > 300 and (img != 255).any()
    bad = tmp_path / "bad"
    (bad / "f").mkdir(parents=True)
    (bad / "f" / "gt.json").write_text(json.dumps({"objects": [{"category": "mug", "R": [[1]]}]}))
    with pytest.raises(InputError, match="objects\\[0\\]"):
        read_eval_folder(bad)


def test_eval_folder_nocs_pickles(tmp_path):
    srt = np.eye(4)
    srt[:3, :3] *= 0.2
    srt[:3, 3] = [0, 0, 1]
    res = {"gt_class_ids": np.array([1, 6]), "gt_RTs": np.stack([srt, srt]), "gt_scales": np.ones((2, 3)),
           "gt_handle_visibility": np.array([1, 0]), "pred_class_ids": np.array([1]), "pred_RTs": srt[None],
           "pred_scales": np.ones((1, 3)), "pred_scores": np.array([0.7], np.float32), "image_path": "x/0000"}
    (tmp_path / "results_real_test_scene_1_0000.pkl").write_bytes(pickle.dumps(res))
    (f,), _ = read_eval_folder(tmp_path)
    assert [g.category for g in f.gts] == ["bottle", "mug"] and f.gts[1].handle_visible is False
    np.testing.assert_allclose(f.gts[0].size, [0.2, 0.2, 0.2])
    assert evaluate_frames([f])["categories"]["bottle"]["IoU50"] == pytest.approx(1.0)
    # a ground-truth-only pickle (NOCS gts/*.pkl) takes predictions from predictions=<dir>/<stem>/summary.json
    gts = tmp_path / "gts"
    gts.mkdir()
    only_gt = {k: v for k, v in res.items() if not k.startswith("pred_")}
    (gts / "results_real_test_scene_1_0001.pkl").write_bytes(pickle.dumps(only_gt))
    (f,), notes = read_eval_folder(gts)
    assert f.preds == [] and "no predictions" in notes[0]
    pred = tmp_path / "pred" / "results_real_test_scene_1_0001"
    pred.mkdir(parents=True)
    b = f.gts[0]
    pred.joinpath("summary.json").write_text(json.dumps({"objects": [
        {"category": "bottle", "R": b.R.tolist(), "t": b.t.tolist(), "size": b.size.tolist(), "score": 0.5}]}))
    (f,), notes = read_eval_folder(gts, tmp_path / "pred")
    assert notes == [] and [p.category for p in f.preds] == ["bottle"]


def test_cli_evaluate_objects(tmp_path, capsys):
    from latent4d.cli import main

    frames = tmp_path / "frames"
    for f in _tiny_set():
        (frames / f.name).mkdir(parents=True)
        dump = [{"category": b.category, "R": b.R.tolist(), "t": b.t.tolist(), "size": b.size.tolist(),
                 "score": b.score} for b in f.preds]
        (frames / f.name / "summary.json").write_text(json.dumps({"objects": dump}))
        (frames / f.name / "gt.json").write_text(json.dumps({"objects": [{"category": b.category, "R": b.R.tolist(),
                                                                          "t": b.t.tolist(), "size": b.size.tolist()}
                                                                         for b in f.gts]}))
    out = tmp_path / "eval"
    # predictions= holds <frame>/summary.json
    assert main(["evaluate", "objects", f"frames={frames}", f"predictions={frames}", f"out={out}", "iou=aabb"]) == 0
    res = json.loads((out / "nocs_map.json").read_text())
    assert res["iou_method"] == "aabb" and res["mean"]["IoU25"] == pytest.approx(0.5)
    assert (out / "precision_recall.png").stat().st_size > 1000
    assert "mean" in capsys.readouterr().out
    assert main(["evaluate", "objects", f"frames={frames}", "iou=box"]) == 2
    assert main(["evaluate", "objects", f"frames={tmp_path / 'none'}", f"out={tmp_path / 'e2'}"]) == 2
    assert "not a folder" in capsys.readouterr().err
