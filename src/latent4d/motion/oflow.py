"""The O-Flow / Motion2VecSets dataset layout (D-FAUST, DeformingThings4D): reading and writing.

Layout (one folder per sequence, frames numbered ``%08d``)::

    <root>/<category>/{train,val,test}.lst       sequence folder names, one per line
    <root>/<category>/<sequence>/pcl_seq/00000000.npz
        points (N, 3) surface samples (index i = the same material point in every frame),
        loc (3,), scale () : world = loc + scale * points
    <root>/<category>/<sequence>/points_seq/00000000.npz
        points (P, 3) float16 uniform samples, occupancies (ceil(P / 8),) uint8 (np.packbits),
        loc, scale as above
    <root>/<category>/<sequence>/points_near_seq/00000000.npz   (optional, same fields)
        near-surface samples

Files with an underscore in their stem (O-Flow's split ``*_0.npz`` chunks) are ignored. Each file
carries its own loc / scale; :func:`load_oflow_split` maps everything to world units and then
normalises every clip of ``num_frames`` frames to [-0.5, 0.5]^3 (largest side of the clip's
surface bounding box), the convention of :mod:`latent4d.motion.data`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latent4d.errors import ConfigError, InputError
from latent4d.fileio import atomic_path, write_bytes_atomic

FOLDERS = {"surface": "pcl_seq", "uniform": "points_seq", "near": "points_near_seq"}


def _frames(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir() if f.suffix == ".npz" and "_" not in f.stem)


def _load_npz(path: Path, need: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in need if k not in z.files]
            if missing:
                raise InputError(f"{path}: missing arrays {missing} (has {z.files})")
            return {k: z[k] for k in z.files}
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {e})") from e


def _world(d: dict[str, np.ndarray], path: Path) -> np.ndarray:
    pts = d["points"].astype(np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"{path}: 'points' must be (N, 3), got {pts.shape}")
    if len(pts) == 0:
        raise InputError(f"{path}: 'points' is empty")
    if not np.isfinite(pts).all():
        raise InputError(f"{path}: 'points' contains NaN or inf")
    loc = np.asarray(d.get("loc", np.zeros(3)), np.float32).reshape(3)
    scale = float(np.asarray(d.get("scale", 1.0)).reshape(-1)[0])
    return loc + scale * pts


def _occ(d: dict[str, np.ndarray], n: int, path: Path) -> np.ndarray:
    occ = d["occupancies"]
    if occ.dtype == np.uint8 and occ.size * 8 >= n and occ.size < n:  # packbits
        return np.unpackbits(occ)[:n].astype(bool)
    if occ.size != n:
        raise InputError(
            f"{path}: {occ.size} occupancies for {n} points (expected {n} values or "
            f"{(n + 7) // 8} packed bytes)"
        )
    return occ.astype(bool).reshape(n)


def read_split_list(root: str | Path, split: str, categories=None) -> list[Path]:
    """Sequence folders listed in ``<root>/<category>/<split>.lst`` for the chosen categories."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"O-Flow dataset root '{root}' does not exist")
    cats = [root / c for c in categories] if categories else sorted(p for p in root.iterdir() if p.is_dir())
    seqs: list[Path] = []
    for c in cats:
        lst = c / f"{split}.lst"
        if not lst.is_file():
            continue
        for line in lst.read_text().splitlines():
            name = line.strip()
            if name:
                seqs.append(c / name)
    if not seqs:
        raise ConfigError(
            f"no sequences for split '{split}' under '{root}' (expected <category>/{split}.lst files)"
        )
    return seqs


def _sequence_files(seq: Path, num_frames: int) -> tuple[list[Path], list[Path], list[Path]]:
    """(surface, uniform, near) frame files of one sequence, checked: equal frame counts, at least one clip."""
    surf_files = _frames(seq / FOLDERS["surface"])
    uni_files = _frames(seq / FOLDERS["uniform"])
    near_files = _frames(seq / FOLDERS["near"])
    if not surf_files:
        raise InputError(f"{seq}: no frames in {FOLDERS['surface']}/ (empty sequence)")
    if len(uni_files) != len(surf_files):
        raise InputError(
            f"{seq}: {len(surf_files)} frames in {FOLDERS['surface']}/ but {len(uni_files)} in "
            f"{FOLDERS['uniform']}/ (mismatched frame counts)"
        )
    if near_files and len(near_files) != len(surf_files):
        raise InputError(
            f"{seq}: {len(surf_files)} frames in {FOLDERS['surface']}/ but {len(near_files)} in "
            f"{FOLDERS['near']}/ (mismatched frame counts)"
        )
    if len(surf_files) < num_frames:
        raise InputError(f"{seq}: {len(surf_files)} frames, shorter than one clip of {num_frames}")
    return surf_files, uni_files, near_files


def _load_clip(
    seq: Path, files: tuple, frames: range, sizes: tuple[int, int, int], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One clip (``frames`` of a sequence) normalised to [-0.5, 0.5]^3: ``sizes`` = (surface samples,
    uniform queries, near queries) per frame, random subsets drawn from ``rng``."""
    surf_files, uni_files, near_files = files
    n_surface, n_uniform, n_near = sizes
    surf = [_world(_load_npz(surf_files[t], ("points",)), surf_files[t]) for t in frames]
    n_pts = {len(s) for s in surf}
    if len(n_pts) != 1:
        raise InputError(
            f"{seq}: surface frames {frames[0]}..{frames[-1]} have different point "
            f"counts {sorted(n_pts)}; pcl_seq samples must correspond across frames"
        )
    surf = np.stack(surf)
    lo, hi = surf.reshape(-1, 3).min(0), surf.reshape(-1, 3).max(0)
    loc, scale = (lo + hi) / 2, float((hi - lo).max())
    if scale <= 0:
        raise InputError(f"{seq}: degenerate surface (all points coincide)")
    idx = rng.choice(surf.shape[1], n_surface, replace=surf.shape[1] < n_surface)
    clip = {"surface": ((surf[:, idx] - loc) / scale).astype(np.float32)}
    for key, kind_files, n in (("uniform", uni_files, n_uniform), ("near", near_files or uni_files, n_near)):
        pts_l, occ_l = [], []
        for t in frames:
            d = _load_npz(kind_files[t], ("points", "occupancies"))
            w = _world(d, kind_files[t])
            o = _occ(d, len(w), kind_files[t])
            j = rng.choice(len(w), n, replace=len(w) < n)
            pts_l.append(((w[j] - loc) / scale).astype(np.float16))
            occ_l.append(o[j])
        clip[key] = np.stack(pts_l)
        clip[f"{key}_occ"] = np.stack(occ_l)
    clip.update(loc=loc.astype(np.float32), scale=np.float32(scale))
    return clip


def load_oflow_split(
    root: str | Path,
    split: str,
    num_frames: int = 17,
    n_surface: int = 2048,
    n_uniform: int = 2048,
    n_near: int = 2048,
    categories=None,
    max_sequences: int | None = None,
    clip_stride: int | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Arrays of one split in the format of :mod:`latent4d.motion.data` (clips of ``num_frames``).

    Sequences are cut into clips starting every ``clip_stride`` frames (default ``num_frames - 1``);
    each clip keeps ``n_surface`` corresponding surface samples (one random index set for the whole
    clip) and random subsets of the occupancy samples.
    """
    if num_frames < 2:
        raise ConfigError(f"num_frames must be >= 2, got {num_frames}")
    stride = clip_stride or (num_frames - 1)
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {}
    seqs = read_split_list(root, split, categories)
    n_clips = 0
    for seq in seqs:
        files = _sequence_files(seq, num_frames)
        for start in range(0, len(files[0]) - num_frames + 1, stride):
            clip = _load_clip(
                seq, files, range(start, start + num_frames), (n_surface, n_uniform, n_near), rng
            )
            for k, v in clip.items():
                parts.setdefault(k, []).append(v)
            n_clips += 1
            if max_sequences and n_clips >= max_sequences:
                break
        if max_sequences and n_clips >= max_sequences:
            break
    return {k: np.stack(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------------------------
# writing


def _save_npz(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _save_queries(path: Path, points: np.ndarray, sdf, loc: np.ndarray, scale: float) -> None:
    """Occupancy queries (N, 3) as float16 with packbits occupancies (O-Flow's points_seq format)."""
    _save_npz(
        path,
        points=points.astype(np.float16),
        occupancies=np.packbits(sdf.occupancy(points)),
        loc=loc,
        scale=np.float32(scale),
    )


def write_oflow_sequence(
    out_dir: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    n_surface: int = 100_000,
    n_uniform: int = 100_000,
    n_near: int = 100_000,
    near_sigmas=(0.004, 0.015),
    padding: float = 0.1,
    seed: int = 0,
) -> int:
    """Write one mesh sequence (T, V, 3) with shared ``faces`` in the O-Flow layout under ``out_dir``.

    Per frame: surface samples at one shared set of (face, barycentric) draws (so they correspond),
    uniform points in the padded unit cube and near-surface points with occupancies from Open3D's
    RaycastingScene. Every file stores the sequence's loc / scale (normalised = (world - loc) / scale,
    scale = largest bounding-box side over the whole sequence). Returns the number of frames.
    """
    from latent4d.geometry.sampling import interpolate_barycentric, sample_surface
    from latent4d.geometry.sdf import MeshSDF

    V = np.asarray(vertices, np.float64)
    F = np.asarray(faces, np.int64)
    if V.ndim != 3 or V.shape[-1] != 3 or len(V) == 0:
        raise InputError(f"write_oflow_sequence: vertices must be (T, V, 3) with T >= 1, got {V.shape}")
    rng = np.random.default_rng(seed)
    lo, hi = V.reshape(-1, 3).min(0), V.reshape(-1, 3).max(0)
    loc, scale = ((lo + hi) / 2).astype(np.float32), float((hi - lo).max())
    if scale <= 0:
        raise InputError("write_oflow_sequence: degenerate mesh sequence (zero extent)")
    Vn = (V - loc) / scale
    _, fidx, bary = sample_surface(Vn[0], F, n_surface, rng)
    out_dir = Path(out_dir)
    half = 0.5 + padding / 2
    for t in range(len(Vn)):
        name = f"{t:08d}.npz"
        surf = interpolate_barycentric(Vn[t], F, fidx, bary).astype(np.float32)
        _save_npz(out_dir / FOLDERS["surface"] / name, points=surf, loc=loc, scale=np.float32(scale))
        sdf = MeshSDF((Vn[t].astype(np.float32), F))
        uni = rng.uniform(-half, half, (n_uniform, 3)).astype(np.float32)
        _save_queries(out_dir / FOLDERS["uniform"] / name, uni, sdf, loc, scale)
        _, fi, b = sample_surface(Vn[t], F, n_near, rng)
        sig = np.asarray(near_sigmas)[rng.integers(0, len(near_sigmas), n_near)]
        near = (
            interpolate_barycentric(Vn[t], F, fi, b) + rng.normal(size=(n_near, 3)) * sig[:, None]
        ).astype(np.float32)
        _save_queries(out_dir / FOLDERS["near"] / name, near, sdf, loc, scale)
    return len(Vn)


def write_split_lists(category_dir: str | Path, splits: dict[str, list[str]]) -> None:
    """``<category_dir>/<split>.lst`` for each split (names one per line)."""
    for split, names in splits.items():
        write_bytes_atomic(Path(category_dir) / f"{split}.lst", ("\n".join(names) + "\n").encode())


def read_mesh_sequence(folder: str | Path) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Per-frame meshes (OBJ / PLY / OFF, sorted by name) with shared topology -> (T, V, 3), faces, files."""
    import trimesh

    folder = Path(folder)
    files = sorted(
        f for f in folder.iterdir() if f.suffix.lower() in (".obj", ".ply", ".off") and f.is_file()
    )
    if not files:
        raise InputError(f"{folder}: no mesh files (.obj, .ply, .off): empty sequence")
    verts, faces = [], None
    for f in files:
        try:
            m = trimesh.load(f, process=False, force="mesh")
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{f}: cannot read a mesh ({type(e).__name__}: {e})") from e
        v, fc = np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int64)
        if len(fc) == 0:
            raise InputError(f"{f}: mesh has no faces")
        if not np.isfinite(v).all():
            raise InputError(f"{f}: vertices contain NaN or inf")
        if faces is None:
            faces = fc
        elif fc.shape != faces.shape or not np.array_equal(fc, faces) or len(v) != len(verts[0]):
            raise InputError(
                f"{f}: topology differs from {files[0].name} ({len(v)} vertices / {len(fc)} faces vs "
                f"{len(verts[0])} / {len(faces)}); frames must share one mesh topology"
            )
        verts.append(v)
    return np.stack(verts), faces, files
