"""Reading observed point-cloud sequences and writing reconstructed mesh sequences.

Input (:func:`read_sequence`): a folder with one point cloud per frame (``.ply``, ``.npz`` with a
``points`` array, ``.npy``, ``.xyz`` / ``.txt`` / ``.pts`` text with x y z in the first columns;
frames ordered by file name), or one ``.npz`` / ``.npy`` file holding a (T, N, 3) array (key
``points``, ``observations`` or the only array).

Output (:func:`write_reconstruction`), one folder per sample, written to a temporary folder and
renamed when complete (a failure leaves nothing behind)::

    <out>/sample_00/
        mesh_0000.ply ... mesh_<T-1>.ply  the reconstructed surface per frame, same vertex order and
                                          faces in every frame (world units)
        input_0000.ply ...                the observed cloud of each frame (world units)
        trajectories.npz                  vertices (T, V, 3) f32 world; vertices_normalized (T, V, 3);
                                          faces (F, 3) i32; observations (T, N, 3) f32 world;
                                          loc (3,), scale () (world = normalized * scale + loc);
                                          frame_index (T,) i32; colors (V, 3) u8 correspondence colours
        reconstruction.json               settings, timings, metrics (when ground truth is known)
        renders/frame_0000.png ...        per-frame renders (fixed camera) when rendering is on
        renders/sequence.gif              the frames as an animation
        renders/turntable.gif             frame 0 seen from 8 azimuths (+ turntable_XX.png)
    <out>/summary.json                    list of samples and shared settings
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import trimesh

from latent4d.errors import InputError
from latent4d.fileio import atomic_path, write_json_atomic
from latent4d.motion.observe import check_sequence

CLOUD_EXTS = (".ply", ".npz", ".npy", ".xyz", ".txt", ".pts", ".obj", ".off")


def _read_cloud(path: Path) -> np.ndarray:
    ext = path.suffix.lower()
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "points" if "points" in z.files else (z.files[0] if len(z.files) == 1 else None)
                if key is None:
                    raise InputError(f"{path}: expected an array named 'points' (found {z.files})")
                a = z[key]
        elif ext == ".npy":
            a = np.load(path, allow_pickle=False)
        elif ext in (".xyz", ".txt", ".pts"):
            a = np.loadtxt(path, ndmin=2, comments=("#", "//"))
            if a.size and a.shape[1] < 3:
                raise InputError(f"{path}: expected at least 3 columns (x y z), got {a.shape[1]}")
            a = a[:, :3] if a.size else np.zeros((0, 3))
        elif ext == ".ply":
            import open3d as o3d

            pc = o3d.io.read_point_cloud(str(path))
            a = np.asarray(pc.points)
            if len(a) == 0:  # maybe a mesh without the point-cloud reader's fields
                m = trimesh.load(path, process=False, force="mesh")
                a = np.asarray(m.vertices)
        else:
            a = np.asarray(trimesh.load(path, process=False, force="mesh").vertices)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - corrupt / unreadable file
        raise InputError(f"{path}: cannot read a point cloud ({type(e).__name__}: {e})") from e
    a = np.asarray(a, dtype=np.float32)
    if a.ndim != 2 or (a.size and a.shape[1] != 3):
        raise InputError(f"{path}: expected an (N, 3) point array, got shape {a.shape}")
    return a.reshape(-1, 3)


def read_sequence(path: str | Path) -> list[np.ndarray]:
    """Observed frames as a list of (N_t, 3) float32 arrays (validated: >= 2 frames, no empty frame, no NaN)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"input '{p}' does not exist")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in CLOUD_EXTS
                       and not f.name.startswith("."))
        if not files:
            raise InputError(f"input folder '{p}' holds no point-cloud files ({', '.join(CLOUD_EXTS)}): empty sequence")
        frames = [_read_cloud(f) for f in files]
        for f, a in zip(files, frames):
            if len(a) == 0:
                raise InputError(f"{f}: frame has no points")
            if not np.isfinite(a).all():
                raise InputError(f"{f}: contains NaN or infinite coordinates")
        return check_sequence(frames, str(p))
    if p.suffix.lower() not in (".npz", ".npy"):
        raise InputError(f"input '{p}': expected a folder of per-frame clouds or a (T, N, 3) .npz / .npy file")
    try:
        if p.suffix.lower() == ".npy":
            a = np.load(p, allow_pickle=False)
        else:
            with np.load(p, allow_pickle=False) as z:
                key = next((k for k in ("points", "observations") if k in z.files), None)
                if key is None and len(z.files) == 1:
                    key = z.files[0]
                if key is None:
                    raise InputError(f"{p}: expected an array 'points' or 'observations' of shape (T, N, 3), "
                                     f"found {z.files}")
                a = z[key]
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{p}: cannot read ({type(e).__name__}: {e})") from e
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise InputError(f"{p}: expected a (T, N, 3) array, got shape {a.shape}")
    return check_sequence(a.astype(np.float32), str(p))


def read_template(path: str | Path) -> trimesh.Trimesh:
    """A frame-0 template mesh (OBJ / PLY / OFF / GLB...) with at least one face, finite vertices."""
    p = Path(path).expanduser()
    try:
        m = trimesh.load(p, process=False, force="mesh")
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{p}: cannot read a mesh ({type(e).__name__}: {e})") from e
    if len(m.faces) == 0:
        raise InputError(f"{p}: template mesh has no faces")
    if not np.isfinite(np.asarray(m.vertices)).all():
        raise InputError(f"{p}: template vertices contain NaN or inf")
    return m


def normalization(frames: list[np.ndarray], margin: float = 0.0) -> tuple[np.ndarray, float]:
    """(loc (3,), scale) mapping the frames' joint bounding box into [-0.5, 0.5]^3: normalized = (x - loc) / scale."""
    allp = np.concatenate(frames)
    lo, hi = allp.min(0), allp.max(0)
    scale = float((hi - lo).max()) * (1.0 + margin)
    if scale <= 0:
        raise InputError("observations: all points coincide; cannot normalise the sequence")
    return ((lo + hi) / 2).astype(np.float32), scale


def correspondence_colors(vertices0: np.ndarray) -> np.ndarray:
    """(V, 3) uint8 colours from the frame-0 positions (RGB = normalised xyz): the same colour marks
    the same surface point in every frame."""
    v = np.asarray(vertices0, np.float64)
    lo, hi = v.min(0), v.max(0)
    return (255 * (v - lo) / np.maximum(hi - lo, 1e-9)).clip(0, 255).astype(np.uint8)


def _write_ply_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None) -> None:
    m = trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False)
    with atomic_path(path) as tmp:
        m.export(tmp)


def _write_ply_cloud(path: Path, points: np.ndarray) -> None:
    pc = trimesh.PointCloud(points)
    with atomic_path(path) as tmp:
        pc.export(tmp)


def write_reconstruction(out_dir: str | Path, vertices: np.ndarray, faces: np.ndarray, observations: np.ndarray | None,
                         loc=None, scale: float = 1.0, info: dict | None = None, render: bool = False,
                         render_size: int = 320, turntable: bool = True) -> Path:
    """Write one sample's folder (layout in the module docstring); vertices / observations normalised."""
    out_dir = Path(out_dir)
    loc = np.zeros(3, np.float32) if loc is None else np.asarray(loc, np.float32)
    verts_n = np.asarray(vertices, np.float32)
    if verts_n.ndim != 3 or verts_n.shape[0] < 1:
        raise InputError(f"write_reconstruction: vertices must be (T, V, 3), got {verts_n.shape}")
    if observations is not None:
        obs = np.asarray(observations)
        if obs.ndim != 3 or obs.shape[-1] != 3 or len(obs) != len(verts_n):
            raise InputError(f"write_reconstruction: observations must be (T={len(verts_n)}, N, 3), got {obs.shape}")
    world = verts_n * scale + loc
    faces = np.asarray(faces, np.int32)
    colors = correspondence_colors(verts_n[0])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        T = world.shape[0]
        for t in range(T):
            _write_ply_mesh(tmp / f"mesh_{t:04d}.ply", world[t], faces, colors)
        obs_w = None
        if observations is not None:
            obs_w = np.asarray(observations, np.float32) * scale + loc
            for t in range(len(obs_w)):
                _write_ply_cloud(tmp / f"input_{t:04d}.ply", obs_w[t])
        arrays = dict(vertices=world.astype(np.float32), vertices_normalized=verts_n, faces=faces,
                      loc=loc, scale=np.float32(scale), frame_index=np.arange(T, dtype=np.int32), colors=colors)
        if obs_w is not None:
            arrays["observations"] = obs_w
        with atomic_path(tmp / "trajectories.npz") as f:
            with open(f, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        meta = dict(info or {}, frames=T, vertices=int(world.shape[1]), faces=int(len(faces)),
                    files={"meshes": "mesh_%04d.ply", "inputs": "input_%04d.ply" if obs_w is not None else None,
                           "trajectories": "trajectories.npz"})
        if render:
            meta["renders"] = render_sequence(tmp / "renders", world, faces, colors, obs_w, render_size, turntable)
        write_json_atomic(tmp / "reconstruction.json", meta)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def render_sequence(out_dir: Path, world: np.ndarray, faces: np.ndarray, colors: np.ndarray,
                    observations: np.ndarray | None, size: int = 320, turntable: bool = True) -> dict:
    """Per-frame PNGs from one fixed camera framing the whole sequence, an animated GIF, a turntable."""
    import imageio.v2 as imageio

    from latent4d.render import render_image, render_turntable, save_png

    lo, hi = world.reshape(-1, 3).min(0), world.reshape(-1, 3).max(0)
    centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    frames = []
    for t in range(len(world)):
        m = trimesh.Trimesh(world[t], faces, vertex_colors=colors, process=False)
        img = render_image([m], width=size, height=size, azimuth=30.0, elevation=15.0, center=centre, radius=radius)
        save_png(img, out_dir / f"frame_{t:04d}.png")
        frames.append(img)
    with atomic_path(out_dir / "sequence.gif") as tmp:
        imageio.mimsave(tmp, frames, format="GIF", duration=0.12, loop=0)
    out = {"frames": "renders/frame_%04d.png", "animation": "renders/sequence.gif"}
    if turntable:
        m0 = trimesh.Trimesh(world[0], faces, vertex_colors=colors, process=False)
        render_turntable([m0], out_dir / "turntable.png", views=8, width=size, height=size)
        out["turntable"] = "renders/turntable.gif"
    return out


def load_reconstruction(folder: str | Path) -> dict:
    """Arrays of a sample folder written by :func:`write_reconstruction` (+ ``info`` from the JSON)."""
    folder = Path(folder)
    f = folder / "trajectories.npz"
    if not f.is_file():
        raise InputError(f"'{folder}' is not a motion reconstruction folder (no trajectories.npz)")
    with np.load(f, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    j = folder / "reconstruction.json"
    out["info"] = json.loads(j.read_text()) if j.is_file() else {}
    return out
