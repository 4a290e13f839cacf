"""Guide-strand editing of a hairstyle without a model: the state behind the hair panel's edit tools.

A loaded hairstyle is resampled to uniform strands ``dense (S, P, 3)`` (metres). ``guides`` are
``G`` strands of it chosen by farthest-point sampling of the roots. Every dense strand is tied to
its ``k`` nearest guides (root distance, inverse-distance weights that sum to one). An edit changes
guides only; the dense hair follows by adding the weighted guide displacements, point by point
along the normalised arc (so a cut guide shortens its neighbours and an extended one lengthens
them), then points pushed into the head are moved out (GroomGen's penetration handling,
``Head.resolve_strands``). Undo / redo restore the guide sets.

This is the file-only path. With a trained hair run, :class:`viewer.hair_model.ModelSession` edits
guides with the same operations and brush but re-densifies them with the model (``HairPipeline``).

The edit operations themselves (``move_tip``, ``cut``, ``extend``, ``curl``, the brush) are
:mod:`latent4d.hair.edit`'s, shared with the model-backed editor; their names are re-exported here.
:class:`GuideEditor` is an :class:`~latent4d.hair.edit.EditSession`.
"""

from __future__ import annotations

import numpy as np

from latent4d.errors import InputError
from latent4d.hair.edit import (  # noqa: F401 - re-exported: the hair panel and the viewer tests use them here
    DEFAULTS,
    EDIT_OPS,
    apply_op,
    arc_lengths,
    brush,
    brush_edit,
    curl,
    cut,
    extend,
    move_tip,
    sample_arc,
)
from latent4d.hair.strands import Hairstyle


# ------------------------------------------------------------------------------ the editor
class GuideEditor:
    """Dense hair tied to guide strands; edits on guides, undo/redo, re-densification.

    Args:
        hairstyle: the loaded hair (any strand lengths; bald roots are dropped).
        num_guides: guides chosen by farthest-point sampling of the roots.
        num_points: points per strand in the editor (arc-length resampling).
        head: a ``latent4d.hair.scalp.Head`` to keep edited strands out of, or None.
        k: guides each dense strand follows.
    """

    def __init__(
        self, hairstyle: Hairstyle, num_guides: int = 128, num_points: int = 64, head=None, k: int = 4
    ):
        strands, index = hairstyle.hair_strands(num_points)
        self.source = hairstyle
        self.index = index  # dense strand -> strand of the source hairstyle
        self.dense0 = strands.astype(np.float32)  # (S, P, 3)
        self.root_uv = None if hairstyle.root_uv is None else hairstyle.root_uv[index]
        self.head = head
        S = len(strands)
        roots = self.dense0[:, 0].astype(np.float64)
        G = int(min(num_guides, S))
        self.guide_ids = self._fps(roots, G)
        self.guides0 = self.dense0[self.guide_ids].copy()
        self.guides = self.guides0.copy()
        from scipy.spatial import cKDTree

        k = int(min(k, G))
        d, nb = cKDTree(roots[self.guide_ids]).query(roots, k=k)
        d, nb = d.reshape(S, k), nb.reshape(S, k)
        w = 1.0 / np.maximum(d, 1e-6) ** 2
        w[d < 1e-6] = 0.0
        exact = (d < 1e-6).any(1)
        w[exact] = (d[exact] < 1e-6).astype(np.float64)
        self.nbr, self.weights = nb.astype(np.int64), (w / w.sum(1, keepdims=True)).astype(np.float32)
        self._history: list[np.ndarray] = [self.guides.copy()]
        self._pos = 0
        self.selected: int | None = None

    @staticmethod
    def _fps(points: np.ndarray, n: int) -> np.ndarray:
        """Farthest-point sampling from index 0 (what ``latent4d.geometry.farthest_point_sampling``
        does, in numpy: opening a hair file should not pay for importing torch)."""
        idx = np.empty(n, np.int64)
        dist = np.full(len(points), np.inf)
        cur = 0
        for i in range(n):
            idx[i] = cur
            dist = np.minimum(dist, ((points - points[cur]) ** 2).sum(1))
            cur = int(np.argmax(dist))
        return idx

    # ------------------------------------------------------------------ properties
    @property
    def num_strands(self) -> int:
        return len(self.dense0)

    @property
    def num_guides(self) -> int:
        return len(self.guides)

    @property
    def edited(self) -> bool:
        return bool(np.any(self.guides != self.guides0))

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return self._pos < len(self._history) - 1

    # ----------------------------------------------------------------------- edits
    def brush(self, guide: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Guides within ``radius`` metres of ``guide``'s root and their Gaussian weights (1 at ``guide``)."""
        return brush(self.guides[:, 0], guide, radius)

    def edit(self, guide: int, op: str, radius: float = 0.0, merge: bool = False, **kw) -> np.ndarray:
        """Apply ``op`` (:mod:`latent4d.hair.edit`) to ``guide`` (and, with ``radius`` > 0, its neighbours,
        weighted: :func:`latent4d.hair.edit.brush_edit`). Records an undo step (``merge=True`` folds it
        into the previous step, as the moves of one mouse drag are); returns the indices of the guides changed."""
        sel, edited = brush_edit(self.guides, guide, op, radius, **kw)
        new = self.guides.copy()
        new[sel] = edited
        if self.head is not None:
            new[sel] = self.head.resolve_strands(new[sel])
        self._push(new, merge)
        return sel

    def set_guides(self, guides: np.ndarray) -> None:
        """Replace all guides (e.g. projected by a model); records an undo step."""
        g = np.asarray(guides, np.float32)
        if g.shape != self.guides.shape:
            raise InputError(f"guides: expected shape {self.guides.shape}, got {g.shape}")
        self._push(g.copy())

    def _push(self, guides: np.ndarray, merge: bool = False) -> None:
        if merge and self._pos > 0:
            del self._history[self._pos + 1 :]
            self._history[self._pos] = guides
            self.guides = guides
            return
        del self._history[self._pos + 1 :]
        self._history.append(guides)
        self._pos += 1
        self.guides = guides

    def undo(self) -> bool:
        if not self.can_undo:
            return False
        self._pos -= 1
        self.guides = self._history[self._pos]
        return True

    def redo(self) -> bool:
        if not self.can_redo:
            return False
        self._pos += 1
        self.guides = self._history[self._pos]
        return True

    # ------------------------------------------------------------------ densification
    def densify(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Dense strands ``(len(idx), P, 3)`` (all when ``idx`` is None) following the current guides."""
        idx = np.arange(self.num_strands) if idx is None else np.asarray(idx)
        base = self.dense0[idx]
        delta = self.guides - self.guides0  # (G, P, 3)
        moved = np.flatnonzero(np.abs(delta).reshape(len(delta), -1).max(1) > 0)
        if not len(moved):
            return base.copy()
        hit = np.isin(self.nbr[idx], moved)
        rows = np.flatnonzero(hit.any(1))
        out = base.copy()
        if not len(rows):
            return out
        nb, w = self.nbr[idx[rows]], self.weights[idx[rows]]
        out[rows] += np.einsum("sk,skpd->spd", w, delta[nb])
        if self.head is not None:
            out[rows] = self.head.resolve_strands(out[rows])
        return out

    def hairstyle(self, n: int | None = None) -> Hairstyle:
        """The edited hair at full density (uniform strands; root UVs kept; ``n`` is ignored: a file's
        strand count is fixed)."""
        return Hairstyle.from_strands(self.densify(), root_uv=self.root_uv, meta=dict(self.source.meta))

    # -------------------------------------------------------- interface of the hair panel
    def guides_array(self) -> np.ndarray:
        return self.guides

    def guide_present(self) -> np.ndarray:
        return np.ones(self.num_guides, bool)

    def preview_index(self, n: int) -> np.ndarray:
        """A fixed random subset of ``n`` dense strands (all when ``n`` >= the strand count)."""
        S = self.num_strands
        if n >= S:
            return np.arange(S)
        return np.sort(np.random.default_rng(0).choice(S, int(n), replace=False))

    def preview(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(strands (S, P, 3), keys (S,), root_uv (S, 2) or None)`` of ``n`` dense strands."""
        idx = self.preview_index(n)
        return self.densify(idx), idx, None if self.root_uv is None else self.root_uv[idx]


def nearest_guide(
    points_xy: np.ndarray, depth: np.ndarray, x: float, y: float, max_pixels: float = 12.0
) -> int | None:
    """The guide with a projected point nearest to pixel ``(x, y)`` (closest to the camera on ties).

    ``points_xy (G, P, 2)`` / ``depth (G, P)`` are the guides' projected points (depth <= 0: not drawn).
    """
    d = np.linalg.norm(points_xy - np.array([x, y]), axis=-1)
    d = np.where(depth > 0, d, np.inf)
    best = d.min(1)
    cand = np.flatnonzero(best <= max_pixels)
    if not len(cand):
        return None
    # among guides within 2 px of the best, take the one nearest to the camera
    close = cand[best[cand] <= best[cand].min() + 2.0]
    zs = np.array([depth[g][np.argmin(d[g])] for g in close])
    return int(close[np.argmin(zs)])
