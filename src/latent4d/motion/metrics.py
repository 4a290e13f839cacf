"""Metrics of the motion family (Occupancy Networks / O-Flow / Motion2VecSets definitions).

* volumetric IoU: occupancy of ``n`` (100k) uniform points in [-bounds, bounds]^3 (bounds 0.55 =
  the unit cube padded by 0.1, as in ONet), |pred & gt| / |pred | gt|;
* Chamfer-L1 (ONet): ``0.5 * (accuracy + completeness)``, the mean Euclidean distance from ``n``
  (100k) samples of the predicted surface to the true one and back;
* correspondence L2: every frame-0 predicted vertex is matched once to its closest point on the
  true frame-0 surface (face + barycentric coordinates); that point is followed through the true
  sequence and the mean Euclidean distance to the predicted vertex is reported per frame.

All distances in the normalised frame (unit = the sequence's largest bounding-box side).
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from latent4d.geometry.distances import nearest_distance
from latent4d.geometry.sampling import interpolate_barycentric, sample_surface
from latent4d.geometry.sdf import MeshSDF


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean arrays (1.0 when both are empty)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


def uniform_points(n: int = 100_000, bounds: float = 0.55, seed: int = 0) -> np.ndarray:
    """(n, 3) float32 uniform points in [-bounds, bounds]^3."""
    return np.random.default_rng(seed).uniform(-bounds, bounds, (n, 3)).astype(np.float32)


def mesh_occupancy(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """(N,) bool inside ``mesh`` (empty mesh: all False)."""
    if len(mesh.faces) == 0:
        return np.zeros(len(points), bool)
    return MeshSDF(mesh).occupancy(points)


def mesh_iou(
    pred: trimesh.Trimesh, gt: trimesh.Trimesh, n: int = 100_000, bounds: float = 0.55, seed: int = 0
) -> float:
    """Volumetric IoU of two meshes on ``n`` uniform points."""
    pts = uniform_points(n, bounds, seed)
    return iou(mesh_occupancy(pred, pts), mesh_occupancy(gt, pts))


def chamfer_l1(pred: trimesh.Trimesh, gt: trimesh.Trimesh, n: int = 100_000, seed: int = 0) -> float:
    """ONet Chamfer-L1 between two meshes (inf when the prediction is empty)."""
    if len(pred.faces) == 0:
        return float("inf")
    a, _, _ = sample_surface(pred.vertices, pred.faces, n, seed)
    b, _, _ = sample_surface(gt.vertices, gt.faces, n, seed + 1)
    return chamfer_points(a, b)


def chamfer_points(a: np.ndarray, b: np.ndarray) -> float:
    """ONet Chamfer-L1 of two point samples (N, 3), (M, 3)."""
    ta, tb = torch.as_tensor(np.asarray(a, np.float32)), torch.as_tensor(np.asarray(b, np.float32))
    acc = nearest_distance(ta, tb)[0].mean()
    comp = nearest_distance(tb, ta)[0].mean()
    return float(0.5 * (acc + comp))


def correspondence_l2(pred_vertices: np.ndarray, gt_vertices: np.ndarray, gt_faces: np.ndarray) -> np.ndarray:
    """Per-frame correspondence error (T,) of a predicted trajectory (T, V, 3) against a true mesh
    sequence (T, Vg, 3) with shared ``gt_faces`` (matching done once on frame 0)."""
    pred_vertices = np.asarray(pred_vertices, np.float32)
    gt_vertices = np.asarray(gt_vertices, np.float32)
    if pred_vertices.shape[0] != gt_vertices.shape[0]:
        from latent4d.errors import InputError

        raise InputError(
            f"correspondence_l2: {pred_vertices.shape[0]} predicted frames vs "
            f"{gt_vertices.shape[0]} true frames"
        )
    if pred_vertices.shape[1] == 0:
        return np.full(pred_vertices.shape[0], np.inf)
    cp = MeshSDF((gt_vertices[0], gt_faces)).closest_points(pred_vertices[0])
    gt_traj = interpolate_barycentric(gt_vertices, gt_faces, cp["face"], cp["bary"])  # (T, V, 3)
    return np.linalg.norm(gt_traj - pred_vertices, axis=-1).mean(1)


def bbox_diagonal(vertices: np.ndarray) -> float:
    """Bounding-box diagonal of (..., N, 3) points (all frames together)."""
    v = np.asarray(vertices).reshape(-1, 3)
    return float(np.linalg.norm(v.max(0) - v.min(0)))
