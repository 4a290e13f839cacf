"""The NOCS evaluation protocol (Wang et al., CVPR 2019; the tables of NOCS, ShAPO, CenterSnap, SPD...).

What the reference code (``hughw19/NOCS_CVPR2019``, ``utils.py``) computes, written again here so
that latent4d's numbers can stand beside published tables:

* **3D IoU** (``compute_3d_iou_new``): each box's 8 corners (``get_3d_bbox`` order) are put in the
  camera frame by its pose, and the IoU of the two resulting axis-aligned extents is taken. The
  published code takes the min / max over ``axis=0`` of the (3, 8) corner array, i.e. *per corner over
  its x, y, z* rather than per axis over the corners: an 8-dimensional "box", not a 3D one (issue #47 of
  the NOCS repository; the authors kept it, and every later table that reuses the script has it).
  ``method="nocs"`` reproduces that formula exactly (use it to compare with published numbers);
  ``method="aabb"`` is what it was meant to be (IoU of the camera-frame axis-aligned boxes of the
  corners, per axis); ``method="exact"`` is the exact oriented-box IoU of
  :func:`latent4d.objects.metrics.box_iou_3d`. For symmetric categories (bottle, bowl, can, and mugs
  whose handle is not visible) the *prediction* is turned about its own up axis (+y) in 20 steps of 18
  degrees and the largest IoU is kept, as the reference does.
* **rotation / translation error** (``compute_RT_degree_cm_symmetry``): geodesic angle (degrees);
  for symmetric categories the angle between the up axes; translation in centimetres.
* **matching** (``compute_3d_matches``, ``compute_match_from_degree_cm``): per category and frame,
  predictions sorted by score (highest first); each takes the unmatched ground truth of highest IoU if
  that IoU is above the threshold (strictly, as in the reference), else none. For the pose criteria the
  reference evaluates "pose only": only predictions and ground truths matched at IoU 0.1 take part
  (``use_matches_for_pose=True, iou_pose_thres=0.1`` in ``detect_eval.py``); among them each
  prediction takes the unmatched ground truth of smallest ``degrees + cm`` within both thresholds.
* **AP** (``compute_ap_from_matches_scores``): over all frames, per category, predictions sorted by
  score; precision made monotone; the area under the precision-recall steps (VOC all-points), recall
  over the ground truths that took part. **mAP**: the mean over categories that have ground truth.

Poses follow latent4d's convention: a box is ``(R (3, 3), t (3,) metres, size (3,) metres)`` with
corners ``R @ (±size / 2) + t``; a NOCS ``sRT`` 4x4 with NOCS-space ``scales`` converts through
:meth:`PoseBox.from_srt` (``s = cbrt(det)``, ``size = s * scales``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latent4d.errors import InputError

NOCS_SYMMETRIC = frozenset({"bottle", "bowl", "can"})
"""Categories symmetric about their up axis (the reference's list); mugs too when the handle is hidden."""

IOU_METHODS = ("nocs", "aabb", "exact")
IOU_CRITERIA = {"IoU25": 0.25, "IoU50": 0.50}
POSE_CRITERIA = {"5deg2cm": (5.0, 2.0), "5deg5cm": (5.0, 5.0), "10deg2cm": (10.0, 2.0), "10deg5cm": (10.0, 5.0)}
SYMMETRY_STEPS = 20
"""Turns of a symmetric prediction about its up axis (2 pi / 20 apart) in the reference IoU."""
POSE_MATCH_IOU = 0.1
"""Pose criteria count only predictions and ground truths matched at this IoU (the reference's
``iou_pose_thres``); None in :func:`evaluate_frames` counts all of them ("pose + detection")."""


@dataclass
class PoseBox:
    """One object box: category, R (3, 3) canonical -> camera, t (3,) m, size (3,) m extents,
    score (predictions), handle_visible (mugs; None = unknown = visible, as in the reference)."""

    category: str
    R: np.ndarray
    t: np.ndarray
    size: np.ndarray
    score: float = 1.0
    handle_visible: bool | None = None
    name: str = ""

    def __post_init__(self):
        self.R = np.asarray(self.R, np.float64).reshape(3, 3)
        self.t = np.asarray(self.t, np.float64).reshape(3)
        self.size = np.asarray(self.size, np.float64).reshape(3)
        self.score = float(self.score)

    @classmethod
    def from_srt(cls, srt, scales, category: str, **kw) -> PoseBox:
        """From a NOCS 4x4 ``sRT`` (scale folded into the rotation) and NOCS-space box ``scales`` (3,)."""
        M = np.asarray(srt, np.float64)
        if M.shape != (4, 4) or not np.isfinite(M).all():
            raise InputError(f"{category}: expected a finite 4x4 sRT pose, got shape {M.shape}")
        det = float(np.linalg.det(M[:3, :3]))
        if det <= 0:
            raise InputError(f"{category}: the 3x3 part of the sRT pose has determinant {det:g} (expected > 0: a "
                             "scaled rotation)")
        s = np.cbrt(det)
        return cls(category, M[:3, :3] / s, M[:3, 3], s * np.asarray(scales, np.float64).reshape(3), **kw)

    @property
    def symmetric(self) -> bool:
        return is_symmetric(self.category, self.handle_visible)


def is_symmetric(category: str, handle_visible: bool | None = None) -> bool:
    """The reference's rule: bottle, bowl, can; mug when its handle is not visible."""
    return category in NOCS_SYMMETRIC or (category == "mug" and handle_visible is False)


def nocs_box_corners(size) -> np.ndarray:
    """(8, 3) corners of a centred box of extents ``size`` in the order of the reference ``get_3d_bbox``."""
    h = 0.5 * np.asarray(size, np.float64).reshape(3)
    signs = np.array([[1, 1, 1], [1, 1, -1], [-1, 1, 1], [-1, 1, -1],
                      [1, -1, 1], [1, -1, -1], [-1, -1, 1], [-1, -1, -1]], np.float64)
    return signs * h


def y_rotation(theta: float) -> np.ndarray:
    """Rotation by ``theta`` radians about +y (3, 3)."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _extent_iou(c1: np.ndarray, c2: np.ndarray, per_corner: bool) -> float:
    """IoU of the axis-aligned extents of two (8, 3) corner sets: per axis over the corners, or (the
    reference's ``axis=0`` formula) per corner over its coordinates."""
    ax = 1 if per_corner else 0
    lo1, hi1, lo2, hi2 = c1.min(ax), c1.max(ax), c2.min(ax), c2.max(ax)
    ov = np.minimum(hi1, hi2) - np.maximum(lo1, lo2)
    inter = 0.0 if ov.min() < 0 else float(np.prod(ov))
    union = float(np.prod(hi1 - lo1) + np.prod(hi2 - lo2) - inter)
    return inter / union if union > 0 else 0.0


def _one_iou(R1, t1, s1, R2, t2, s2, method: str) -> float:
    if method == "exact":
        from latent4d.objects.metrics import box_iou_3d

        return box_iou_3d(R1, t1, s1, R2, t2, s2)
    c1 = nocs_box_corners(s1) @ R1.T + t1
    c2 = nocs_box_corners(s2) @ R2.T + t2
    return _extent_iou(c1, c2, per_corner=method == "nocs")


def reference_iou(pred: PoseBox, gt: PoseBox, method: str = "nocs") -> float:
    """3D IoU of a prediction and a ground truth as the reference computes it (module docstring):
    symmetric ground truths of the same category take the best of :data:`SYMMETRY_STEPS` turns of the
    prediction about its up axis. ``method``: ``nocs`` (published formula), ``aabb``, ``exact``."""
    if method not in IOU_METHODS:
        raise ValueError(f"iou method '{method}': expected one of {', '.join(IOU_METHODS)}")
    if gt.symmetric and pred.category == gt.category:
        return max(_one_iou(pred.R @ y_rotation(2 * math.pi * i / SYMMETRY_STEPS), pred.t, pred.size,
                            gt.R, gt.t, gt.size, method) for i in range(SYMMETRY_STEPS))
    return _one_iou(pred.R, pred.t, pred.size, gt.R, gt.t, gt.size, method)


def pose_error(pred: PoseBox, gt: PoseBox) -> tuple[float, float]:
    """(rotation error in degrees, translation error in cm); symmetric: the angle between up axes."""
    if gt.symmetric:
        a, b = pred.R[:, 1], gt.R[:, 1]
        c = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    else:
        c = (float(np.trace(pred.R @ gt.R.T)) - 1.0) / 2.0
    deg = math.degrees(math.acos(min(1.0, max(-1.0, c))))
    return deg, 100.0 * float(np.linalg.norm(pred.t - gt.t))


# ----------------------------------------------------------------------------------------------
# matching and average precision


def score_order(scores) -> np.ndarray:
    """Indices of predictions by score, highest first (the reference's ``argsort(scores)[::-1]``)."""
    return np.argsort(np.asarray(scores, np.float64), kind="stable")[::-1]


def match_by_iou(ious: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of predictions (rows, already in score order) to ground truths (columns) of
    one category: each prediction takes the unmatched ground truth of highest IoU when that IoU is
    strictly above ``threshold``. Returns (pred_match (P,), gt_match (G,)), -1 = unmatched."""
    P, G = ious.shape
    pm, gm = -np.ones(P, np.int64), -np.ones(G, np.int64)
    for i in range(P):
        for j in np.argsort(ious[i], kind="stable")[::-1]:
            if gm[j] > -1:
                continue
            if ious[i, j] < threshold:
                break
            if ious[i, j] > threshold:
                gm[j], pm[i] = i, j
                break
    return pm, gm


def match_by_pose(errors: np.ndarray, max_deg: float, max_cm: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching on (P, G, 2) (degrees, cm) errors, predictions in score order: each takes the
    unmatched ground truth of smallest ``degrees + cm`` within both thresholds."""
    P, G = errors.shape[:2]
    pm, gm = -np.ones(P, np.int64), -np.ones(G, np.int64)
    for i in range(P):
        for j in np.argsort(errors[i].sum(-1), kind="stable"):
            if gm[j] > -1 or errors[i, j, 0] > max_deg or errors[i, j, 1] > max_cm:
                continue
            gm[j], pm[i] = i, j
            break
    return pm, gm


def precision_recall(pred_match, scores, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall (N,) of matched (>= 0) / unmatched (-1) predictions in score order."""
    order = score_order(scores)
    tp = (np.asarray(pred_match)[order] > -1).astype(np.float64)
    ctp = np.cumsum(tp)
    prec = ctp / (np.arange(len(tp)) + 1)
    rec = ctp / n_gt if n_gt > 0 else np.full(len(tp), np.nan)
    return prec, rec


def average_precision(pred_match, scores, n_gt: int) -> float:
    """The reference's AP: monotone precision envelope, area under the recall steps. Without ground
    truth: 0 when there are no predictions either (the reference's value: a category whose objects
    were all missed at IoU 0.1 scores 0 on the pose criteria), else NaN."""
    if n_gt == 0:
        return 0.0 if len(pred_match) == 0 else float("nan")
    prec, rec = precision_recall(pred_match, scores, n_gt)
    p = np.concatenate([[0.0], prec, [0.0]])
    r = np.concatenate([[0.0], rec, [1.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    k = np.where(r[:-1] != r[1:])[0] + 1
    return float(np.sum((r[k] - r[k - 1]) * p[k]))


# ----------------------------------------------------------------------------------------------
# the whole protocol


@dataclass
class FrameBoxes:
    """Ground truth and predictions of one frame (name for messages)."""

    gts: list[PoseBox]
    preds: list[PoseBox]
    name: str = ""


@dataclass
class _Acc:
    """Per-category accumulator: matches and scores per criterion, ground truths per criterion."""

    matches: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    n_gt: dict = field(default_factory=dict)

    def add(self, key: str, pm, scores, n_gt: int) -> None:
        self.matches.setdefault(key, []).extend(int(m) for m in pm)
        self.scores.setdefault(key, []).extend(float(s) for s in scores)
        self.n_gt[key] = self.n_gt.get(key, 0) + int(n_gt)


def _frame_category(acc: _Acc, gts: list[PoseBox], preds: list[PoseBox], methods, pose_iou) -> None:
    """Match one category of one frame for every criterion and add to ``acc``."""
    preds = [preds[i] for i in score_order([p.score for p in preds])]
    scores = [p.score for p in preds]
    primary = None
    for m in methods:
        ious = np.array([[reference_iou(p, g, m) for g in gts] for p in preds]).reshape(len(preds), len(gts))
        for name, thr in IOU_CRITERIA.items():
            acc.add(f"{name}" if m == methods[0] else f"{name}_{m}", match_by_iou(ious, thr)[0], scores, len(gts))
        if primary is None:
            primary = ious
    keep_p, keep_g = np.arange(len(preds)), np.arange(len(gts))
    if pose_iou is not None:
        pm, gm = match_by_iou(primary, pose_iou)
        keep_p, keep_g = np.where(pm > -1)[0], np.where(gm > -1)[0]
    errs = np.array([[pose_error(preds[i], gts[j]) for j in keep_g] for i in keep_p]).reshape(len(keep_p),
                                                                                             len(keep_g), 2)
    for name, (deg, cm) in POSE_CRITERIA.items():
        acc.add(name, match_by_pose(errs, deg, cm)[0], [scores[i] for i in keep_p], len(keep_g))


def evaluate_frames(frames: list[FrameBoxes], methods=("nocs", "exact"), pose_iou: float | None = POSE_MATCH_IOU,
                    curves: bool = True) -> dict:
    """NOCS mAP over ``frames``: per category and mean, at IoU25 / IoU50 (first of ``methods``; the
    others as ``IoU25_<method>``...) and 5deg2cm / 5deg5cm / 10deg2cm / 10deg5cm (pose matching on the
    first method's IoU at ``pose_iou``). Values are fractions in [0, 1]; categories without ground
    truth are listed apart and left out of the mean. ``curves``: the precision / recall points."""
    methods = tuple(methods)
    bad = [m for m in methods if m not in IOU_METHODS]
    if not methods or bad:
        raise ValueError(f"iou methods {list(methods)}: expected some of {', '.join(IOU_METHODS)}")
    accs: dict[str, _Acc] = {}
    cats_gt = sorted({g.category for f in frames for g in f.gts})
    for f in frames:
        for c in cats_gt:
            gts = [g for g in f.gts if g.category == c]
            preds = [p for p in f.preds if p.category == c]
            if gts or preds:
                _frame_category(accs.setdefault(c, _Acc()), gts, preds, methods, pose_iou)
    per_cat, pr = {}, {}
    for c in cats_gt:
        a = accs[c]
        per_cat[c] = {k: average_precision(a.matches[k], a.scores[k], a.n_gt[k]) for k in a.matches}
        per_cat[c]["ground_truths"] = sum(len([g for g in f.gts if g.category == c]) for f in frames)
        per_cat[c]["predictions"] = sum(len([p for p in f.preds if p.category == c]) for f in frames)
        if curves:
            pr[c] = {k: dict(zip(("precision", "recall"), (v.tolist() for v in precision_recall(
                a.matches[k], a.scores[k], a.n_gt[k])), strict=True)) | {"scores": sorted(a.scores[k], reverse=True)}
                for k in a.matches}
    keys = [k for k in (per_cat[cats_gt[0]] if cats_gt else {}) if k not in ("ground_truths", "predictions")]
    mean = {k: _nanmean([per_cat[c][k] for c in cats_gt]) for k in keys}
    extra = sorted({p.category for f in frames for p in f.preds} - set(cats_gt))
    out = {"iou_method": methods[0], "iou_methods": list(methods), "pose_match_iou": pose_iou,
           "frames": len(frames), "mean": mean, "categories": per_cat, "categories_without_ground_truth": extra}
    if curves:
        out["curves"] = pr
    return out


def _nanmean(v) -> float:
    v = [x for x in v if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


# ----------------------------------------------------------------------------------------------
# reading a folder of frames with ground truth and predictions


def _boxes_from_json(objs, where: str, predictions: bool) -> list[PoseBox]:
    """PoseBoxes from a ``gt.json`` (``objects``: category, R, t, size[, handle_visible]) or a
    ``summary.json`` of ``reconstruct objects`` (objects with status ok: category, R, t, size, score)."""
    out = []
    for k, o in enumerate(objs):
        if not isinstance(o, dict):
            raise InputError(f"{where}: objects[{k}] is not an object")
        if predictions and o.get("status", "ok") != "ok":
            continue
        try:
            out.append(PoseBox(str(o["category"]), o["R"], o["t"], o["size"], float(o.get("score", 1.0)),
                               o.get("handle_visible"), str(o.get("name", ""))))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where}: objects[{k}] needs category, R (3x3), t (3), size (3) ({type(e).__name__}: "
                             f"{str(e)[:100]})") from None
        b = out[-1]
        if not (np.isfinite(b.R).all() and np.isfinite(b.t).all() and np.isfinite(b.size).all()) or (b.size <= 0).any():
            raise InputError(f"{where}: objects[{k}] has non-finite values or a size that is not positive")
    return out


def _read_json_objects(path: Path, predictions: bool) -> list[PoseBox]:
    import json

    if path.stat().st_size > 64 << 20:
        raise InputError(f"'{path}' has {path.stat().st_size:,} bytes; too large for a frame's objects")
    try:
        d = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as e:
        raise InputError(f"'{path}' is not valid JSON ({str(e)[:200]})") from None
    objs = d.get("objects") if isinstance(d, dict) else None
    if not isinstance(objs, list):
        raise InputError(f"'{path}': expected {{\"objects\": [...]}} (a gt.json or a reconstruct summary.json)")
    return _boxes_from_json(objs, str(path), predictions)


def _pkl_boxes(d: dict, side: str, names: dict[int, str], where: str) -> list[PoseBox]:
    """Boxes of the ``gt_`` or ``pred_`` side of a NOCS results pickle (class ids, sRTs, scales)."""
    try:
        ids = np.asarray(d[f"{side}_class_ids"]).astype(np.int64).ravel()
        rts = np.asarray(d[f"{side}_RTs"], np.float64).reshape(len(ids), 4, 4)
        scales = np.asarray(d[f"{side}_scales"], np.float64).reshape(len(ids), 3)
        scores = (np.asarray(d["pred_scores"], np.float64).reshape(len(ids)) if side == "pred" else np.ones(len(ids)))
        hv = np.asarray(d.get("gt_handle_visibility", np.ones(len(ids))) if side == "gt" else np.ones(len(ids)))
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"{where}: the {side}_class_ids / {side}_RTs / {side}_scales arrays are missing or do "
                         f"not fit ({type(e).__name__}: {str(e)[:120]})") from None
    out = []
    for i, c in enumerate(ids):
        if int(c) not in names:
            continue
        out.append(PoseBox.from_srt(rts[i], scales[i], names[int(c)], score=scores[i],
                                    handle_visible=bool(hv.ravel()[i]) if side == "gt" else None))
    return out


def _read_pkl_frame(path: Path, names: dict[int, str]) -> FrameBoxes:
    from latent4d.objects.layouts import safe_unpickle

    d = safe_unpickle(path, "NOCS results")
    if not isinstance(d, dict) or "gt_class_ids" not in d:
        raise InputError(f"NOCS results '{path}': expected a dict with gt_class_ids, gt_RTs, gt_scales "
                         "(and pred_class_ids, pred_RTs, pred_scales, pred_scores)")
    preds = _pkl_boxes(d, "pred", names, str(path)) if "pred_class_ids" in d else []
    return FrameBoxes(_pkl_boxes(d, "gt", names, str(path)), preds, path.stem)


def _prediction_file(frame_dir: Path, predictions: Path | None, name: str | None = None) -> Path | None:
    name = name or frame_dir.name
    cands = ([predictions / name / "summary.json", predictions / f"{name}.json"]
             if predictions is not None else [frame_dir / "reconstruction" / "summary.json",
                                              frame_dir / "summary.json"])
    return next((c for c in cands if c.is_file()), None)


def _pkl_frames(pkls: list[Path], pdir: Path | None, names: dict[int, str]) -> tuple[list[FrameBoxes], list[str]]:
    """NOCS pickles; predictions from the pickle's ``pred_*`` or, when it has none (the ``gts/*.pkl``
    ground truth), from ``<predictions>/<pkl stem>/summary.json`` / ``<pkl stem>.json``."""
    out, notes = [], []
    for p in pkls:
        f = _read_pkl_frame(p, names)
        if not f.preds:
            pf = _prediction_file(p.parent, pdir, p.stem) if pdir is not None else None
            if pf is None:
                notes.append(f"{p.stem}: no predictions found (counted as no detections)")
            else:
                f.preds = _read_json_objects(pf, predictions=True)
        out.append(f)
    return out, notes


def read_eval_folder(frames: str | Path, predictions: str | Path | None = None,
                     classes: dict[int, str] | None = None) -> tuple[list[FrameBoxes], list[str]]:
    """Frames with ground truth and predictions under ``frames``: NOCS ``*.pkl`` files (ground
    truth ``gt_*`` and predictions ``pred_*`` in one dict, class ids named by ``classes``, default
    NOCS's; read with :func:`latent4d.objects.layouts.safe_unpickle`; a ground-truth-only pickle takes
    its predictions from ``<predictions>/<pkl stem>/summary.json`` or ``<pkl stem>.json``), or latent4d frame folders
    (``<frame>/gt.json``) whose predictions are ``reconstruct objects`` outputs: under
    ``predictions=<dir>`` as ``<dir>/<frame>/summary.json`` or ``<dir>/<frame>.json``, else
    ``<frame>/reconstruction/summary.json``. Returns the frames and notes (frames without predictions)."""
    from latent4d.objects.layouts import NOCS_CLASSES

    root = Path(frames)
    if not root.is_dir():
        raise InputError(f"frames '{root}' is not a folder")
    pdir = None if predictions is None else Path(predictions)
    if pdir is not None and not pdir.is_dir():
        raise InputError(f"predictions '{pdir}' is not a folder")
    pkls = sorted(root.rglob("*.pkl"))
    if pkls:
        return _pkl_frames(pkls, pdir, classes or NOCS_CLASSES)
    out, notes = [], []
    for gt in sorted(root.rglob("gt.json")):
        pf = _prediction_file(gt.parent, pdir)
        if pf is None:
            notes.append(f"{gt.parent.name}: no predictions found (counted as no detections)")
        preds = [] if pf is None else _read_json_objects(pf, predictions=True)
        out.append(FrameBoxes(_read_json_objects(gt, predictions=False), preds, gt.parent.name))
    if not out:
        raise InputError(f"frames '{root}': no ground truth found (NOCS results_*.pkl files, or frame folders with "
                         "gt.json as latent4d.objects.io.save_scene writes them)")
    return out, notes


# ----------------------------------------------------------------------------------------------
# the precision / recall picture


_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _panel(draw, box, title: str, lines: dict[str, tuple[list, list]], colours: dict[str, tuple]) -> None:
    """One precision (y) / recall (x) panel in pixel ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    px0, py0, px1, py1 = x0 + 34, y0 + 22, x1 - 8, y1 - 24
    draw.rectangle([px0, py0, px1, py1], outline=(0, 0, 0))
    draw.text((x0 + 36, y0 + 4), title, fill=(0, 0, 0))
    for v in (0.0, 0.5, 1.0):
        y = py1 - v * (py1 - py0)
        x = px0 + v * (px1 - px0)
        draw.line([(px0 - 3, y), (px0, y)], fill=(0, 0, 0))
        draw.text((x0 + 4, y - 6), f"{v:.1f}", fill=(0, 0, 0))
        draw.line([(x, py1), (x, py1 + 3)], fill=(0, 0, 0))
        draw.text((x - 8, py1 + 5), f"{v:.1f}", fill=(0, 0, 0))
    for name, (rec, prec) in lines.items():
        pts = [(0.0, prec[0] if prec else 0.0)] + list(zip(rec, prec, strict=True))
        xy = [(px0 + r * (px1 - px0), py1 - p * (py1 - py0)) for r, p in pts if np.isfinite(r) and np.isfinite(p)]
        if len(xy) >= 2:
            draw.line(xy, fill=colours[name], width=2)


def plot_precision_recall(result: dict, path: str | Path, panel: int = 300) -> Path:
    """A PNG of precision / recall curves (one panel per criterion, a line per category, AP in the
    legend) from :func:`evaluate_frames` (with ``curves``), drawn with PIL; written atomically."""
    from PIL import Image, ImageDraw

    from latent4d.render import save_png

    curves = result.get("curves", {})
    cats = sorted(curves)
    keys = [*IOU_CRITERIA, *POSE_CRITERIA]
    cols = 3
    rows = int(np.ceil(len(keys) / cols))
    legend_h = 18 * (len(cats) + 1) + 10
    img = Image.new("RGB", (cols * panel, rows * panel + legend_h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    colours = {c: _PALETTE[i % len(_PALETTE)] for i, c in enumerate(cats)}
    for k, key in enumerate(keys):
        x0, y0 = (k % cols) * panel, (k // cols) * panel
        lines = {c: (curves[c][key]["recall"], curves[c][key]["precision"]) for c in cats if key in curves[c]}
        mean = result.get("mean", {}).get(key, float("nan"))
        _panel(draw, (x0, y0, x0 + panel, y0 + panel), f"{key}  mAP {100 * mean:.1f}", lines, colours)
    y = rows * panel + 6
    draw.text((10, y), f"precision (y) vs recall (x); IoU: {result.get('iou_method')}", fill=(0, 0, 0))
    for i, c in enumerate(cats):
        yy = y + 18 * (i + 1)
        draw.line([(10, yy + 6), (40, yy + 6)], fill=colours[c], width=3)
        aps = ", ".join(f"{k} {100 * result['categories'][c].get(k, float('nan')):.1f}" for k in keys)
        draw.text((48, yy), f"{c}: {aps}", fill=(0, 0, 0))
    return save_png(np.asarray(img), Path(path))


__all__ = ["IOU_CRITERIA", "IOU_METHODS", "NOCS_SYMMETRIC", "POSE_CRITERIA", "POSE_MATCH_IOU", "FrameBoxes",
           "PoseBox", "average_precision", "evaluate_frames", "plot_precision_recall", "read_eval_folder", "is_symmetric", "match_by_iou", "match_by_pose",
           "nocs_box_corners", "pose_error", "precision_recall", "reference_iou", "score_order", "y_rotation"]
