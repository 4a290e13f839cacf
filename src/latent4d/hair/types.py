"""Result and observation types of the hair family, in a module of their own so that the pipeline, the
reconstruction solver, the retrieval bank and the commands share them without importing each other.

- :class:`HairResult`: a decoded hairstyle (style latent, guide map, guide strands, dense hair);
- :class:`EditState`: one undo step of :class:`~latent4d.hair.pipeline.HairEditor`;
- :class:`HairObservation`: observed hair points (and directions, and the camera direction) that
  :mod:`latent4d.hair.reconstruct` completes into a hairstyle; :func:`parse_view` reads a camera direction;
- :class:`FitResult`: a reconstruction and its diagnostics.

All positions are metres in the USC-HairSalon head frame (Y up, +Z towards the face).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latent4d.errors import InputError
from latent4d.hair.strands import Hairstyle

if TYPE_CHECKING:
    import torch


@dataclass
class HairResult:
    """A decoded hairstyle.

    Attributes:
        latent: (D,) style latent (None for guide maps that did not come from the hairstyle-VAE).
        guide_map: (C + 1, H, W) strand latents + presence on the guide grid.
        guides: guide strands (one per scalp texel; bald roots where absent), metres.
        dense: densified hair (None when no dense strands were asked for).
    """

    latent: torch.Tensor | None
    guide_map: torch.Tensor
    guides: Hairstyle
    dense: Hairstyle | None = None


@dataclass
class EditState:
    """One entry of the undo stack: the style latent and the guide map shown (they differ only for
    local edits applied without projection or with ``exact=True``)."""

    latent: torch.Tensor
    guide_map: torch.Tensor
    label: str = ""
    _cache: dict = field(default_factory=dict, repr=False)


#: named camera directions (head frame: +z front, +y up, +x the head's left)
VIEWS = {"front": (0.0, 0.0, 1.0), "back": (0.0, 0.0, -1.0), "left": (1.0, 0.0, 0.0), "right": (-1.0, 0.0, 0.0),
         "top": (0.0, 1.0, 0.0)}


def parse_view(view, name: str = "view") -> np.ndarray:
    """A camera direction: a name in :data:`VIEWS` or three numbers (a string ``"x,y,z"`` or a
    sequence); returned as a unit (3,) float32. InputError for anything else (zero, NaN, 2 numbers)."""
    if isinstance(view, str):
        v = VIEWS.get(view.strip().lower())
        if v is None:
            try:
                v = [float(t) for t in view.split(",")]
            except ValueError:
                v = None
        if v is None:
            raise InputError(f"{name}: view '{view}' is neither one of {', '.join(VIEWS)} nor 'x,y,z'")
    else:
        v = view
    v = np.asarray(v, np.float64).reshape(-1)
    n = float(np.linalg.norm(v)) if v.shape == (3,) and np.isfinite(v).all() else 0.0
    if n < 1e-9:
        raise InputError(f"{name}: view must be a finite non-zero 3-vector, got {view!r}")
    return (v / n).astype(np.float32)


@dataclass
class HairObservation:
    """Observed hair: ``points (N, 3)`` metres, optional unit ``directions (N, 3)`` and optional
    ``view (3,)``: the unit direction from the hair towards an orthographic camera that saw it (e.g.
    ``(0, 0, 1)`` for a front view). With a view the fit also uses free space: no hair may stand in
    front of the observed surface, nor show where the camera saw no hair (see
    :func:`latent4d.hair.reconstruct.fit_observation`).
    """

    points: np.ndarray
    directions: np.ndarray | None = None
    name: str = "observation"
    view: np.ndarray | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> HairObservation:
        """PLY / NPZ point cloud (``dx dy dz`` or ``nx ny nz`` as directions) or a hair file (partial strands)."""
        from latent4d.hair.formats import read_points

        pts, dirs = read_points(path)
        return cls(pts, dirs, str(path))

    def validate(self, head: Any, max_distance: float = 0.6) -> HairObservation:
        """Raise InputError for empty / NaN clouds, and for observations far from the head (wrong frame).

        ``head``: the :class:`~latent4d.hair.scalp.Head`, or anything with a ``head`` (a pipeline)."""
        head = getattr(head, "head", head)
        pts = np.asarray(self.points, np.float32).reshape(-1, 3)
        if len(pts) == 0:
            raise InputError(f"{self.name}: the observation is empty")
        if not np.isfinite(pts).all():
            raise InputError(f"{self.name}: the observation contains NaN or infinite coordinates")
        if self.directions is not None:
            d = np.asarray(self.directions, np.float32).reshape(-1, 3)
            if d.shape != pts.shape or not np.isfinite(d).all():
                raise InputError(f"{self.name}: directions must be finite and match the points ({pts.shape})")
        if self.view is not None:
            self.view = parse_view(self.view, self.name)
        dist = np.linalg.norm(pts - head.c[None].astype(np.float32), axis=1)
        med = float(np.median(dist))
        if med > max_distance:
            raise InputError(f"{self.name}: the observation lies {med:.2f} m (median) from the head centre "
                             f"{tuple(round(float(c), 3) for c in head.c)}; it does not match the head frame "
                             "(metres, Y up, USC-HairSalon head position expected)")
        return self


@dataclass
class FitResult:
    """A reconstruction: the hairstyle (latent, guide map, guides, dense) and fitting diagnostics.

    Attributes:
        hair: the completed hairstyle (``hair.latent`` is None for the no-prior baseline).
        loss: final objective value; ``losses``: its terms (``chamfer_mm``, ``silhouette_mm``, ...).
        seconds: wall time of the fit; ``inits``: random / zero starts optimised.
        retrieved: indices of the latent-bank styles used as starts.
        winner: which start won: ``"retrieved <i>"``, ``"given <i>"``, ``"zero"``, ``"random <i>"``
            or ``"no prior"``.
    """

    hair: HairResult
    loss: float
    losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    inits: int = 0
    retrieved: list[int] = field(default_factory=list)
    winner: str = ""

    @property
    def latent(self) -> torch.Tensor | None:
        return self.hair.latent
