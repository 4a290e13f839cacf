"""Units and frame of hair files: where a hairstyle's roots sit relative to the scalp, the check every
command that reads a hair file applies, and the similarity transform that puts the roots on the scalp.

- :func:`root_placement` measures it: the roots' distance to the scalp region (median, 95th
  percentile, metres), the root cloud's size relative to the scalp's (RMS radius about the centroid)
  and the distance between the two centroids.
- :func:`check_on_scalp` raises :class:`~latent4d.errors.InputError` when the median distance exceeds
  :data:`TOLERANCE_MEDIAN` (5 mm) or the 95th percentile :data:`TOLERANCE_P95` (25 mm), with the
  measured figures and the fix (``latent4d align IN OUT units=...``).
- :func:`estimate_alignment` finds ``x_head = scale * R @ x_file + t`` (a :class:`SimilarityTransform`):
  the scale from ``units`` (m / cm / mm) or, with ``auto``, from the root cloud's size; then trimmed
  ICP with a scale term from several starts (six up axes x twelve turns about the up axis), first
  with two-sided nearest-point pairs against points of the scalp region (coverage, no collapse) and a
  search over small turns about the head centre, then with the roots' closest points on the scalp (precision).
- :func:`apply_transform` moves a hairstyle (``inverse=True``: back into the user's frame);
  :meth:`SimilarityTransform.save` / :meth:`~SimilarityTransform.load` keep it as JSON.

Procedural roots lie within 0.0001 mm of the scalp (float32 rounding); the tolerances leave room for
real heads that differ from the ellipsoid head (pass their scalp mesh with ``scalp=``). Positions are
metres in the USC-HairSalon head frame (Y up, +Z towards the face) after alignment; ``thickness`` is
scaled with the points. This module works on any object with ``points`` / ``counts`` / ``roots`` /
``bald`` (a :class:`~latent4d.hair.strands.Hairstyle`) and imports neither the formats nor the strands.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latent4d.errors import InputError
from latent4d.hair.scalp import Scalp

#: roots whose median / 95th-percentile distance to the scalp exceeds these (metres) are refused
TOLERANCE_MEDIAN = 0.005
TOLERANCE_P95 = 0.025
#: metres per file unit for ``units=``
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
_MAX_ROOTS = 2000  # roots used by the registration (a seeded subset)
_SAMPLES = 2000  # scalp-region points of the coarse stage
ITERS = 40  # coarse ICP iterations of the best starts


@dataclass
class RootPlacement:
    """Where roots sit relative to the scalp: distances in metres, ``scale`` = RMS radius of the root
    cloud / that of the scalp region (1 for a full head of hair in metres, ~100 for centimetres),
    ``offset`` = distance (m, in the file's numbers) between the roots' and the scalp's centroids."""

    median: float
    p95: float
    scale: float
    offset: float
    roots: int

    @property
    def on_scalp(self) -> bool:
        return self.median <= TOLERANCE_MEDIAN and self.p95 <= TOLERANCE_P95

    def to_dict(self) -> dict[str, float]:
        return {"median_m": self.median, "p95_m": self.p95, "scale": self.scale, "offset_m": self.offset,
                "roots": self.roots}


def _rms_radius(p: np.ndarray) -> float:
    return float(np.sqrt(((p - p.mean(0)) ** 2).sum(1).mean()))


def _hair_roots(hairstyle) -> np.ndarray:
    """(S, 3) float64 roots of the non-bald strands (all roots when every strand is bald)."""
    roots = np.asarray(hairstyle.roots, np.float64)
    keep = ~np.asarray(hairstyle.bald)
    return roots[keep] if keep.any() else roots


def root_placement(roots, scalp: Scalp | None = None) -> RootPlacement:
    """Measure roots ``(S, 3)`` against ``scalp`` (default head): see :class:`RootPlacement`."""
    scalp = scalp or Scalp()
    r = np.asarray(roots, np.float64).reshape(-1, 3)
    if not len(r) or not np.isfinite(r).all():
        raise InputError("roots: expected finite (S, 3) coordinates")
    if len(r) > 50000:
        r = r[np.random.default_rng(0).choice(len(r), 50000, replace=False)]
    d = scalp.surface_distance(r)
    ref = scalp.sample_roots(_SAMPLES, seed=0)[0].astype(np.float64)
    return RootPlacement(float(np.median(d)), float(np.percentile(d, 95)),
                         _rms_radius(r) / max(_rms_radius(ref), 1e-12), float(np.linalg.norm(r.mean(0) - ref.mean(0))),
                         len(r))


def _guess_units(scale: float) -> str:
    """The ``units=`` a root-cloud size ratio suggests (``auto`` when none is within 30 %)."""
    for name, m in UNITS.items():
        if abs(math.log(max(scale, 1e-12) * m)) < math.log(1.3):
            return name
    return "auto"


def placement_message(name: str, pl: RootPlacement) -> str:
    """The one-line InputError text for roots off the scalp: measured figures and the fix."""
    units = _guess_units(pl.scale)
    hint = {"cm": " (centimetres?)", "mm": " (millimetres?)", "m": " (metres, but moved or turned?)"}.get(units, "")
    stem = Path(name)
    out = stem.with_name(f"{stem.stem}_aligned{stem.suffix or '.data'}")
    return (f"{name}: the hair roots are not on the scalp: {pl.median * 1000:.4g} mm (median) / {pl.p95 * 1000:.4g} mm "
            f"(95th percentile) from it (tolerance {TOLERANCE_MEDIAN * 1000:g} / {TOLERANCE_P95 * 1000:g} mm); the "
            f"root cloud is {pl.scale:.3g} x the scalp's size{hint} and its centre {pl.offset:.3g} units from the "
            "scalp's. latent4d expects metres, Y up, the USC-HairSalon head frame. Fix: latent4d align "
            f"{name} {out} units={units} (writes the aligned file and its transform; see docs/hair.md)")


def check_on_scalp(hairstyle, scalp: Scalp | None = None, name: str = "hairstyle") -> RootPlacement:
    """Measure ``hairstyle``'s roots (:func:`root_placement`); InputError naming ``name``, the measured
    offset and scale and the fix when they are not on the scalp. Returns the placement."""
    pl = root_placement(_hair_roots(hairstyle), scalp)
    if not pl.on_scalp:
        raise InputError(placement_message(str(name), pl))
    return pl


def check_points_near_scalp(points, scalp: Scalp | None = None, name: str = "observation") -> None:
    """A loose check for observed hair points (no roots): the nearest 10 % must lie within 50 mm of the
    scalp (observed hair touches the head somewhere), else InputError with the offset, scale and fix."""
    scalp = scalp or Scalp()
    p = np.asarray(points, np.float64).reshape(-1, 3)
    if not len(p) or not np.isfinite(p).all():
        return  # empty / NaN clouds: HairObservation.validate names them
    if len(p) > 50000:
        p = p[np.random.default_rng(0).choice(len(p), 50000, replace=False)]
    near = float(np.percentile(scalp.surface_distance(p), 10))
    if near > 0.05:
        ref = scalp.sample_roots(_SAMPLES, seed=0)[0]
        raise InputError(f"{name}: the observed hair is not at the head: its nearest 10 % of points lie {near:.3g} m "
                         f"from the scalp (at most 0.05 m expected); the cloud is {_rms_radius(p) / _rms_radius(ref):.3g}"
                         f" x the scalp's size, its centre {np.linalg.norm(p.mean(0) - ref.mean(0)):.3g} units away. "
                         "latent4d expects metres, Y up, the USC-HairSalon head frame: convert the points (align the "
                         "hair file they came from with latent4d align IN OUT units=..., then sample it)")


# --------------------------------------------------------------------------------------- transform
@dataclass
class SimilarityTransform:
    """``x_head = scale * rotation @ x_file + translation`` (metres, head frame); ``units`` the file's
    units as given (``auto`` when estimated); ``residual`` the root-to-scalp distances after alignment."""

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    units: str = "m"
    residual: dict[str, float] = field(default_factory=dict)

    def apply(self, points, inverse: bool = False) -> np.ndarray:
        """Points ``(N, 3)`` into the head frame (``inverse``: back into the file's frame), float64."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        R, t = np.asarray(self.rotation, np.float64), np.asarray(self.translation, np.float64)
        if inverse:
            return (p - t) @ R / self.scale
        return self.scale * p @ R.T + t

    def to_dict(self) -> dict[str, Any]:
        return {"scale": float(self.scale), "rotation": np.asarray(self.rotation, float).tolist(),
                "translation": np.asarray(self.translation, float).tolist(), "units": self.units,
                "residual": {k: float(v) for k, v in self.residual.items()},
                "convention": "x_head = scale * rotation @ x_file + translation (metres, USC-HairSalon head frame)"}

    @classmethod
    def from_dict(cls, d: Any, name: str = "transform") -> SimilarityTransform:
        """From :meth:`to_dict`'s layout; InputError naming ``name`` for anything else (untrusted JSON)."""
        if not isinstance(d, dict):
            raise InputError(f"{name}: expected a JSON object with scale, rotation, translation")
        try:
            s = float(d["scale"])
            R = np.asarray(d["rotation"], np.float64)
            t = np.asarray(d["translation"], np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{name}: missing or non-numeric {e} (expected scale, rotation 3x3, translation 3)") from None
        if not (math.isfinite(s) and s > 0):
            raise InputError(f"{name}: scale {s} must be a positive finite number")
        if R.shape != (3, 3) or t.shape != (3,) or not (np.isfinite(R).all() and np.isfinite(t).all()):
            raise InputError(f"{name}: rotation must be 3x3 and translation 3 finite numbers")
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0:
            raise InputError(f"{name}: rotation is not a rotation matrix (orthonormal, determinant +1)")
        res = d.get("residual") if isinstance(d.get("residual"), dict) else {}
        return cls(s, R, t, str(d.get("units", "m"))[:16],
                   {str(k): float(v) for k, v in res.items() if isinstance(v, int | float)})

    def save(self, path) -> Path:
        from latent4d.fileio import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path) -> SimilarityTransform:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such transform file")
        if p.stat().st_size > 1 << 20:
            raise InputError(f"{p}: a transform file of {p.stat().st_size} bytes is not a latent4d transform")
        try:
            d = json.loads(p.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{p}: not a JSON transform ({type(e).__name__})") from None
        return cls.from_dict(d, str(p))


def apply_transform(hairstyle, transform: SimilarityTransform | str | Path, inverse: bool = False):
    """A copy of ``hairstyle`` moved by ``transform`` (or a transform JSON path); ``inverse=True`` takes
    results back to the user's frame. ``thickness`` is scaled with the points; root UVs are dropped
    (they belong to the scalp the strands are on)."""
    tf = transform if isinstance(transform, SimilarityTransform) else SimilarityTransform.load(transform)
    pts = tf.apply(hairstyle.points, inverse=inverse).astype(np.float32)
    k = 1.0 / tf.scale if inverse else tf.scale
    thick = None if hairstyle.thickness is None else (hairstyle.thickness * k).astype(np.float32)
    return dataclasses.replace(hairstyle, points=pts, thickness=thick, root_uv=None, meta=dict(hairstyle.meta))


# --------------------------------------------------------------------------------------- registration
def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s R src + t`` for paired points ``(N, 3)`` (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, D, Vt = np.linalg.svd(b.T @ a / len(src))
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    s = float(np.trace(np.diag(D) @ S) / max((a ** 2).sum(1).mean(), 1e-30)) if with_scale else 1.0
    return s, R, mu_d - s * R @ mu_s


def _trim(d: np.ndarray, keep: float) -> np.ndarray:
    return d <= np.quantile(d, keep)


def _icp_coarse(src, ref, tree, s, R, t, iters: int, fixed_scale: bool, keep: float = 0.9):
    """Two-sided trimmed ICP against scalp-region points ``ref`` (``tree`` its KD-tree); returns
    ``(score m, s, R, t)`` with ``score`` the mean kept pair distance of both directions."""
    from scipy.spatial import cKDTree

    score = np.inf
    for _ in range(iters):
        x = s * src @ R.T + t
        d1, j1 = tree.query(x)
        d2, j2 = cKDTree(x).query(ref)
        k1, k2 = _trim(d1, keep), _trim(d2, keep)
        score = 0.5 * (d1[k1].mean() + d2[k2].mean())
        a = np.concatenate([src[k1], src[j2[k2]]])
        b = np.concatenate([ref[j1[k1]], ref[k2]])
        if fixed_scale:
            _, R, t = umeyama(s * a, b, with_scale=False)
        else:
            s, R, t = umeyama(a, b)
    return float(score), s, R, t


def axis_rotation(axis, degrees: float) -> np.ndarray:
    """(3, 3) rotation by ``degrees`` about ``axis`` (right-handed, Rodrigues)."""
    a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = math.radians(degrees)
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K


def _pair_score(x: np.ndarray, ref: np.ndarray, tree, keep: float = 0.9) -> float:
    """Two-sided trimmed mean nearest distance (m) between points ``x`` and the scalp points ``ref``."""
    from scipy.spatial import cKDTree

    d1, d2 = tree.query(x)[0], cKDTree(x).query(ref)[0]
    return float(0.5 * (d1[_trim(d1, keep)].mean() + d2[_trim(d2, keep)].mean()))


def _turn_search(src, ref, tree, s, R, t, pivot: np.ndarray, steps=(4.0, 2.0, 1.0, 0.5, 0.25)):
    """Coordinate descent over small turns about ``pivot`` (the head centre) on :func:`_pair_score`:
    ICP slides slowly along the head, this moves the whole cloud along it directly."""
    best = _pair_score(s * src @ R.T + t, ref, tree)
    for step in steps:
        improved = True
        while improved:
            improved = False
            for axis in np.vstack([np.eye(3), -np.eye(3)]):
                Q = axis_rotation(axis, step)
                R2, t2 = Q @ R, Q @ (t - pivot) + pivot
                sc = _pair_score(s * src @ R2.T + t2, ref, tree)
                if sc < best - 1e-9:
                    best, R, t, improved = sc, R2, t2, True
    return best, s, R, t


def _icp_fine(src, scalp: Scalp, ref, s, R, t, iters: int, fixed_scale: bool, keep: float = 0.9):
    """Trimmed ICP pairing each root with its closest point on the scalp (precision along the normal)
    and each of the dense scalp-region points ``ref`` with its nearest root (coverage: what pins the
    sliding along the surface and the scale)."""
    from scipy.spatial import cKDTree

    for _ in range(iters):
        x = s * src @ R.T + t
        q = scalp.closest_points(x)
        k1 = _trim(np.linalg.norm(x - q, axis=1), keep)
        d2, j2 = cKDTree(x).query(ref)
        k2 = _trim(d2, keep)
        a, b = np.concatenate([src[k1], src[j2[k2]]]), np.concatenate([q[k1], ref[k2]])
        if fixed_scale:
            _, R, t = umeyama(s * a, b, with_scale=False)
        else:
            s, R, t = umeyama(a, b)
    return s, R, t


def _starts() -> list[np.ndarray]:
    """Initial rotations: each of the six axis directions taken to +Y, then 12 turns about Y."""
    out = []
    for up in np.vstack([np.eye(3), -np.eye(3)]):
        v = np.cross(up, [0.0, 1.0, 0.0])
        c = float(up[1])
        if np.linalg.norm(v) < 1e-9:
            R_up = np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
        else:
            vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
            R_up = np.eye(3) + vx + vx @ vx / (1 + c)
        for k in range(12):
            a = 2 * math.pi * k / 12
            Ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
            out.append(Ry @ R_up)
    return out


def estimate_alignment(roots, scalp: Scalp | None = None, units: str = "auto", seed: int = 0,
                       keep: int = 4) -> SimilarityTransform:
    """The similarity transform putting ``roots (S, 3)`` (file units) on ``scalp`` (see module doc).

    ``units``: ``m`` / ``cm`` / ``mm`` fix the scale; ``auto`` estimates it. All 72 starts run 6
    coarse iterations on subsets, the best ``keep`` run :data:`ITERS` more and a search over small turns
    about the head centre (ICP slides slowly along the head), the best of those runs 20 coarse and 30
    fine iterations.
    """
    from scipy.spatial import cKDTree

    if units not in (*UNITS, "auto"):
        raise InputError(f"units={units} is not one of auto, {', '.join(UNITS)}")
    scalp = scalp or Scalp()
    src = np.asarray(roots, np.float64).reshape(-1, 3)
    if len(src) < 10 or not np.isfinite(src).all():
        raise InputError(f"alignment needs at least 10 finite roots, got {len(src)}")
    if len(src) > _MAX_ROOTS:
        src = src[np.random.default_rng(seed).choice(len(src), _MAX_ROOTS, replace=False)]
    ref = scalp.sample_roots(_SAMPLES, seed=seed)[0].astype(np.float64)
    tree, fixed = cKDTree(ref), units != "auto"
    s0 = UNITS[units] if fixed else _rms_radius(ref) / max(_rms_radius(src), 1e-30)
    few, few_ref = src[:400], ref[::4]  # the screening of the 72 starts runs on subsets
    few_tree, runs = cKDTree(few_ref), []
    for R0 in _starts():
        t0 = ref.mean(0) - s0 * R0 @ src.mean(0)
        runs.append(_icp_coarse(few, few_ref, few_tree, s0, R0, t0, 6, fixed))
    best = sorted(runs, key=lambda r: r[0])[:keep]
    best = [_icp_coarse(src, ref, tree, s, R, t, ITERS, fixed) for _, s, R, t in best]
    best = [_turn_search(src, ref, tree, s, R, t, scalp.head.c) for _, s, R, t in best]
    _, s, R, t = min(best, key=lambda r: r[0])
    _, s, R, t = _icp_coarse(src, ref, tree, s, R, t, 20, fixed)
    dense = scalp.sample_roots(4 * _SAMPLES, seed=seed + 1)[0].astype(np.float64)
    s, R, t = _icp_fine(src, scalp, dense, s, R, t, 30, fixed)
    d = scalp.surface_distance(s * src @ R.T + t)
    return SimilarityTransform(float(s), R, t, units, {"median_m": float(np.median(d)),
                                                        "p95_m": float(np.percentile(d, 95))})


def align_hairstyle(hairstyle, scalp: Scalp | None = None, units: str = "auto", name: str = "hairstyle"):
    """``(aligned hairstyle, transform)``: :func:`estimate_alignment` on the hair roots, applied to every
    point. InputError when even the aligned roots are not on the scalp (naming the residual)."""
    tf = estimate_alignment(_hair_roots(hairstyle), scalp, units)
    res = tf.residual
    if not (res["median_m"] <= TOLERANCE_MEDIAN and res["p95_m"] <= TOLERANCE_P95):
        raise InputError(f"{name}: could not put the roots on the scalp: after the best similarity transform they "
                         f"lie {res['median_m'] * 1000:.3g} mm (median) / {res['p95_m'] * 1000:.3g} mm (95th percentile) "
                         f"from it (scale {tf.scale:.4g}, units={units}); the roots may cover too little of the "
                         "scalp or belong to another head shape (pass that head's scalp mesh with scalp=)")
    return apply_transform(hairstyle, tf), tf
