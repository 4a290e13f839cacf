"""Any folder of meshes as object data: loading with colours, normalisation, watertight repair.

Files ``.obj .ply .glb .gltf .off .stl`` are read with trimesh (scenes are merged into one mesh);
textures are baked to vertex colours (``TextureVisuals.to_color``), meshes without colour get a
neutral grey. Each mesh is normalised like the procedural objects (bounding box centred,
half-diagonal 1). A mesh that is not watertight gets a warning and is repaired by a flood fill on
a voxel grid of its unsigned distance: voxels closer than ``eps`` to the surface are walls, the
outside is what is reachable from the grid border, everything else is inside; the repaired
surface is that boundary, shifted back by ``eps`` along its normals, with colours transferred from
the closest point of the original mesh. A mesh whose flood fill finds no inside (an open sheet)
or that cannot be read is skipped with the reason.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from latent4d.errors import InputError
from latent4d.geometry.sdf import MeshSDF
from latent4d.objects.synthetic import ProceduralObject, normalize_mesh

log = logging.getLogger("latent4d.objects")

MESH_EXTENSIONS = (".obj", ".ply", ".glb", ".gltf", ".off", ".stl")


class MeshRepairWarning(UserWarning):
    """A mesh was not watertight and has been repaired (or was skipped)."""


def load_colored_mesh(path: str | Path) -> trimesh.Trimesh:
    """Read a mesh file as one triangle mesh with (V, 4) uint8 vertex colours."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mesh file '{path}' does not exist")
    if path.suffix.lower() not in MESH_EXTENSIONS:
        raise InputError(f"'{path}': unsupported mesh format (expected one of {', '.join(MESH_EXTENSIONS)})")
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
        raise InputError(f"'{path}' could not be read as a mesh ({type(e).__name__}: {e})") from e
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
        if not geoms:
            raise InputError(f"'{path}' holds no triangle mesh")
        parts = []
        for g in geoms:
            g = g.copy()
            g.visual = _vertex_color_visual(g)
            parts.append(g)
        mesh = trimesh.util.concatenate(parts)
    elif isinstance(loaded, trimesh.Trimesh):
        mesh = loaded
        mesh.visual = _vertex_color_visual(mesh)
    else:
        raise InputError(f"'{path}' holds a {type(loaded).__name__}, not a triangle mesh")
    if len(mesh.faces) == 0:
        raise InputError(f"'{path}' has no faces")
    if not np.isfinite(mesh.vertices).all():
        raise InputError(f"'{path}' has NaN or infinite vertex coordinates")
    return mesh


def _vertex_color_visual(mesh: trimesh.Trimesh):
    vis = mesh.visual
    try:
        if isinstance(vis, trimesh.visual.texture.TextureVisuals):
            vis = vis.to_color()
        vc = np.asarray(vis.vertex_colors)
        if vc.shape == (len(mesh.vertices), 4) and vis.kind is not None:
            return trimesh.visual.ColorVisuals(mesh, vertex_colors=vc)
    except Exception:  # noqa: BLE001 - unreadable texture: fall back to grey
        pass
    return trimesh.visual.ColorVisuals(mesh, vertex_colors=np.tile([180, 180, 180, 255], (len(mesh.vertices), 1)))


def make_watertight(mesh: trimesh.Trimesh, resolution: int = 96, eps_voxels: float = 1.5) -> trimesh.Trimesh:
    """Flood-fill repair of a normalised mesh (in [-1, 1]^3) -> a watertight mesh with vertex colours.

    Holes narrower than about ``2 * eps_voxels`` voxels are sealed. Raises InputError when there
    is no enclosed volume.
    """
    from scipy import ndimage
    from skimage import measure

    from latent4d.geometry.meshing import grid_centers

    bounds = 1.1
    side = 2 * bounds / resolution
    eps = eps_voxels * side
    msdf = MeshSDF(mesh, robust=False)
    pts = grid_centers(resolution, bounds).numpy()
    udf = msdf.unsigned_distance(pts).reshape(resolution, resolution, resolution)
    free = udf >= eps
    labels, _ = ndimage.label(free)
    border = np.unique(np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(),
                                       labels[:, -1].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    outside = np.isin(labels, border[border > 0])
    inside = ~outside
    if not (inside & free).any():
        raise InputError("the mesh encloses no volume (an open sheet?): cannot make it watertight")
    field = np.where(outside, udf - eps, np.where(udf < eps, udf - eps, -udf))
    v, f, _, _ = measure.marching_cubes(field.astype(np.float32), 0.0, spacing=(side, side, side))
    out = trimesh.Trimesh(v - bounds + 0.5 * side, f, process=True)
    parts = out.split(only_watertight=False)
    if len(parts) > 1:
        out = trimesh.util.concatenate([p for p in parts if len(p.faces) >= 0.01 * len(out.faces)])
    out.vertices = np.asarray(out.vertices) - eps * np.asarray(out.vertex_normals)  # undo the offset
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(np.float32)
    col = MeshSDF(mesh, robust=False).closest_attribute(out.vertices, colors)
    rgba = np.concatenate([np.clip(np.rint(col), 0, 255), np.full((len(col), 1), 255)], 1).astype(np.uint8)
    out.visual = trimesh.visual.ColorVisuals(out, vertex_colors=rgba)
    return out


@dataclass
class SkippedMesh:
    path: str
    reason: str


def prepare_mesh(mesh: trimesh.Trimesh, name: str = "mesh", repair_resolution: int = 96) -> trimesh.Trimesh:
    """Normalise; repair (with a :class:`MeshRepairWarning`) when not watertight."""
    mesh, _, _ = normalize_mesh(mesh)
    if not mesh.is_watertight:
        warnings.warn(f"{name}: mesh is not watertight; repairing it by flood fill on a "
                      f"{repair_resolution}^3 grid (holes are sealed, thin open sheets get thickness)",
                      MeshRepairWarning, stacklevel=2)
        mesh = make_watertight(mesh, repair_resolution)
        mesh, _, _ = normalize_mesh(mesh)
    return mesh


def load_mesh_folder(folder: str | Path, repair_resolution: int = 96,
                     limit: int | None = None) -> tuple[list[ProceduralObject], list[SkippedMesh]]:
    """Every mesh under ``folder`` (recursively, sorted) as canonical coloured objects.

    The category of a mesh is the name of its parent folder relative to ``folder`` (``"mesh"`` for
    files directly inside it). Returns ``(objects, skipped)``; each skipped file carries a reason
    (also logged as a warning).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"mesh folder '{folder}' does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MESH_EXTENSIONS and p.is_file())
    if not files:
        raise InputError(f"mesh folder '{folder}' holds no mesh file ({', '.join(MESH_EXTENSIONS)})")
    objs, skipped = [], []
    for i, p in enumerate(files[:limit] if limit else files):
        rel = p.relative_to(folder)
        category = rel.parts[0] if len(rel.parts) > 1 else "mesh"
        try:
            mesh = prepare_mesh(load_colored_mesh(p), str(rel), repair_resolution)
        except InputError as e:
            msg = f"skipping '{rel}': {e}"
            warnings.warn(msg, MeshRepairWarning, stacklevel=2)
            log.warning(msg)
            skipped.append(SkippedMesh(str(rel), str(e)))
            continue
        obj = ProceduralObject(mesh, category, i, {"file": str(rel)}, {"kind": "file"})
        objs.append(obj)
    if not objs:
        raise InputError(f"no usable mesh in '{folder}': " + "; ".join(f"{s.path}: {s.reason}" for s in skipped))
    return objs, skipped
