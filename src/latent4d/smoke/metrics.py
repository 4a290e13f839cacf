"""Surface metrics for the smoke experiment."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from latent4d.geometry.distances import chamfer_distance
from latent4d.geometry.sampling import sample_surface


def mesh_chamfer_l1(pred: trimesh.Trimesh, gt: trimesh.Trimesh, n: int = 100_000, seed: int = 0) -> float:
    """ONet-style Chamfer-L1: mean of accuracy and completeness (Euclidean), on ``n`` surface samples."""
    if len(pred.faces) == 0:
        return float("inf")
    a, _, _ = sample_surface(pred.vertices, pred.faces, n, seed)
    b, _, _ = sample_surface(gt.vertices, gt.faces, n, seed + 1)
    d = chamfer_distance(torch.from_numpy(a), torch.from_numpy(b), squared=False)
    return float(d) / 2.0


def volume_iou(pred_occ: np.ndarray, gt_occ: np.ndarray) -> float:
    """Intersection over union of two boolean occupancy arrays."""
    inter = np.logical_and(pred_occ, gt_occ).sum()
    union = np.logical_or(pred_occ, gt_occ).sum()
    return float(inter / union) if union else 1.0
