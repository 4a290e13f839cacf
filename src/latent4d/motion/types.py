"""Result and observation types of the motion family (no imports of pipeline or solver code, so
every module can use them without import cycles).

* :class:`Reconstruction` - a tracked mesh sequence: frame-0 mesh vertices carried through every frame;
* :class:`HeldOut` - a held-out procedural clip with its true mesh sequence (evaluation, benchmarks).

Everything is in the normalised frame [-0.5, 0.5]^3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from latent4d.motion.synthetic import Sequence

#: where the tracked frame-0 surface of a :class:`Reconstruction` came from
FRAME0_SOURCES = ("sample", "fused", "template")


@dataclass
class Reconstruction:
    """A reconstructed / tracked sequence in the normalised frame.

    ``vertices`` (T, V, 3) float32 trajectories of the frame-0 mesh vertices, ``faces`` (F, 3)
    shared by every frame, ``observations`` (T, N, 3) the inputs (after resampling), ``timings``
    seconds per stage, ``sample`` index when several samples are drawn, ``frame0`` where the tracked
    frame-0 surface came from (``sample``: the shape diffusion's sample or given shape latents;
    ``fused``: temporal occupancy fusion; ``template``: a given mesh).
    """

    vertices: np.ndarray
    faces: np.ndarray
    observations: np.ndarray | None = None
    timings: dict = field(default_factory=dict)
    sample: int = 0
    frame0: str = "sample"

    def mesh(self, t: int) -> trimesh.Trimesh:
        return trimesh.Trimesh(self.vertices[t], self.faces, process=False)

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])


@dataclass
class HeldOut:
    """One held-out clip: its split name, index, the true mesh sequence and its stored surface
    samples ``surface`` (T, Ns, 3), corresponding across frames."""

    split: str
    index: int
    sequence: Sequence
    surface: np.ndarray
