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

import warnings
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


def weld(vertices: np.ndarray, faces: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Faces re-indexed so that vertices that coincide in every frame (UV / normal seams of exported
    meshes duplicate them) become one: (F, 3). ``vertices`` (T, V, 3), ``tol`` relative to the extent."""
    V = np.asarray(vertices, np.float64)
    ext = float(np.ptp(V.reshape(-1, 3), 0).max()) or 1.0
    keys = np.round(V.transpose(1, 0, 2).reshape(V.shape[1], -1) / (ext * tol)).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)][faces]


def mesh_report(faces: np.ndarray) -> dict:
    """Topology of welded ``faces`` (F, 3): ``components`` (F,) int labels of the connected parts,
    ``n_parts``, ``open_edges`` (edges used by one face: holes) and ``bad_edges`` (used by 3+ faces)."""
    import trimesh

    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    labels = trimesh.graph.connected_component_labels(trimesh.graph.face_adjacency(faces), len(faces))
    return dict(
        components=labels,
        n_parts=int(labels.max()) + 1 if len(labels) else 0,
        open_edges=int((counts == 1).sum()),
        bad_edges=int((counts > 2).sum()),
    )


class PartsOccupancy:
    """Inside / outside of a mesh made of several closed parts: the union of the parts' insides (a
    point inside two overlapping parts is inside; one parity test over all faces would call it
    outside). Each part is Open3D's ray majority vote (:class:`~latent4d.geometry.sdf.MeshSDF`), asked
    only about points inside its bounding box. Open parts (holes) are decided by the same vote: small
    holes are closed by it, large openings leak (the prepare script warns about them)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, components: np.ndarray):
        from latent4d.geometry.sdf import MeshSDF

        self.parts = []
        for c in range(int(components.max()) + 1):
            fc = faces[components == c]
            used = np.unique(fc)
            remap = np.full(len(vertices), -1, np.int64)
            remap[used] = np.arange(len(used))
            v = np.asarray(vertices[used], np.float32)
            if len(fc) >= 4:  # fewer faces enclose nothing
                self.parts.append((v.min(0), v.max(0), MeshSDF((v, remap[fc]))))

    def occupancy(self, points: np.ndarray) -> np.ndarray:
        occ = np.zeros(len(points), bool)
        for lo, hi, sdf in self.parts:
            inside = np.all((points >= lo) & (points <= hi), 1) & ~occ
            if inside.any():
                occ[inside] = sdf.occupancy(points[inside])
        return occ


def _save_queries(path: Path, points: np.ndarray, sdf, loc: np.ndarray, scale: float) -> None:
    """Occupancy queries (N, 3) as float16 with packbits occupancies (O-Flow's points_seq format)."""
    _save_npz(
        path,
        points=points.astype(np.float16),
        occupancies=np.packbits(sdf.occupancy(points)),
        loc=loc,
        scale=np.float32(scale),
    )


def partial_view(vertices: np.ndarray, faces: np.ndarray, resolution: int = 200, distance: float = 1.25,
                 angle_deg: float = 45.0, z_up: bool = False, n_max: int = 100_000, rng=None) -> np.ndarray:  # fmt: skip
    """Depth cloud of one normalised frame as the official ``depth_rotate45`` data: a camera with a
    60 degree field of view at ``distance`` on +z looking at the origin, the mesh turned by
    ``angle_deg`` about y (DeformingThings4D: ``z_up``, turned -90 degrees about x first, distance 1.0);
    back-projected, at most ``n_max`` points, in the frame's normalised coordinates: (K, 3) float32."""
    from latent4d.motion.observe import depth_points

    a = np.radians(angle_deg)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    if z_up:
        R = R @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    v = np.asarray(vertices, np.float64) @ R.T
    pts = depth_points(v, faces, np.array([0.0, 0.0, distance]), resolution, fov_deg=60.0) @ R
    if len(pts) > n_max:
        pts = pts[np.random.default_rng(rng).choice(len(pts), n_max, replace=False)]
    return pts.astype(np.float32)


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
    partial: dict | None = None,
) -> dict:
    """Write one mesh sequence (T, V, 3) with shared ``faces`` in the O-Flow layout under ``out_dir``.

    Per frame: surface samples at one shared set of (face, barycentric) draws (so they correspond),
    uniform points in the padded unit cube and near-surface points with occupancies (seams welded,
    the union of the closed parts: :class:`PartsOccupancy`) and, with ``partial`` (keyword arguments
    of :func:`partial_view`), a depth cloud in ``depth_rotate45/``. Every file stores the sequence's
    loc / scale (normalised = (world - loc) / scale, scale = largest bounding-box side over the whole
    sequence). Returns ``frames`` and the topology report of :func:`mesh_report`.
    """
    from latent4d.geometry.sampling import interpolate_barycentric, sample_surface

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
    Fw = weld(Vn, F)
    report = mesh_report(Fw)
    _, fidx, bary = sample_surface(Vn[0], F, n_surface, rng)
    out_dir = Path(out_dir)
    half = 0.5 + padding / 2
    for t in range(len(Vn)):
        name = f"{t:08d}.npz"
        surf = interpolate_barycentric(Vn[t], F, fidx, bary).astype(np.float32)
        _save_npz(out_dir / FOLDERS["surface"] / name, points=surf, loc=loc, scale=np.float32(scale))
        occ = PartsOccupancy(Vn[t], Fw, report["components"])
        uni = rng.uniform(-half, half, (n_uniform, 3)).astype(np.float32)
        _save_queries(out_dir / FOLDERS["uniform"] / name, uni, occ, loc, scale)
        _, fi, b = sample_surface(Vn[t], F, n_near, rng)
        sig = np.asarray(near_sigmas)[rng.integers(0, len(near_sigmas), n_near)]
        near = (
            interpolate_barycentric(Vn[t], F, fi, b) + rng.normal(size=(n_near, 3)) * sig[:, None]
        ).astype(np.float32)
        _save_queries(out_dir / FOLDERS["near"] / name, near, occ, loc, scale)
        if partial is not None:
            pts = partial_view(Vn[t], F, rng=rng, **partial)
            if len(pts) == 0:
                raise InputError(f"{out_dir.name} frame {t}: the partial-view camera sees nothing")
            _save_npz(
                out_dir / PARTIAL_FOLDER / name,
                points=pts.astype(np.float16),
                loc=loc,
                scale=np.float32(scale),
            )
    return dict(frames=len(Vn), **{k: v for k, v in report.items() if k != "components"})


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


# ----------------------------------------------------------------------------------------------
# streaming: lazy frame files, split index, clip normalisation

HELD_OUT_LISTS = ("test", "test_new_individual")
PARTIAL_FOLDER = "depth_rotate45"


def _npy_header(f, path: Path, key: str, size: int) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset of the .npy stream at ``f``'s position, checked
    against the ``size`` bytes the member holds (nothing allocated from an unchecked header)."""
    start = f.tell()
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    if dtype.hasobject:
        raise InputError(f"{path}: '{key}' holds Python objects (refused: data files hold numbers only)")
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if need > size - (f.tell() - start):
        raise InputError(f"{path}: '{key}' header promises {need} bytes, the file holds fewer (truncated?)")
    return shape, fortran, dtype, f.tell()


def npz_member(path: str | Path, key: str) -> np.ndarray:
    """Array ``key`` of an ``.npz`` file without reading the others: memory-mapped (read-only) when
    the member is stored uncompressed (``np.savez``), else decompressed on its own."""
    import struct
    import zipfile

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{key}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as m:
                    return np.lib.format.read_array(m, allow_pickle=False)
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            head = f.read(30)
            if len(head) < 30 or head[:4] != b"PK\x03\x04":
                raise InputError(f"{path}: broken zip entry for '{key}'")
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            shape, fortran, dtype, offset = _npy_header(f, path, key, info.file_size)
        if int(np.prod(shape, dtype=np.int64)) == 0:
            return np.empty(shape, dtype)
        return np.memmap(path, dtype, "r", offset, shape, "F" if fortran else "C")
    except InputError:
        raise
    except KeyError:
        raise InputError(f"{path}: missing array '{key}'") from None
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: cannot read '{key}' ({type(e).__name__}: {e})") from e


def frame_transform(path: str | Path) -> tuple[np.ndarray, float]:
    """(loc (3,), scale) of one frame file: world = loc + scale * points (identity when absent)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {e})") from e
    loc = npz_member(path, "loc") if "loc.npy" in names else np.zeros(3)
    scale = npz_member(path, "scale") if "scale.npy" in names else np.ones(1)
    loc, scale = np.asarray(loc, np.float32).reshape(-1), np.asarray(scale, np.float64).reshape(-1)
    if loc.size != 3 or scale.size != 1 or not np.isfinite(loc).all() or not scale[0] > 0:
        raise InputError(f"{path}: 'loc' must be 3 finite numbers and 'scale' one positive number")
    return loc, float(scale[0])


def _points_member(path: Path) -> np.ndarray:
    pts = npz_member(path, "points")
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise InputError(f"{path}: 'points' must be (N, 3) with N >= 1, got {pts.shape}")
    return pts


def read_points(path: str | Path, idx: np.ndarray | None, loc0: np.ndarray, scale0: float) -> np.ndarray:
    """Points ``idx`` (all when None) of one frame file, in the clip frame (world - loc0) / scale0:
    (k, 3) float32. Only the rows asked for are read."""
    path = Path(path)
    pts = _points_member(path)
    sel = np.asarray(pts if idx is None else pts[np.sort(idx)], np.float32)
    if idx is not None:
        sel = sel[np.argsort(np.argsort(idx))]
    if not np.isfinite(sel).all():
        raise InputError(f"{path}: 'points' contains NaN or inf")
    loc, scale = frame_transform(path)
    return ((loc + scale * sel) - loc0) / scale0


def read_queries(
    path: str | Path, idx: np.ndarray, loc0: np.ndarray, scale0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy queries ``idx`` of one ``points_seq`` file: points (k, 3) float32 in the clip frame
    and occupancies (k,) bool (packed bits decoded only at ``idx``)."""
    path = Path(path)
    n = len(_points_member(path))
    occ = npz_member(path, "occupancies")
    if occ.dtype == np.uint8 and occ.size * 8 >= n and occ.size < n:
        j = np.asarray(idx, np.int64)
        o = ((np.asarray(occ[j >> 3]) >> (7 - (j & 7))) & 1).astype(bool)
    elif occ.size == n:
        o = np.asarray(occ.reshape(n)[idx]).astype(bool)
    else:
        raise InputError(
            f"{path}: {occ.size} occupancies for {n} points (expected {n} values or {(n + 7) // 8} packed bytes)"
        )
    return read_points(path, idx, loc0, scale0), o


def point_count(path: str | Path) -> int:
    """Number of points of a frame file (from the header only)."""
    return len(_points_member(Path(path)))


class OFlowIndex:
    """File index of one split of an O-Flow dataset: no point data is read to build it.

    ``sequences``: per sequence a dict of frame-file lists (``surface``, ``uniform``, ``near``,
    ``partial``; ``near`` falls back to ``uniform``, ``partial`` may be empty). ``clips``: (sequence,
    start) windows of ``num_frames`` frames, starting at ``offset`` every ``stride`` frames (the
    official loaders: stride 1, offset 15 for deformation diffusion); ``tail=True`` adds a last window
    ending at the last frame so that every frame after ``offset`` is covered. ``frames``: each covered
    frame once, as (clip, frame in clip).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_frames: int = 17,
        stride: int | None = None,
        offset: int = 0,
        categories=None,
        max_clips: int | None = None,
        partial_folder: str = PARTIAL_FOLDER,
        tail: bool = True,
    ):
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
        stride = int(stride or max(1, num_frames - 1))
        if stride < 1 or offset < 0:
            raise ConfigError(f"clip stride must be >= 1 and offset >= 0, got {stride} / {offset}")
        self.split, self.num_frames, self.stride, self.offset = split, num_frames, stride, offset
        self.sequences: list[dict[str, list[Path]]] = []
        self.names: list[str] = []
        self.clips: list[tuple[int, int]] = []
        skipped = []
        for seq in read_split_list(root, split, categories):
            surf, uni, near = _sequence_files(seq, 1)
            if len(surf) < num_frames + offset:
                skipped.append(f"{seq.name} ({len(surf)} frames)")
                continue
            part = _frames(seq / partial_folder)
            if part and len(part) != len(surf):
                raise InputError(
                    f"{seq}: {len(surf)} frames in {FOLDERS['surface']}/ but {len(part)} in "
                    f"{partial_folder}/ (mismatched frame counts)"
                )
            self.sequences.append(dict(surface=surf, uniform=uni, near=near or uni, partial=part))
            self.names.append(f"{seq.parent.name}/{seq.name}")
            starts = list(range(offset, len(surf) - num_frames + 1, stride))
            if tail and starts[-1] + num_frames < len(surf):
                starts.append(len(surf) - num_frames)
            self.clips += [(len(self.sequences) - 1, s) for s in starts]
        if skipped:
            warnings.warn(
                f"O-Flow split '{split}': {len(skipped)} sequence(s) shorter than offset {offset} + one clip of "
                f"{num_frames} frames skipped: {', '.join(skipped[:5])}",
                stacklevel=2,
            )
        if not self.clips:
            raise InputError(
                f"O-Flow split '{split}' under '{root}': no sequence holds a clip of {num_frames} frames"
            )
        if max_clips:
            self.clips = self.clips[: int(max_clips)]
        seen: set[tuple[int, int]] = set()
        self.frames: list[tuple[int, int]] = []
        for k, (si, start) in enumerate(self.clips):
            for j in range(num_frames):
                if (si, start + j) not in seen:
                    seen.add((si, start + j))
                    self.frames.append((k, j))

    def __len__(self) -> int:
        return len(self.clips)

    def files(self, k: int, kind: str, j: int | None = None):
        """Frame files of clip ``k`` (``kind`` in surface / uniform / near / partial): all its frames, or frame ``j``."""
        si, start = self.clips[k]
        fs = self.sequences[si][kind]
        if not fs:
            raise ConfigError(
                f"{self.names[si]}: no '{kind}' frames (partial inputs read {PARTIAL_FOLDER}/: write it with "
                "scripts/prepare_motion_dataset.py --partial, or train on sparse inputs only: data.p_sparse=1)"
            )
        return fs[start : start + self.num_frames] if j is None else fs[start + j]

    def key(self) -> dict:
        """What identifies the split's content (file names, sizes and modification times), for caches."""
        stats = []
        for seq in self.sequences:
            for f in (seq["surface"][0], seq["surface"][-1]):
                st = f.stat()
                stats.append([str(f), st.st_size, st.st_mtime_ns, len(seq["surface"])])
        return dict(
            split=self.split,
            T=self.num_frames,
            stride=self.stride,
            offset=self.offset,
            clips=len(self.clips),
            files=stats,
        )

    def transform(self, k: int, normalize: str = "dataset") -> tuple[np.ndarray, float]:
        """(loc0, scale0) of clip ``k``: normalised = (world - loc0) / scale0.

        ``dataset`` (the official loaders): the stored loc / scale of the clip's first frame, so the
        dataset's own normalisation is kept. ``clip``: the clip's surface fills [-0.5, 0.5] along its
        largest bounding-box side (reads the clip's surface files: cached by the data modules).
        """
        if normalize == "dataset":
            return frame_transform(self.files(k, "surface", 0))
        if normalize != "clip":
            raise ConfigError(f"normalize must be 'dataset' or 'clip', got {normalize!r}")
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for f in self.files(k, "surface"):
            w = read_points(f, None, np.zeros(3, np.float32), 1.0)
            lo, hi = np.minimum(lo, w.min(0)), np.maximum(hi, w.max(0))
        scale = float((hi - lo).max())
        if not scale > 0:
            raise InputError(f"{self.names[self.clips[k][0]]}: degenerate surface (all points coincide)")
        return ((lo + hi) / 2).astype(np.float32), scale


def clip_transforms(index: OFlowIndex, normalize: str, cache: bool = True) -> np.ndarray:
    """(clips, 4) float64 rows (loc0 x, y, z, scale0) of every clip of ``index`` (cached on disk with
    :func:`latent4d.cache.cached_npz` for ``normalize="clip"``, which reads every surface file once)."""
    from latent4d.cache import cached_npz

    def build() -> dict[str, np.ndarray]:
        rows = [
            np.r_[loc, scale] for loc, scale in (index.transform(k, normalize) for k in range(len(index)))
        ]
        return {"rows": np.asarray(rows, np.float64).reshape(-1, 4)}

    key = dict(index.key(), normalize=normalize, v=1)
    return cached_npz("motion-oflow-norm", key, build, enabled=cache and normalize == "clip")["rows"]


def read_clip_surface(
    index: OFlowIndex, k: int, idx: np.ndarray, transform: np.ndarray, frames=None
) -> np.ndarray:
    """Surface samples ``idx`` (corresponding) of clip ``k``'s frames (all, or ``frames``): (T, k, 3) float32."""
    fs = index.files(k, "surface")
    frames = range(len(fs)) if frames is None else frames
    loc, scale = transform[:3].astype(np.float32), float(transform[3])
    return np.stack([read_points(fs[j], idx, loc, scale) for j in frames])
