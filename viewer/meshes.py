"""Plain mesh and point-cloud files, read the same way by every panel.

A single ``.obj`` / ``.ply`` / ``.glb`` / ``.off`` / ``.stl`` ... belongs to no family: the objects
panel shows it as a mesh or a point cloud, the motion panel reads a folder of them as the frames of
a sequence. :func:`read_geometry` loads one with trimesh (vertex colours or textures kept) and
checks what trimesh does not: an empty file, NaN / infinite coordinates, face indices outside the
vertex list. Family formats (hair files, RGB-D frames, point-cloud sequences, reconstruction
outputs) are read by the families' own I/O modules, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latent4d.viewer.messages import mesh_read_error

from latent4d.errors import InputError

MESH_EXTS = (".obj", ".ply", ".glb", ".gltf", ".off", ".stl")
POINT_EXTS = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")


@dataclass
class MeshItem:
    """A mesh file: ``mesh`` is a ``trimesh.Trimesh`` with at least one face."""

    path: Path
    mesh: object

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``vertices (V, 3) float32, faces (F, 3) int64``."""
        return np.asarray(self.mesh.vertices, np.float32), np.asarray(self.mesh.faces, np.int64)


@dataclass
class CloudItem:
    """A point-cloud file: ``points (N, 3) float32``, ``colors (N, 3)`` in [0, 1] or None."""

    path: Path
    points: np.ndarray
    colors: np.ndarray | None = None


def read_geometry(path: Path) -> MeshItem | CloudItem:
    """A mesh (a file with faces) or a point cloud (a file of vertices only); :class:`InputError`
    naming ``path`` for anything trimesh cannot read, an empty file, NaN / infinite coordinates
    or faces that index missing vertices."""
    import trimesh

    path = Path(path)
    try:
        obj = trimesh.load(path, process=False)
    except Exception as e:  # noqa: BLE001 - any loader failure is a bad file
        raise mesh_read_error(path, e) from None
    if isinstance(obj, trimesh.Scene):
        meshes = [g for g in obj.dump() if isinstance(g, trimesh.Trimesh)] if hasattr(obj, "dump") else []
        if not meshes:
            raise InputError(f"{path}: no mesh in this scene file")
        obj = trimesh.util.concatenate(meshes)
    if isinstance(obj, trimesh.Trimesh) and len(obj.faces) and len(obj.vertices):
        v, f = np.asarray(obj.vertices), np.asarray(obj.faces)
        if not np.isfinite(v).all():
            raise InputError(f"{path}: NaN or infinite vertex coordinates")
        if f.min() < 0 or f.max() >= len(v):
            raise InputError(f"{path}: face indices out of range (the file has vertices 0..{len(v) - 1})")
        return MeshItem(path, obj)
    if not hasattr(obj, "vertices"):
        raise InputError(f"{path}: not a mesh or point cloud ({type(obj).__name__})")
    v = np.asarray(obj.vertices)
    if len(v) == 0:
        raise InputError(f"{path}: empty (no vertices)")
    cols = getattr(obj, "colors", None)
    cols = None if cols is None or len(cols) != len(v) else np.asarray(cols)[:, :3] / 255.0
    if not np.isfinite(v).all():
        raise InputError(f"{path}: NaN or infinite point coordinates")
    return CloudItem(path, v.astype(np.float32), cols)
