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


def nearest_distances(queries, bank, point_step: int = 1, chunk: int = 16) -> np.ndarray:
    """For each query guide set, the mean point distance (mm) to its nearest guide set in ``bank``.

    ``queries``: guide sets (Q, V, P, 3) (or a list of (V, P, 3)) on the same roots as the bank's;
    ``bank``: an iterable of guide-set batches (B, V, P, 3) (or single (V, P, 3) sets), consumed once, so a
    large training set can be decoded chunk by chunk. ``point_step`` keeps every k-th point of each
    strand (the distance is then over those points). Returns (Q,) mm."""
    q = torch.stack([_t(g) for g in queries]) if isinstance(queries, list | tuple) else _t(queries)
    q = q[:, :, ::point_step].float()
    best = torch.full((len(q),), float("inf"))
    for b in bank:
        b = _t(b).float()
        b = b[None] if b.dim() == 3 else b
        for i in range(0, len(b), chunk):
            d = (q[:, None] - b[None, i:i + chunk, :, ::point_step]).norm(dim=-1).mean((-1, -2))  # (Q, b)
            best = torch.minimum(best, d.min(1).values)
    return best.numpy() * 1000.0


def posterior_stats(mu, logvar, active_threshold: float = 0.01) -> dict[str, float]:
    """How much of a VAE's latent space the data uses, from posterior means / log-variances (N, D).

    ``kl``: mean KL(q(z|x) || N(0, I)) per style (nats); ``active_units``: dimensions whose posterior
    mean varies over the data (Var_x mu_d > ``active_threshold``, Burda et al. 2016); ``kl_active_share``:
    share of the KL in those; ``mu_var_active`` / ``sigma2_active``: mean Var_x(mu_d) and E_x sigma_d^2 over
    active dimensions (the aggregate posterior's variance is their sum; N(0, I) has 1);
    ``mu_var_total``: sum of Var_x(mu_d) over all dims (N(0, I) has D); ``mu_mean_norm``: norm of the mean
    posterior mean (0 for a centred aggregate posterior)."""
    mu, lv = _t(mu).double(), _t(logvar).double()
    kl_d = 0.5 * (mu.square() + lv.exp() - 1 - lv).mean(0)
    var_mu, s2 = mu.var(0), lv.exp().mean(0)
    act = var_mu > active_threshold
    n_act = int(act.sum())
    return {"kl": float(kl_d.sum()), "active_units": n_act, "dims": int(mu.shape[1]),
            "kl_active_share": float(kl_d[act].sum() / kl_d.sum().clamp_min(1e-12)),
            "mu_var_active": float(var_mu[act].mean()) if n_act else 0.0,
            "sigma2_active": float(s2[act].mean()) if n_act else float("nan"),
            "sigma2_inactive": float(s2[~act].mean()) if n_act < len(act) else float("nan"),
            "mu_var_total": float(var_mu.sum()), "mu_mean_norm": float(mu.mean(0).norm())}


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
