"""Result and observation types of the objects family (imported by the optimiser, the solver, the
pipeline, the readers and the viewer, so that none of them imports another in a circle).

* :class:`Scene`: an RGB-D frame (:class:`latent4d.geometry.rgbd.RGBDFrame`) with its instance
  mask and, for synthetic or saved scenes, the ground truth of every object (:class:`SceneObject`);
* :class:`ObjectObservation`: the observed points of one instance (what the optimiser fits);
* :class:`PoseInit`: a starting pose, size and codes for one instance;
* :class:`ObjectReconstruction`: the result for one instance.

Pose convention: ``x_cam = scale * R @ x_canonical + t`` with R (3, 3), t (3,) metres in the OpenCV
camera frame and ``scale`` the metric half-diagonal (m); canonical coordinates are in [-1, 1]^3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import trimesh

from latent4d.geometry.rgbd import RGBDFrame


@dataclass
class SceneObject:
    """Ground truth of one object: ``x_cam = scale * R @ x_canonical + t``.

    R (3, 3), t (3,) metres, scale = metric half-diagonal (m), size (3,) metric box extents,
    extents (3,) canonical box extents; mesh: the canonical coloured mesh (not saved).
    """

    instance_id: int
    category: str
    name: str
    R: np.ndarray
    t: np.ndarray
    scale: float
    extents: np.ndarray
    shape_code: np.ndarray | None = None
    appearance_code: np.ndarray | None = None
    mesh: trimesh.Trimesh | None = field(default=None, repr=False)
    handle_visible: bool | None = None

    @property
    def size(self) -> np.ndarray:
        return self.scale * np.asarray(self.extents)

    @property
    def symmetric(self) -> bool:
        """Whether the rotation about the up axis is unobservable: symmetric categories, and (as in
        the NOCS evaluation) mugs whose handle is hidden."""
        from latent4d.objects.synthetic import SYMMETRIC

        return self.category in SYMMETRIC or (self.category == "mug" and self.handle_visible is False)

    def to_json(self) -> dict:
        d = {"instance_id": int(self.instance_id), "category": self.category, "name": self.name,
             "R": np.asarray(self.R).tolist(), "t": np.asarray(self.t).tolist(), "scale": float(self.scale),
             "size": self.size.tolist(), "extents": np.asarray(self.extents).tolist()}
        if self.shape_code is not None:
            d["shape_code"] = np.asarray(self.shape_code).tolist()
        if self.appearance_code is not None:
            d["appearance_code"] = np.asarray(self.appearance_code).tolist()
        if self.handle_visible is not None:
            d["handle_visible"] = bool(self.handle_visible)
        return d

    @classmethod
    def from_json(cls, d: dict) -> SceneObject:
        return cls(int(d["instance_id"]), d["category"], d.get("name", ""), np.asarray(d["R"], np.float64),
                   np.asarray(d["t"], np.float64), float(d["scale"]), np.asarray(d["extents"], np.float64),
                   None if d.get("shape_code") is None else np.asarray(d["shape_code"], np.float32),
                   None if d.get("appearance_code") is None else np.asarray(d["appearance_code"], np.float32),
                   handle_visible=d.get("handle_visible"))


@dataclass
class Scene(RGBDFrame):
    """An RGB-D frame of objects: what ``reconstruct objects`` reads and the synthetic scenes are.

    rgb (H, W, 3) uint8; depth (H, W) float32 metres (0 = invalid); mask (H, W) int32 instance ids
    (0 = background); K (3, 3) pixels (see :class:`~latent4d.geometry.rgbd.RGBDFrame`).
    ``objects`` holds the ground truth when the frame comes from a synthetic or saved scene;
    ``depth_clean`` the noise-free rendered depth of a synthetic scene.
    """

    objects: list[SceneObject] = field(default_factory=list)
    depth_clean: np.ndarray | None = field(default=None, repr=False)

    def gt(self, instance_id: int) -> SceneObject | None:
        """Ground truth of one instance (None when unknown)."""
        return next((o for o in self.objects if o.instance_id == instance_id), None)


@dataclass
class ObjectObservation:
    """Observed points of one instance: points (N, 3) camera metres, colors (N, 3) in [0, 1],
    pixels (N, 2) (row, col); n_valid: valid depth pixels in the mask before subsampling."""

    instance_id: int
    points: np.ndarray
    colors: np.ndarray
    pixels: np.ndarray
    n_valid: int = 0


@dataclass
class PoseInit:
    """An initial estimate: R (3, 3), t (3,) m, scale (m), codes (D,), category (prior)."""

    R: np.ndarray
    t: np.ndarray
    scale: float
    shape_code: torch.Tensor
    appearance_code: torch.Tensor
    category: str | None = None


@dataclass
class ObjectReconstruction:
    """Result for one instance.

    R (3, 3) canonical -> camera rotation; t (3,) metres; scale: metric half-diagonal (m);
    size (3,) metric box extents (m); shape_code / appearance_code (D,); category: the prior used;
    mesh_camera: coloured mesh in the camera frame (None when skipped); loss: final loss terms;
    history: per-iteration total loss; status: "ok" | "diverged" | "skipped"; reason: why not ok;
    appearance_net: this object's fine-tuned copy of the appearance network (``appearance_finetune``
    > 0; None: the pipeline's network colours it; not saved).
    """

    instance_id: int
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    scale: float | None = None
    extents: np.ndarray | None = None
    shape_code: np.ndarray | None = None
    appearance_code: np.ndarray | None = None
    category: str | None = None
    mesh_camera: trimesh.Trimesh | None = field(default=None, repr=False)
    mesh_canonical: trimesh.Trimesh | None = field(default=None, repr=False)
    loss: dict = field(default_factory=dict)
    history: list[float] = field(default_factory=list, repr=False)
    iterations: int = 0
    seconds: float = 0.0
    status: str = "ok"
    reason: str = ""
    score: float = 0.0
    appearance_net: torch.nn.Module | None = field(default=None, repr=False)

    @property
    def size(self) -> np.ndarray | None:
        return None if self.extents is None or self.scale is None else self.scale * np.asarray(self.extents)

    def to_json(self) -> dict:
        d = {"instance_id": self.instance_id, "status": self.status, "category": self.category,
             "iterations": self.iterations, "seconds": round(self.seconds, 3)}
        if self.reason:
            d["reason"] = self.reason
        if self.status == "ok":
            d.update({"R": np.asarray(self.R).tolist(), "t": np.asarray(self.t).tolist(),
                      "scale": float(self.scale), "size": self.size.tolist(),
                      "extents": np.asarray(self.extents).tolist(), "score": float(self.score),
                      "shape_code": np.asarray(self.shape_code).tolist(),
                      "appearance_code": np.asarray(self.appearance_code).tolist(),
                      "loss": {k: float(v) for k, v in self.loss.items()}})
        return d


__all__ = ["ObjectObservation", "ObjectReconstruction", "PoseInit", "Scene", "SceneObject"]
