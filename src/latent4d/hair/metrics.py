"""Hair metrics: strand reconstruction errors, PCA baseline, plausibility and diversity of samples."""

from __future__ import annotations

import numpy as np
import torch

from latent4d.hair.scalp import Head, Scalp
from latent4d.hair.strands import curvature


def _t(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float32)


def position_error(pred, target) -> torch.Tensor:
    """Per-strand mean Euclidean point distance (S,) in metres, for strands (S, P, 3)."""
    return (_t(pred) - _t(target)).norm(dim=-1).mean(-1)


def curvature_error(pred, target) -> torch.Tensor:
    """Per-strand mean absolute curvature difference (S,) in 1/m."""
    return (curvature(_t(pred)) - curvature(_t(target))).abs().mean(-1)


def summarize_errors(err_m: torch.Tensor, curv: torch.Tensor | None = None) -> dict[str, float]:
    """mean / 95th percentile position error in mm (+ mean curvature error in 1/m)."""
    e = _t(err_m).double() * 1000.0
    out = {"pos_err_mm": float(e.mean()), "pos_err_p95_mm": float(torch.quantile(e, 0.95)) if len(e) else float("nan")}
    if curv is not None:
        out["curv_err"] = float(_t(curv).double().mean())
    return out


class PCABaseline:
    """Linear baseline: the first ``k`` principal components of flattened local strands (N, P, 3)."""

    def __init__(self, k: int = 64):
        self.k = k
        self.mean: torch.Tensor | None = None
        self.basis: torch.Tensor | None = None

    def fit(self, strands) -> PCABaseline:
        x = _t(strands).double().flatten(1)
        self.mean = x.mean(0)
        xc = x - self.mean
        # right singular vectors via the covariance (D = 3P is small)
        cov = xc.T @ xc / max(len(x) - 1, 1)
        evals, evecs = torch.linalg.eigh(cov)
        self.basis = evecs[:, torch.argsort(evals, descending=True)[: self.k]]
        return self

    def encode(self, strands) -> torch.Tensor:
        return (_t(strands).double().flatten(1) - self.mean) @ self.basis

    def decode(self, codes) -> torch.Tensor:
        return (codes @ self.basis.T + self.mean).float()

    def reconstruct(self, strands) -> torch.Tensor:
        s = _t(strands)
        return self.decode(self.encode(s)).view_as(s)


def inside_head_fraction(strands, head: Head | None = None, margin: float = 0.0) -> float:
    """Fraction of strand points (roots excluded) strictly inside the head ellipsoid."""
    head = head or Head()
    x = np.asarray(strands)
    if x.ndim == 3:
        x = x[:, 1:]
    return float(head.inside(x.reshape(-1, 3), -abs(margin)).mean()) if x.size else 0.0


def root_on_scalp_error(roots, scalp: Scalp | None = None) -> float:
    """Mean distance (mm) of roots (S, 3) from the scalp surface (radial, ellipsoid head)."""
    scalp = scalp or Scalp()
    return float(np.abs(scalp.head.radial_distance(np.asarray(roots))).mean() * 1000.0)


def guide_set_distance(a, b) -> float:
    """Mean point distance (mm) between two guide sets on the same roots (V, P, 3)."""
    return float(position_error(a, b).mean() * 1000.0)


def diversity(guides: list) -> float:
    """Mean pairwise guide-set distance (mm) between hairstyles sharing the guide grid."""
    n = len(guides)
    if n < 2:
        return 0.0
    d = [guide_set_distance(guides[i], guides[j]) for i in range(n) for j in range(i + 1, n)]
    return float(np.mean(d))


def region_errors(pred_points, gt_points, gt_region) -> dict[str, float]:
    """Chamfer-style errors (mm) of a reconstruction, split by a region label on the ground truth.

    For each region R (``gt_region`` True = "a", False = "b"): completeness = mean distance from GT
    points in R to the nearest predicted point; accuracy = mean distance from predicted points whose
    nearest GT point is in R to that GT point; error = their average.
    Returns ``{a_completeness, a_accuracy, a_error, b_...}`` with a = region True, b = region False.
    """
    from latent4d.geometry.distances import knn

    p = _t(pred_points).reshape(-1, 3)
    g = _t(gt_points).reshape(-1, 3)
    reg = torch.as_tensor(np.asarray(gt_region)).reshape(-1).bool()
    d_gp, _ = knn(g, p, 1)
    d_pg, i_pg = knn(p, g, 1)
    d_gp, d_pg, i_pg = d_gp[:, 0].sqrt(), d_pg[:, 0].sqrt(), i_pg[:, 0]
    out = {}
    for name, mask_g in (("a", reg), ("b", ~reg)):
        mask_p = mask_g[i_pg]
        comp = float(d_gp[mask_g].mean()) * 1000 if mask_g.any() else float("nan")
        acc = float(d_pg[mask_p].mean()) * 1000 if mask_p.any() else float("nan")
        out.update({f"{name}_completeness": comp, f"{name}_accuracy": acc, f"{name}_error": 0.5 * (comp + acc)})
    return out
