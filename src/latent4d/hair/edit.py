"""One set of hair edit operations, for every editing session: the file-only guide editor of the viewer
(``viewer/hair_edit.py``: dense hair follows edited guides) and the model-backed
:class:`~latent4d.hair.pipeline.HairEditor` (edited guides are re-encoded and projected onto the
hairstyle-VAE), so the same tool with the same settings bends a guide the same way with and without
a trained model. Numpy only (opening a hair file in the viewer does not import torch).

Operations on one polyline ``x (P, 3)`` in metres (the root never moves; the result has P points):

- ``move_tip(target, falloff=2)``: displacement ``(target - tip) * u^falloff``, ``u`` the normalised
  arc length;
- ``cut(fraction=0.7 | length=metres)``: keep the first ``fraction`` of the arc length (at least 2 %),
  or the first ``length`` metres (at least 2 mm);
- ``extend(metres=0.05, gravity=0.6)``: continue past the tip along the direction of its last 10 %,
  bending towards -Y (``gravity``: the share of the downward direction at the new tip); a negative
  length cuts;
- ``curl(amplitude=0.01, turns=4)``: add a helix around the strand (parallel-transport frame) whose
  radius grows smoothly from 0 at the root to ``amplitude`` metres at the tip, ``turns`` cycles
  over the strand.

:func:`brush_edit` applies an operation to a guide and, within ``radius`` metres of its root, to its
neighbours with Gaussian weights (the viewer's brush). :class:`EditSession` is what an editing
session offers the viewer's hair panel.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from latent4d.errors import InputError
from latent4d.hair.strands import Hairstyle, resample_polylines

EDIT_OPS = ("move_tip", "cut", "extend", "curl")
#: default settings of each operation (the viewer's sliders start here)
DEFAULTS: dict[str, dict[str, float]] = {"move_tip": {"falloff": 2.0}, "cut": {"fraction": 0.7},
                                         "extend": {"metres": 0.05, "gravity": 0.6},
                                         "curl": {"amplitude": 0.01, "turns": 4.0}}


# --------------------------------------------------------------------------- polylines
def arc_lengths(x: np.ndarray) -> np.ndarray:
    """(..., P) cumulative arc length of polylines ``(..., P, 3)``."""
    seg = np.linalg.norm(np.diff(x, axis=-2), axis=-1)
    return np.concatenate([np.zeros(seg.shape[:-1] + (1,)), np.cumsum(seg, -1)], -1)


def arc_parameter(x: np.ndarray) -> np.ndarray:
    """(P,) normalised arc length of ``x (P, 3)`` in [0, 1] (by point index for a zero-length strand,
    e.g. a bald root)."""
    s = arc_lengths(np.asarray(x, np.float64))
    if s[-1] < 1e-9:
        return np.linspace(0.0, 1.0, len(s))
    return s / s[-1]


def sample_arc(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points of polyline ``x (P, 3)`` at arc lengths ``s (Q,)`` (clamped to the polyline)."""
    cum = arc_lengths(x)
    s = np.clip(s, 0.0, cum[-1])
    return np.stack([np.interp(s, cum, x[:, d]) for d in range(3)], -1)


# --------------------------------------------------------------------------- operations
def cut(x: np.ndarray, fraction: float | None = DEFAULTS["cut"]["fraction"], length: float | None = None) -> np.ndarray:
    """The first ``fraction`` (clipped to [0.02, 1]) of ``x (P, 3)``'s arc length, or, with ``length``,
    its first ``length`` metres (at least 2 mm, at most all of it); P points, uniform in arc length."""
    L = arc_lengths(x)[-1]
    if length is not None:
        keep = min(L, max(float(length), 0.002))
    elif fraction is not None:
        keep = float(np.clip(fraction, 0.02, 1.0)) * L
    else:
        raise InputError("cut: give fraction or length")
    return sample_arc(x, np.linspace(0.0, keep, len(x))).astype(np.float32)


def extend(x: np.ndarray, metres: float = DEFAULTS["extend"]["metres"],
           gravity: float = DEFAULTS["extend"]["gravity"]) -> np.ndarray:
    """Grow ``x (P, 3)`` by ``metres`` past its tip (direction of the last 10% blended towards -Y);
    a negative length cuts that much off."""
    if metres <= 0:
        return cut(x, 1.0 + metres / max(arc_lengths(x)[-1], 1e-9))
    P = len(x)
    k = max(2, P // 10)
    d = x[-1] - x[-k]
    d = d / max(np.linalg.norm(d), 1e-9)
    steps = max(8, P // 4)
    t = np.linspace(0, 1, steps + 1)[1:, None]
    down = np.array([0.0, -1.0, 0.0])
    dirs = d[None] * (1 - gravity * t) + down[None] * gravity * t
    dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
    ext = x[-1] + np.cumsum(dirs * (metres / steps), 0)
    y = np.concatenate([x, ext], 0)
    return resample_polylines(y[None], P)[0]


def _transport_frames(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parallel-transport normals ``(P, 3)``, binormals ``(P, 3)`` along ``x (P, 3)``."""
    t = np.gradient(x, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    a = np.array([1.0, 0.0, 0.0]) if abs(t[0, 0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    n = np.cross(t[0], a)
    n /= max(np.linalg.norm(n), 1e-12)
    ns = np.empty_like(x, dtype=np.float64)
    for i in range(len(x)):
        n = n - t[i] * np.dot(n, t[i])
        n /= max(np.linalg.norm(n), 1e-12)
        ns[i] = n
    return ns, np.cross(t, ns)


def curl(x: np.ndarray, amplitude: float = DEFAULTS["curl"]["amplitude"],
         turns: float = DEFAULTS["curl"]["turns"]) -> np.ndarray:
    """``x (P, 3)`` plus a helix of radius ``amplitude * smoothstep(u)`` metres and ``turns`` cycles
    (``u`` the normalised arc length); a zero-length strand is returned unchanged."""
    x = np.asarray(x, np.float64)
    s = arc_lengths(x)
    if s[-1] < 1e-9:
        return x.astype(np.float32)
    u = s / s[-1]
    n, b = _transport_frames(x)
    r = amplitude * (3 * u ** 2 - 2 * u ** 3)
    ang = 2 * np.pi * turns * u
    return (x + r[:, None] * (np.cos(ang)[:, None] * n + np.sin(ang)[:, None] * b)).astype(np.float32)


def move_tip(x: np.ndarray, target, falloff: float = DEFAULTS["move_tip"]["falloff"]) -> np.ndarray:
    """``x (P, 3)`` bent so that its tip lands on ``target (3,)``: displacement ``(target - tip) * u^falloff``."""
    x = np.asarray(x, np.float64)
    u = arc_parameter(x)
    return (x + (np.asarray(target, np.float64) - x[-1])[None] * (u ** float(falloff))[:, None]).astype(np.float32)


def apply_op(x: np.ndarray, op: str, **kw) -> np.ndarray:
    """Operation ``op`` (one of :data:`EDIT_OPS`) on ``x (P, 3)``; settings not given take :data:`DEFAULTS`
    (``move_tip`` needs ``target``)."""
    if op not in EDIT_OPS:
        raise InputError(f"unknown guide edit '{op}' (expected one of {', '.join(EDIT_OPS)})")
    if op == "move_tip":
        if "target" not in kw:
            raise InputError("move_tip needs a target (3,) in metres")
        return move_tip(x, kw["target"], kw.get("falloff", DEFAULTS["move_tip"]["falloff"]))
    settings = {**DEFAULTS[op], **{k: v for k, v in kw.items() if k in DEFAULTS[op] or (op == "cut" and k == "length")}}
    return {"cut": cut, "extend": extend, "curl": curl}[op](x, **settings)


# --------------------------------------------------------------------------- brush
def brush(roots: np.ndarray, guide: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Guides whose root (``roots (G, 3)``) lies within ``radius`` metres of ``guide``'s, and their
    Gaussian weights (sigma ``radius / 2``; 1 at ``guide``); only ``guide`` when ``radius <= 0``."""
    G = len(roots)
    if not 0 <= int(guide) < G:
        raise InputError(f"guide {guide} does not exist (0..{G - 1})")
    if radius <= 0:
        return np.array([int(guide)]), np.ones(1, np.float32)
    d = np.linalg.norm(roots - roots[int(guide)], axis=1)
    sel = np.flatnonzero(d <= radius)
    return sel, np.exp(-0.5 * (d[sel] / (radius / 2)) ** 2).astype(np.float32)


def brush_edit(guides: np.ndarray, guide: int, op: str, radius: float = 0.0, **kw) -> tuple[np.ndarray, np.ndarray]:
    """``op`` on guide ``guide`` of ``guides (G, P, 3)`` and, weighted by :func:`brush`, on its
    neighbours: each is moved by ``weight * (edited - guide)`` (``move_tip``: each tip by ``weight``
    times the picked tip's displacement). Returns ``(indices (k,), edited guides (k, P, 3))``."""
    guides = np.asarray(guides)
    sel, wts = brush(guides[:, 0], guide, radius)
    out = np.empty((len(sel),) + guides.shape[1:], np.float32)
    for j, (g, wt) in enumerate(zip(sel, wts, strict=True)):
        if op == "move_tip":
            if "target" not in kw:
                raise InputError("move_tip needs a target (3,) in metres")
            tgt = guides[g, -1] + (np.asarray(kw["target"], np.float64) - guides[guide, -1]) * wt
            out[j] = move_tip(guides[g], tgt, kw.get("falloff", DEFAULTS["move_tip"]["falloff"]))
        else:
            out[j] = guides[g] + wt * (apply_op(guides[g], op, **kw) - guides[g])
    return sel, out


# --------------------------------------------------------------------------- sessions
@runtime_checkable
class EditSession(Protocol):
    """What an editing session offers the viewer's hair panel (the file-only ``GuideEditor`` of
    ``viewer/hair_edit.py`` and the model-backed ``ModelSession`` of ``viewer/hair_model.py``).

    Guides are indexed ``0 .. num_guides - 1``; arrays are metres in the head frame."""

    @property
    def num_strands(self) -> int: ...  # dense strands at full density

    @property
    def num_guides(self) -> int: ...

    @property
    def can_undo(self) -> bool: ...

    @property
    def can_redo(self) -> bool: ...

    @property
    def edited(self) -> bool: ...

    def guides_array(self) -> np.ndarray:
        """(G, P, 3) guide strands (absent guides: the root repeated)."""
        ...

    def guide_present(self) -> np.ndarray:
        """(G,) bool: guides with hair."""
        ...

    def preview(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(strands (S, P, 3), keys (S,), root_uv (S, 2) or None)`` of ``n`` dense strands."""
        ...

    def hairstyle(self, n: int | None = None) -> Hairstyle:
        """The edited hair at full density (``n`` strands where the session can choose)."""
        ...

    def edit(self, guide: int, op: str, radius: float = 0.0, merge: bool = False, **kw) -> np.ndarray:
        """:func:`brush_edit` ``op`` on ``guide`` (and neighbours within ``radius``); one undo step
        (``merge``: folded into the previous one where the session can); returns the guides changed."""
        ...

    def undo(self) -> bool: ...

    def redo(self) -> bool: ...
