"""Strand containers and strand maths: the :class:`Hairstyle`, arc-length resampling, TBN-local frames.

Conventions (see docs/hair.md):

- Positions are metres in the USC-HairSalon head frame: Y up, +Z towards the face, head at standing
  height (scalp roots at y ~ 1.7-1.9 m).
- A hairstyle is stored *ragged*: ``points (N, 3)`` with ``counts (S,)`` points per strand (the
  Cem Yuksel ``.hair`` layout), so files with strands of different lengths and 1-vertex
  "bald roots" (USC-HairSalon) round-trip exactly. Models use uniform ``(S, P, 3)`` arrays with
  P = 100 points resampled by arc length (:meth:`Hairstyle.resample`, :meth:`Hairstyle.hair_strands`).
- The model space of a strand is root-relative in the scalp TBN frame at its root:
  ``local = frame^T (p - root)`` with ``frame = [t | b | n]`` (columns; t = +u direction on the
  scalp, n = scalp normal, b = n x t). :func:`to_local` / :func:`to_world` are exact inverses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latent4d.errors import InputError

STRAND_POINTS = 100  # points per strand in the model space (USC-HairSalon / HAAR / Perm)


@dataclass(eq=False)
class Hairstyle:
    """A set of hair strands (ragged), with optional per-point attributes and root UVs.

    Attributes:
        points: (N, 3) float32, metres, all strands' points concatenated root to tip.
        counts: (S,) int64, points per strand (>= 1; a 1-point strand is a bald root).
        thickness: (N,) float32 or None (``.hair`` thickness, in the file's units).
        transparency: (N,) float32 or None (``.hair`` transparency in [0, 1]).
        colors: (N, 3) float32 or None (linear RGB in [0, 1]).
        root_uv: (S, 2) float32 or None: scalp UV of each root in [0, 1]^2 (see ``Scalp.uv``).
        meta: format details kept for exact round trips (``.hair`` defaults and info string) and
            free-form provenance; JSON-serialisable.
    """

    points: np.ndarray
    counts: np.ndarray
    thickness: np.ndarray | None = None
    transparency: np.ndarray | None = None
    colors: np.ndarray | None = None
    root_uv: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(np.asarray(self.points, dtype=np.float32).reshape(-1, 3))
        self.counts = np.asarray(self.counts, dtype=np.int64).reshape(-1)
        for name, width in (("thickness", 1), ("transparency", 1), ("colors", 3)):
            v = getattr(self, name)
            if v is not None:
                v = np.ascontiguousarray(np.asarray(v, dtype=np.float32))
                setattr(self, name, v.reshape(-1) if width == 1 else v.reshape(-1, width))
        if self.root_uv is not None:
            self.root_uv = np.ascontiguousarray(np.asarray(self.root_uv, dtype=np.float32).reshape(-1, 2))

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_strands(cls, strands, root_uv=None, **kwargs) -> Hairstyle:
        """From a uniform array ``strands (S, P, 3)`` (metres)."""
        arr = np.asarray(strands.detach().cpu() if hasattr(strands, "detach") else strands, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise InputError(f"strands: expected shape (S, P, 3), got {arr.shape}")
        S, P, _ = arr.shape
        return cls(arr.reshape(-1, 3), np.full(S, P, np.int64), root_uv=root_uv, **kwargs)

    @classmethod
    def from_list(cls, strands: list, **kwargs) -> Hairstyle:
        """From a list of ``(n_i, 3)`` polylines."""
        if not strands:
            raise InputError("hairstyle: no strands")
        pts = [np.asarray(s, np.float32).reshape(-1, 3) for s in strands]
        return cls(np.concatenate(pts), np.array([len(p) for p in pts], np.int64), **kwargs)

    # ------------------------------------------------------------------- properties
    @property
    def num_strands(self) -> int:
        return int(self.counts.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        """(S + 1,) start index of each strand in ``points`` (last entry = N)."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def roots(self) -> np.ndarray:
        """(S, 3) first point of every strand (metres)."""
        return self.points[self.offsets[:-1]]

    @property
    def bald(self) -> np.ndarray:
        """(S,) bool: strands with a single point (bald roots)."""
        return self.counts == 1

    @property
    def is_uniform(self) -> bool:
        return self.num_strands > 0 and bool((self.counts == self.counts[0]).all())

    @property
    def strands(self) -> np.ndarray:
        """(S, P, 3) view of uniform hair (every strand has P points); InputError otherwise."""
        if not self.is_uniform:
            raise InputError("hairstyle: strands have different point counts; use resample() or hair_strands()")
        return self.points.reshape(self.num_strands, int(self.counts[0]), 3)

    def strand(self, i: int) -> np.ndarray:
        """(n_i, 3) points of strand ``i``."""
        o = self.offsets
        return self.points[o[i]:o[i + 1]]

    def lengths(self) -> np.ndarray:
        """(S,) arc length of every strand (metres; 0 for bald roots)."""
        seg = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        o = self.offsets
        cs = np.concatenate([[0.0], np.cumsum(seg, dtype=np.float64)])
        return (cs[o[1:] - 1] - cs[o[:-1]]).astype(np.float32)

    # -------------------------------------------------------------------- checking
    def validate(self, name: str = "hairstyle") -> Hairstyle:
        """Raise InputError (naming ``name``) for zero strands, bad counts, NaN/inf or size mismatches."""
        if self.num_strands == 0:
            raise InputError(f"{name}: contains zero strands")
        if (self.counts < 1).any():
            i = int(np.argmax(self.counts < 1))
            raise InputError(f"{name}: strand {i} has {int(self.counts[i])} points (at least 1 expected)")
        if int(self.counts.sum()) != self.num_points:
            raise InputError(f"{name}: strand point counts sum to {int(self.counts.sum())} but "
                             f"{self.num_points} points are stored")
        if not np.isfinite(self.points).all():
            bad = int(np.argmax(~np.isfinite(self.points).all(1)))
            strand = int(np.searchsorted(self.offsets, bad, side="right") - 1)
            raise InputError(f"{name}: NaN or infinite coordinate at point {bad} (strand {strand})")
        for attr in ("thickness", "transparency", "colors"):
            v = getattr(self, attr)
            if v is not None:
                if v.shape[0] != self.num_points:
                    raise InputError(f"{name}: {attr} has {v.shape[0]} entries for {self.num_points} points")
                if not np.isfinite(v).all():
                    raise InputError(f"{name}: {attr} contains NaN or infinite values")
        if self.root_uv is not None and self.root_uv.shape[0] != self.num_strands:
            raise InputError(f"{name}: root_uv has {self.root_uv.shape[0]} rows for {self.num_strands} strands")
        return self

    # ------------------------------------------------------------------ operations
    def subset(self, idx) -> Hairstyle:
        """The strands ``idx`` (indices or boolean mask), attributes included."""
        idx = np.arange(self.num_strands)[np.asarray(idx)]
        o = self.offsets
        sel = _ranges(o[idx], self.counts[idx])
        return Hairstyle(self.points[sel], self.counts[idx],
                         None if self.thickness is None else self.thickness[sel],
                         None if self.transparency is None else self.transparency[sel],
                         None if self.colors is None else self.colors[sel],
                         None if self.root_uv is None else self.root_uv[idx], dict(self.meta))

    def resample(self, num_points: int = STRAND_POINTS) -> Hairstyle:
        """Every strand with >= 2 points resampled to ``num_points`` by arc length; bald roots stay 1 point.

        Per-point attributes are interpolated linearly along the arc.
        """
        if num_points < 2:
            raise InputError(f"resample: need at least 2 points per strand, got {num_points}")
        new_counts = np.where(self.counts > 1, num_points, 1)
        new_off = np.concatenate([[0], np.cumsum(new_counts)])
        total = int(new_off[-1])
        attrs = [a for a in ("thickness", "transparency", "colors") if getattr(self, a) is not None]
        feats = [self.points] + [getattr(self, a).reshape(self.num_points, -1) for a in attrs]
        widths = [f.shape[1] for f in feats]
        stacked = np.concatenate(feats, axis=1)
        out = np.empty((total, stacked.shape[1]), np.float32)
        o = self.offsets
        for n in np.unique(self.counts):
            sel = np.flatnonzero(self.counts == n)
            src = stacked[_ranges(o[sel], self.counts[sel])].reshape(len(sel), int(n), -1)
            if n == 1:
                res = src
            else:
                res = resample_polylines(src[..., :3], num_points, extra=src[..., 3:] if src.shape[-1] > 3 else None)
            out[_ranges(new_off[sel], new_counts[sel])] = res.reshape(-1, stacked.shape[1])
        parts = np.split(out, np.cumsum(widths)[:-1], axis=1)
        kw = {a: (p[:, 0] if w == 1 else p) for a, p, w in zip(attrs, parts[1:], widths[1:])}
        return Hairstyle(parts[0], new_counts, root_uv=self.root_uv, meta=dict(self.meta), **kw)

    def hair_strands(self, num_points: int | None = STRAND_POINTS) -> tuple[np.ndarray, np.ndarray]:
        """Uniform array of the non-bald strands: ``(strands (S', P, 3), index (S',))``.

        Strands are resampled to ``num_points`` (unless ``None`` and already uniform).
        """
        idx = np.flatnonzero(~self.bald)
        if len(idx) == 0:
            raise InputError("hairstyle: every strand is a bald root (no hair to use)")
        sub = self.subset(idx)
        if num_points is None and sub.is_uniform:
            return sub.strands.copy(), idx
        return sub.resample(num_points or STRAND_POINTS).strands, idx

    def align_to(self, scalp=None, units: str = "auto") -> tuple[Hairstyle, Any]:
        """``(aligned copy, SimilarityTransform)`` putting the roots on ``scalp`` (default head):
        scale from ``units`` (``m`` / ``cm`` / ``mm``, or ``auto``), rotation and translation by
        registration (:func:`latent4d.hair.align.align_hairstyle`)."""
        from latent4d.hair.align import align_hairstyle

        return align_hairstyle(self, scalp, units)

    def with_meta(self, **kw) -> Hairstyle:
        h = self.subset(np.arange(self.num_strands))
        h.meta.update(kw)
        return h

    def meta_json(self) -> str:
        return json.dumps(self.meta, sort_keys=True, default=str)

    def __repr__(self) -> str:
        n_bald = int(self.bald.sum())
        extra = [a for a in ("thickness", "transparency", "colors", "root_uv") if getattr(self, a) is not None]
        return (f"Hairstyle(strands={self.num_strands}, points={self.num_points}, bald={n_bald}"
                + (f", attrs={extra}" if extra else "") + ")")


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + c)`` for every (s, c), vectorised."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    rep_start = np.repeat(np.asarray(starts, np.int64) - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(total, dtype=np.int64) + rep_start


def resample_polylines(strands: np.ndarray, num_points: int, extra: np.ndarray | None = None) -> np.ndarray:
    """Resample polylines ``(S, n, 3)`` to ``num_points`` points evenly spaced by arc length.

    The first and last points are kept exactly. Zero-length strands give repeated points.
    ``extra (S, n, k)`` per-point attributes are interpolated at the same arc parameters and
    concatenated to the output, which is ``(S, num_points, 3 + k)``.
    """
    x = np.asarray(strands, np.float64)
    S, n, _ = x.shape
    feats = x if extra is None else np.concatenate([x, np.asarray(extra, np.float64)], -1)
    seg = np.linalg.norm(np.diff(x, axis=1), axis=-1)  # (S, n-1)
    cum = np.concatenate([np.zeros((S, 1)), np.cumsum(seg, axis=1)], axis=1)  # (S, n)
    total = cum[:, -1:]
    safe = np.where(total > 0, total, 1.0)
    t = cum / safe  # (S, n) in [0, 1], non-decreasing
    t[:, -1] = 1.0
    q = np.linspace(0.0, 1.0, num_points)
    # one searchsorted over all strands: offset each strand's parameters by 2 * index
    off = 2.0 * np.arange(S)[:, None]
    flat_t = (t + off).ravel()
    flat_q = (q[None, :] + off).ravel()
    j = np.searchsorted(flat_t, flat_q, side="right") - 1
    j = np.clip(j.reshape(S, num_points) - np.arange(S)[:, None] * n, 0, n - 2)
    base = (np.arange(S) * n)[:, None]
    t_flat = t.ravel()
    t0 = t_flat[j + base]
    t1 = t_flat[j + 1 + base]
    w = np.where(t1 > t0, (q[None, :] - t0) / np.where(t1 > t0, t1 - t0, 1.0), 0.0)
    w = np.clip(w, 0.0, 1.0)[..., None]
    f_flat = feats.reshape(S * n, -1)
    a = f_flat[j + base]
    b = f_flat[j + 1 + base]
    out = a + (b - a) * w
    out[:, 0] = feats[:, 0]
    out[:, -1] = np.where(total[:, :, None] > 0, feats[:, -1:], feats[:, :1])[:, 0]
    return out.astype(np.float32)


# --------------------------------------------------------------------------- model space
def to_local(strands, roots, frames):
    """World strands -> root-relative TBN-local coordinates.

    Args:
        strands: (S, P, 3) metres (numpy or torch).
        roots: (S, 3) metres.
        frames: (S, 3, 3) orthonormal, columns [t, b, n].
    Returns:
        (S, P, 3) ``frame^T (p - root)``: x along t, y along b, z along the scalp normal.
    """
    if hasattr(strands, "detach"):
        import torch

        return torch.einsum("spk,skj->spj", strands - roots[:, None], frames)
    return np.einsum("spk,skj->spj", strands - roots[:, None], frames).astype(np.float32)


def to_world(local, roots, frames):
    """Inverse of :func:`to_local`: ``p = root + frame @ local`` (same shapes)."""
    if hasattr(local, "detach"):
        import torch

        return torch.einsum("skj,spj->spk", frames, local) + roots[:, None]
    return (np.einsum("skj,spj->spk", frames, local) + roots[:, None]).astype(np.float32)


def segment_directions(strands, eps: float = 1e-9):
    """Unit segment vectors ``(..., P-1, 3)`` of ``strands (..., P, 3)`` (torch or numpy)."""
    if hasattr(strands, "detach"):
        d = strands[..., 1:, :] - strands[..., :-1, :]
        return d / d.norm(dim=-1, keepdim=True).clamp_min(eps)
    d = np.diff(strands, axis=-2)
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), eps)


def curvature(strands, eps: float = 1e-9):
    """Discrete curvature ``(..., P-2)`` in 1/m: turning angle between segments / mean segment length."""
    if hasattr(strands, "detach"):
        import torch

        d = strands[..., 1:, :] - strands[..., :-1, :]
        ln = d.norm(dim=-1)
        u = d / ln.unsqueeze(-1).clamp_min(eps)
        cos = (u[..., 1:, :] * u[..., :-1, :]).sum(-1).clamp(-1, 1)
        sin = torch.linalg.cross(u[..., 1:, :], u[..., :-1, :], dim=-1).norm(dim=-1)
        ang = torch.atan2(sin, cos)
        return ang / (0.5 * (ln[..., 1:] + ln[..., :-1])).clamp_min(eps)
    d = np.diff(strands, axis=-2)
    ln = np.linalg.norm(d, axis=-1)
    u = d / np.maximum(ln[..., None], eps)
    cos = np.clip((u[..., 1:, :] * u[..., :-1, :]).sum(-1), -1, 1)
    sin = np.linalg.norm(np.cross(u[..., 1:, :], u[..., :-1, :]), axis=-1)
    return np.arctan2(sin, cos) / np.maximum(0.5 * (ln[..., 1:] + ln[..., :-1]), eps)
