"""Pose, size, shape and colour metrics, NOCS-style.

* rotation error in degrees; for symmetric categories (bottle, bowl, can) only the up axis counts,
  and, as in the NOCS evaluation, for mugs whose handle is not visible (``symmetric=True``);
* translation error (m), relative scale error ``|s_pred / s_gt - 1|``;
* 3D IoU of the oriented boxes ``(R, t, size)`` computed exactly (convex polytope intersection);
  for symmetric categories the predicted box is first turned about its up axis to its best yaw;
* NOCS mAP: per category, detections sorted by score, matched greedily to ground truth when the
  criterion holds, 101-point interpolated average precision, then the mean over categories;
* Chamfer-L1 between point sets (ONet-style mean of accuracy and completeness).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from latent4d.geometry.distances import chamfer_distance, nearest_distance
from latent4d.objects.synthetic import SYMMETRIC


def rotation_error_deg(R_pred, R_gt, symmetric: bool = False, up_axis: int = 1) -> float:
    """Geodesic angle between rotations (degrees); symmetric: angle between the up axes."""
    Rp, Rg = np.asarray(R_pred, np.float64), np.asarray(R_gt, np.float64)
    if symmetric:
        a, b = Rp[:, up_axis], Rg[:, up_axis]
        c = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    else:
        c = float((np.trace(Rp.T @ Rg) - 1.0) / 2.0)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def translation_error(t_pred, t_gt) -> float:
    """Euclidean distance (same unit as the inputs)."""
    return float(np.linalg.norm(np.asarray(t_pred, np.float64) - np.asarray(t_gt, np.float64)))


def scale_error(s_pred: float, s_gt: float) -> float:
    """Relative scale error |s_pred / s_gt - 1|."""
    return float(abs(float(s_pred) / float(s_gt) - 1.0))


def align_yaw(R_pred, R_gt) -> np.ndarray:
    """``R_pred @ Ry(theta)`` with the yaw about the canonical up axis (+y) that best matches ``R_gt``
    (for symmetric objects, whose yaw is arbitrary). Maximises ``trace(Ry^T Rp^T Rg)``."""
    Rp, Rg = np.asarray(R_pred, np.float64), np.asarray(R_gt, np.float64)
    M = Rp.T @ Rg
    theta = np.arctan2(M[0, 2] - M[2, 0], M[0, 0] + M[2, 2])
    c, s = np.cos(theta), np.sin(theta)
    Ry = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return Rp @ Ry


def box_corners(R, t, size) -> np.ndarray:
    """(8, 3) corners of the box of extents ``size`` centred at ``t`` with axes ``R``'s columns."""
    h = 0.5 * np.asarray(size, np.float64)
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float64)
    return (signs * h) @ np.asarray(R, np.float64).T + np.asarray(t, np.float64)


def _box_planes(R, t, size) -> tuple[np.ndarray, np.ndarray]:
    """Half-spaces n . x <= d of a box: (6, 3), (6,)."""
    R = np.asarray(R, np.float64)
    h = 0.5 * np.asarray(size, np.float64)
    n, d = [], []
    for a in range(3):
        for sgn in (1.0, -1.0):
            na = sgn * R[:, a]
            n.append(na)
            d.append(na @ np.asarray(t, np.float64) + h[a])
    return np.asarray(n), np.asarray(d)


def box_iou_3d(R1, t1, size1, R2, t2, size2) -> float:
    """Exact IoU of two oriented boxes: the intersection is the convex hull of the corners of each
    box inside the other plus the crossings of each box's edges with the other's faces."""
    from scipy.spatial import ConvexHull, QhullError

    v1, v2 = float(np.prod(size1)), float(np.prod(size2))
    if v1 <= 0 or v2 <= 0:
        return 0.0
    c1, c2 = box_corners(R1, t1, size1), box_corners(R2, t2, size2)
    n1, d1 = _box_planes(R1, t1, size1)
    n2, d2 = _box_planes(R2, t2, size2)
    eps = 1e-9
    pts = [c1[(c1 @ n2.T <= d2 + eps).all(1)], c2[(c2 @ n1.T <= d1 + eps).all(1)]]
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    for ca, (nb, db) in ((c1, (n2, d2)), (c2, (n1, d1))):
        for a, b in edges:
            p, q = ca[a], ca[b]
            den = (q - p) @ nb.T
            num = db - p @ nb.T
            with np.errstate(divide="ignore", invalid="ignore"):
                lam = num / den
            ok = (np.abs(den) > 1e-12) & (lam >= 0) & (lam <= 1)
            x = p[None] + lam[ok, None] * (q - p)[None]
            if len(x):
                inside = (x @ n1.T <= d1 + 1e-7).all(1) & (x @ n2.T <= d2 + 1e-7).all(1)
                pts.append(x[inside])
    P = np.concatenate(pts) if pts else np.zeros((0, 3))
    if len(P) < 4:
        return 0.0
    try:
        inter = ConvexHull(P).volume
    except QhullError:  # degenerate (touching boxes)
        return 0.0
    return float(inter / (v1 + v2 - inter))


def pose_errors(pred: dict, gt: dict, category: str | None = None, symmetric: bool | None = None) -> dict[str, float]:
    """Errors of one prediction against ground truth; both dicts hold ``R``, ``t``, ``scale``, ``size``.

    Returns ``rot_deg``, ``trans_m``, ``scale_rel`` and ``iou`` (yaw-aligned when symmetric:
    ``symmetric`` if given, else whether ``category`` is a symmetric category).
    """
    sym = (category in SYMMETRIC) if symmetric is None else bool(symmetric)
    Rp = align_yaw(pred["R"], gt["R"]) if sym else np.asarray(pred["R"])
    return {"rot_deg": rotation_error_deg(pred["R"], gt["R"], symmetric=sym),
            "trans_m": translation_error(pred["t"], gt["t"]),
            "scale_rel": scale_error(pred["scale"], gt["scale"]),
            "iou": box_iou_3d(Rp, pred["t"], pred["size"], gt["R"], gt["t"], gt["size"])}


NOCS_CRITERIA = {
    "IoU25": lambda e: e["iou"] >= 0.25,
    "IoU50": lambda e: e["iou"] >= 0.50,
    "5deg5cm": lambda e: e["rot_deg"] <= 5.0 and e["trans_m"] <= 0.05,
    "10deg5cm": lambda e: e["rot_deg"] <= 10.0 and e["trans_m"] <= 0.05,
}


def average_precision(scores: Sequence[float], matched: Sequence[bool], n_gt: int) -> float:
    """101-point interpolated AP of detections (score, matched-to-a-gt) against ``n_gt`` ground truths."""
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    tp = np.asarray(matched, bool)[order].astype(np.float64)
    fp = 1.0 - tp
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    # precision envelope
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    ap = 0.0
    for r in np.linspace(0, 1, 101):
        k = np.searchsorted(recall, r, side="left")
        ap += precision[k] if k < len(precision) else 0.0
    return float(ap / 101)


def nocs_map(records: list[dict], criteria: dict | None = None) -> dict[str, float]:
    """mAP over categories for each criterion.

    ``records``: one per ground-truth object: ``category``, ``score`` (None when the object was
    not reconstructed: a miss) and the errors of :func:`pose_errors`. Each reconstruction is the
    only candidate for its ground truth (instances are given by the masks), so a detection is a
    true positive iff its errors meet the criterion.
    """
    criteria = criteria or NOCS_CRITERIA
    out = {}
    cats = sorted({r["category"] for r in records})
    for name, crit in criteria.items():
        aps = []
        for c in cats:
            rs = [r for r in records if r["category"] == c]
            det = [r for r in rs if r.get("score") is not None]
            aps.append(average_precision([r["score"] for r in det], [bool(crit(r)) for r in det], len(rs)))
        vals = [a for a in aps if np.isfinite(a)]
        out[name] = float(np.mean(vals)) if vals else float("nan")
    return out


def chamfer_l1(a, b) -> float:
    """ONet Chamfer-L1: 0.5 * (mean_a d(a, b) + mean_b d(b, a)), Euclidean, point sets (N, 3), (M, 3)."""
    a = torch.as_tensor(np.asarray(a), dtype=torch.float32)
    b = torch.as_tensor(np.asarray(b), dtype=torch.float32)
    return 0.5 * float(chamfer_distance(a, b, squared=False))


def color_error(pred_colors, obs_colors) -> float:
    """Mean absolute RGB error in 0-255 units between matched colours (N, 3) in [0, 1]."""
    p, o = np.asarray(pred_colors, np.float64), np.asarray(obs_colors, np.float64)
    return float(np.abs(p - o).mean() * 255.0)


def observed_color_error(pipe, obs, res) -> float:
    """Colour error of a reconstruction at the observed points (mapped to its canonical frame,
    projected to the predicted surface first), 0-255 units; coloured by the result's fine-tuned
    appearance network when it has one."""
    dev = pipe.device
    with torch.no_grad():
        R = torch.as_tensor(res.R, dtype=torch.float32, device=dev)
        t = torch.as_tensor(res.t, dtype=torch.float32, device=dev)
        X = ((torch.as_tensor(obs.points, device=dev) - t) @ R) / res.scale
        zs = torch.as_tensor(res.shape_code, device=dev)
        za = torch.as_tensor(res.appearance_code, device=dev)
        surf = pipe.surface_points(zs, level=6)["points"].detach()
        if len(surf) == 0:
            return float("nan")
        _, idx = nearest_distance(X, surf)
        col = pipe.color(surf[idx], zs, za, getattr(res, "appearance_net", None)).cpu().numpy()
    return color_error(col, obs.colors)
