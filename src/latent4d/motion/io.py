"""Reading observed point-cloud sequences and writing reconstructed mesh sequences.

Input (:func:`read_sequence`): a folder with one point cloud per frame (``.ply``, ``.npz`` with a
``points`` array, ``.npy``, ``.xyz`` / ``.txt`` / ``.pts`` text with x y z in the first columns;
frames ordered by file name, numbers in names by value: the official demo's ``inputs_<t>.ply``), an
O-Flow ``pcl_seq`` folder (``.npz`` frames with ``points``, ``loc``, ``scale``: read in world units,
``max_points`` per frame), or one ``.npz`` / ``.npy`` file holding a (T, N, 3) array (key
``points``, ``observations`` or the only array). Readers never unpickle, and check the shapes /
counts declared in ``.npy`` / ``.npz`` / ``.ply`` headers against the file size and
:data:`MAX_VALUES` before allocating anything; every bad file is an :class:`InputError` naming it.

Output (:func:`write_tracked_sequence`), one folder per sample, written to a temporary folder and
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
#: the most numbers one input file may declare (a (T, N, 3) sequence of 2^26 points: 0.75 GiB as float32)
MAX_VALUES = 3 * 2**26
#: the most frames a sequence may have
MAX_FRAMES = 100_000
_MAX_NPZ_RATIO = 1100  # zlib cannot compress better than ~1030:1; a larger declared size is a zip bomb
_MAX_PLY_HEADER = 65536
_PLY_SIZES = {
    "char": 1,
    "uchar": 1,
    "int8": 1,
    "uint8": 1,
    "short": 2,
    "ushort": 2,
    "int16": 2,
    "uint16": 2,
    "int": 4,
    "uint": 4,
    "int32": 4,
    "uint32": 4,
    "float": 4,
    "float32": 4,
    "double": 8,
    "float64": 8,
}


def _npy_header(fp, available: int, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an ``.npy`` header (file object at its start), checked before anything is
    allocated: numeric dtype, at most :data:`MAX_VALUES` numbers, no more bytes than ``available``."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise InputError(f"{where}: not a valid .npy array ({str(e).strip()[:200]})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise InputError(
            f"{where}: holds {dtype} values; expected numbers (Python objects are never unpickled)"
        )
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > MAX_VALUES:
        raise InputError(
            f"{where}: declares shape {tuple(shape)} ({count} numbers), more than the limit of "
            f"{MAX_VALUES}; subsample the points first"
        )
    if count * dtype.itemsize > available:
        raise InputError(
            f"{where}: declares shape {tuple(shape)} ({count * dtype.itemsize} bytes) but holds only "
            f"{max(available, 0)} bytes of data: the file is truncated or corrupted"
        )
    return tuple(shape), dtype


def _load_npy(path: Path) -> np.ndarray:
    """An ``.npy`` array after :func:`_npy_header` (header sizes checked against the file size)."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(0)
        _npy_header(fh, size, str(path))  # checks the declared bytes against the whole file (header included)
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - data shorter than declared: numpy's own error
        raise InputError(
            f"{path}: cannot read the array ({type(e).__name__}: {str(e)[:200]}); the file is "
            "truncated or corrupted"
        ) from None


def _load_npz(path: Path, keys: tuple[str, ...], what: str, only: bool = True) -> tuple[str, np.ndarray]:
    """``(key, array)`` of the first of ``keys`` in an ``.npz`` (or, with ``only``, its only array), its
    header and zip sizes checked before it is read. ``what`` describes the expected array for the error."""
    import zipfile

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a valid .npz file ({e}); the file is truncated or corrupted") from None
    with zf:
        members = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i for i in zf.infolist()}
        key = next((k for k in keys if k in members), None)
        if key is None and only and len(members) == 1:
            key = next(iter(members))
        if key is None:
            raise InputError(f"{path}: expected {what} (found arrays {sorted(members)})")
        info = members[key]
        limit = (
            info.compress_size
            if info.compress_type == zipfile.ZIP_STORED
            else max(info.compress_size, 1) * _MAX_NPZ_RATIO
        )
        if info.file_size > limit:
            raise InputError(
                f"{path}: array '{key}' declares {info.file_size} bytes, implausible for its "
                f"{info.compress_size} stored bytes (corrupted or hostile file)"
            )
        try:
            with zf.open(info) as fh:
                _npy_header(fh, info.file_size, f"{path}: array '{key}'")
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - zlib / zip errors: a corrupt file
            raise InputError(f"{path}: array '{key}' is corrupted ({type(e).__name__}: {e})") from None
    try:
        with np.load(path, allow_pickle=False) as z:
            a = z[key]
    except Exception as e:  # noqa: BLE001 - truncated data, CRC errors
        raise InputError(
            f"{path}: array '{key}' cannot be read ({type(e).__name__}: {str(e)[:200]}); "
            "the file is truncated or corrupted"
        ) from None
    return key, a


def check_ply_header(path: Path) -> int:
    """Check a PLY file's header before a PLY reader allocates anything; returns its vertex count.

    Every element's count must fit in the bytes that follow the header (binary: count x row size,
    lists counted at their smallest; ASCII: at least 2 bytes per row) and the vertex count must be
    at most :data:`MAX_VALUES` / 3. Raises :class:`InputError` naming the file otherwise.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_MAX_PLY_HEADER)
    if not head.startswith(b"ply"):
        raise InputError(f"{path}: not a PLY file (no 'ply' magic at its start)")
    end = head.find(b"end_header")
    nl = head.find(b"\n", end) if end >= 0 else -1
    if end < 0 or nl < 0:
        raise InputError(
            f"{path}: PLY header has no complete 'end_header' line in its first {_MAX_PLY_HEADER} bytes"
        )
    body = size - (nl + 1)
    fmt, elements = None, []
    for raw in head[:end].decode("ascii", errors="replace").splitlines()[1:]:
        tok = raw.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format" and len(tok) >= 2:
            fmt = tok[1]
        elif tok[0] == "element":
            if len(tok) != 3 or not tok[2].isdigit():
                raise InputError(f"{path}: bad PLY element line '{raw.strip()}'")
            elements.append([tok[1], int(tok[2]), 0])
        elif tok[0] == "property" and elements:
            if len(tok) == 5 and tok[1] == "list" and tok[2] in _PLY_SIZES:
                elements[-1][2] += _PLY_SIZES[tok[2]]  # an empty list: the count alone
            elif len(tok) == 3 and tok[1] in _PLY_SIZES:
                elements[-1][2] += _PLY_SIZES[tok[1]]
            else:
                raise InputError(f"{path}: bad PLY property line '{raw.strip()}'")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputError(
            f"{path}: PLY format {fmt!r} is not ascii / binary_little_endian / binary_big_endian"
        )
    need = sum(n * (2 if fmt == "ascii" else row) for _, n, row in elements)
    if need > body:
        raise InputError(
            f"{path}: PLY header declares {', '.join(f'{n} {e}' for e, n, _ in elements)} "
            f"(at least {need} bytes) but only {body} bytes follow it: truncated or corrupted"
        )
    vertices = next((n for e, n, _ in elements if e == "vertex"), 0)
    if vertices * 3 > MAX_VALUES:
        raise InputError(
            f"{path}: {vertices} vertices, more than the limit of {MAX_VALUES // 3}; subsample first"
        )
    return vertices


def _read_cloud(path: Path) -> np.ndarray:
    ext = path.suffix.lower()
    try:
        if ext == ".npz":
            _, a = _load_npz(path, ("points",), "an array named 'points' (N, 3)")
        elif ext == ".npy":
            a = _load_npy(path)
        elif ext in (".xyz", ".txt", ".pts"):
            a = np.loadtxt(path, ndmin=2, comments=("#", "//"))
            if a.size and a.shape[1] < 3:
                raise InputError(f"{path}: expected at least 3 columns (x y z), got {a.shape[1]}")
            a = a[:, :3] if a.size else np.zeros((0, 3))
        elif ext == ".ply":
            import open3d as o3d

            check_ply_header(path)
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


def frame_order(path: Path) -> tuple:
    """Sort key of frame files: numbers in the name compare as numbers (the official demo's
    ``inputs_2.ply`` comes before ``inputs_10.ply``; zero-padded names keep their order)."""
    import re

    return tuple(int(x) if k % 2 else x for k, x in enumerate(re.split(r"(\d+)", path.name)))


def is_oflow_frames(files: list[Path]) -> bool:
    """Whether a folder's frame files are an O-Flow ``pcl_seq`` folder: ``.npz`` files holding
    ``points``, ``loc`` and ``scale`` (world = loc + scale * points)."""
    import zipfile

    if not files or any(f.suffix.lower() != ".npz" for f in files):
        return False
    try:
        with zipfile.ZipFile(files[0]) as zf:
            return {"points.npy", "loc.npy", "scale.npy"} <= set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def read_oflow_frames(files: list[Path], max_points: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """Frames of an O-Flow ``pcl_seq`` folder in world units (loc + scale * points), (k, 3) float32 each.

    ``max_points`` subsamples every frame when it holds more (D-FAUST: 100,000 points per frame): frames
    of equal counts share one index set (their points correspond, which sparse inputs rely on), so only
    those rows are read (memory-mapped when stored uncompressed). O-Flow's ``*_<k>.npz`` chunks are skipped.
    """
    from latent4d.motion.oflow import point_count, read_points

    files = [f for f in files if "_" not in f.stem]
    counts = [point_count(f) for f in files]
    total = 3 * sum(min(n, max_points or n) for n in counts)
    if total > MAX_VALUES:
        raise InputError(
            f"input folder '{files[0].parent}': {total // 3} points in all, more than {MAX_VALUES // 3}; "
            "read fewer per frame (max_points=...)"
        )
    rng = np.random.default_rng(seed)

    def subset(n: int) -> np.ndarray | None:
        return (
            None if not max_points or n <= max_points else np.sort(rng.choice(n, max_points, replace=False))
        )

    shared = subset(counts[0]) if len(set(counts)) == 1 else None
    zero = np.zeros(3, np.float32)
    return [
        read_points(f, shared if shared is not None else subset(n), zero, 1.0) for f, n in zip(files, counts)
    ]


def read_depth_sequence(
    folder: Path,
    max_points: int | None = None,
    seed: int = 0,
    depth_scale: float = 1000.0,
    depth_max: float | None = None,
) -> list[np.ndarray]:
    """Per-frame partial clouds (k_t, 3) float32 of a depth-image sequence: ``folder/intrinsics.json``
    ({fx, fy, cx, cy[, width, height]} or {"K": 3x3}, pixels) and one depth image per frame (16-bit PNG
    with ``depth_scale`` units per metre, or an (H, W) ``.npy`` in metres; 0 / NaN = no measurement).

    Pixels farther than ``depth_max`` metres (the background) are dropped; each frame keeps at most
    ``max_points`` random points. Points are in metres in the camera frame turned y-up, (x, -y, -z) of
    OpenCV's x right / y down / z forward, so that an upright subject stands as in the training data.
    """
    from latent4d.geometry.rgbd import backproject_depth
    from latent4d.objects.io import check_camera, read_depth_png, read_intrinsics

    K = read_intrinsics(folder / "intrinsics.json")
    files = sorted(
        (f for f in folder.iterdir() if f.suffix.lower() in (".png", ".npy") and not f.name.startswith(".")),
        key=frame_order,
    )
    if len(files) < 2:
        raise InputError(
            f"depth sequence '{folder}': {len(files)} depth image(s) (.png / .npy); need >= 2 frames"
        )
    rng, frames, size = np.random.default_rng(seed), [], None
    for f in files:
        d = read_depth_png(f, depth_scale)
        if size is None:
            size = d.shape
            check_camera(K, d.shape[1], d.shape[0], f"{folder / 'intrinsics.json'}", image=str(f))
        elif d.shape != size:
            raise InputError(
                f"{f}: {d.shape[1]}x{d.shape[0]} pixels, the first frame has {size[1]}x{size[0]}"
            )
        if depth_max:
            d = np.where(d <= depth_max, d, 0)
        pts, _ = backproject_depth(d, K)
        if len(pts) == 0:
            raise InputError(
                f"{f}: no valid depth pixels" + (f" within depth_max={depth_max} m" if depth_max else "")
            )
        if max_points and len(pts) > max_points:
            pts = pts[np.sort(rng.choice(len(pts), max_points, replace=False))]
        frames.append(pts * np.array([1, -1, -1], np.float32))
    return frames


def read_sequence(
    path: str | Path,
    max_points: int | None = None,
    seed: int = 0,
    depth_scale: float = 1000.0,
    depth_max: float | None = None,
) -> list[np.ndarray]:
    """Observed frames as a list of (N_t, 3) float32 arrays (world units).

    Validated before use: the input exists, >= 2 and <= :data:`MAX_FRAMES` frames, every frame an
    (N, 3) array with at least one point and only finite coordinates, at most :data:`MAX_VALUES`
    numbers in all; headers of ``.npy`` / ``.npz`` / ``.ply`` files are checked against their file size
    before anything is allocated. Every :class:`InputError` names the file (and frame). An O-Flow
    ``pcl_seq`` folder (:func:`is_oflow_frames`) is read with :func:`read_oflow_frames` (world units,
    ``max_points`` per frame). A folder with ``intrinsics.json`` is a depth-image sequence
    (:func:`read_depth_sequence`, ``depth_scale`` / ``depth_max``).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"input '{p}' does not exist")
    if p.is_dir() and (p / "intrinsics.json").is_file():
        return check_sequence(read_depth_sequence(p, max_points, seed, depth_scale, depth_max), str(p))
    if p.is_dir():
        files = sorted(
            (
                f
                for f in p.iterdir()
                if f.is_file() and f.suffix.lower() in CLOUD_EXTS and not f.name.startswith(".")
            ),
            key=frame_order,
        )
        if not files:
            raise InputError(
                f"input folder '{p}' holds no point-cloud files ({', '.join(CLOUD_EXTS)}): empty sequence"
            )
        if len(files) <= MAX_FRAMES and is_oflow_frames(files):
            return check_sequence(read_oflow_frames(files, max_points, seed), str(p))
        if len(files) > MAX_FRAMES:
            raise InputError(
                f"input folder '{p}' holds {len(files)} frames, more than the limit of {MAX_FRAMES}"
            )
        frames, total = [], 0
        for f in files:
            a = _read_cloud(f)
            if len(a) == 0:
                raise InputError(f"{f}: frame has no points")
            if not np.isfinite(a).all():
                raise InputError(f"{f}: contains NaN or infinite coordinates")
            total += a.size
            if total > MAX_VALUES:
                raise InputError(
                    f"input folder '{p}': more than {MAX_VALUES // 3} points in all (at {f.name}); "
                    "subsample the frames first"
                )
            frames.append(a)
        return check_sequence(frames, str(p))
    if p.suffix.lower() not in (".npz", ".npy"):
        raise InputError(
            f"input '{p}': expected a folder of per-frame clouds or a (T, N, 3) .npz / .npy file"
        )
    if p.suffix.lower() == ".npy":
        a = _load_npy(p)
    else:
        _, a = _load_npz(
            p, ("points", "observations"), "an array 'points' or 'observations' of shape (T, N, 3)"
        )
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise InputError(f"{p}: expected a (T, N, 3) array, got shape {a.shape}")
    if len(a) > MAX_FRAMES:
        raise InputError(f"{p}: {len(a)} frames, more than the limit of {MAX_FRAMES}")
    return check_sequence(a.astype(np.float32), str(p))


def read_template(path: str | Path) -> trimesh.Trimesh:
    """A frame-0 template mesh (OBJ / PLY / OFF / GLB...) with at least one face, finite vertices,
    face indices within the vertex list. PLY headers are checked before reading."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"template '{p}' does not exist (or is not a file)")
    if p.suffix.lower() == ".ply":
        check_ply_header(p)
    try:
        m = trimesh.load(p, process=False, force="mesh")
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{p}: cannot read a mesh ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise InputError(f"{p}: template mesh has no faces")
    if not np.isfinite(np.asarray(m.vertices)).all():
        raise InputError(f"{p}: template vertices contain NaN or inf")
    return m


def read_ground_truth(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of ``gt=``: an ``.npz`` with ``vertices`` (T, V, 3) (world units, finite) and
    ``faces`` (F, 3) (integers in [0, V)). Returns (vertices float32, faces int64)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"ground truth '{p}' does not exist (or is not a file)")
    if p.suffix.lower() != ".npz":
        raise InputError(f"ground truth '{p}': expected an .npz with 'vertices' (T, V, 3) and 'faces' (F, 3)")
    what = "arrays 'vertices' (T, V, 3) and 'faces' (F, 3)"
    _, v = _load_npz(p, ("vertices",), what, only=False)
    _, f = _load_npz(p, ("faces",), what, only=False)
    v, f = np.asarray(v), np.asarray(f)
    if v.ndim != 3 or v.shape[-1] != 3 or v.shape[0] < 1 or v.shape[1] < 3:
        raise InputError(f"{p}: 'vertices' must be (T, V, 3) with V >= 3, got shape {v.shape}")
    if f.ndim != 2 or f.shape[-1] != 3 or len(f) == 0 or f.dtype.kind not in "iu":
        raise InputError(f"{p}: 'faces' must be a non-empty (F, 3) integer array, got {f.dtype} {f.shape}")
    if f.min() < 0 or f.max() >= v.shape[1]:
        raise InputError(f"{p}: 'faces' index vertices outside [0, {v.shape[1] - 1}]")
    v = v.astype(np.float32)
    if not np.isfinite(v).all():
        raise InputError(f"{p}: 'vertices' contain NaN or infinite coordinates")
    return v, f.astype(np.int64)


def normalization(
    frames: list[np.ndarray], margin: float = 0.0, name: str = "observations"
) -> tuple[np.ndarray, float]:
    """(loc (3,), scale) mapping the frames' joint bounding box into [-0.5, 0.5]^3: normalized = (x - loc) / scale.

    InputError naming ``name`` when all points coincide (or the extent overflows float32)."""
    allp = np.concatenate(frames)
    lo, hi = allp.min(0), allp.max(0)
    scale = float((hi - lo).max()) * (1.0 + margin)
    if not scale > 0:
        raise InputError(f"{name}: all points coincide; cannot normalise the sequence")
    if not np.isfinite(scale):
        raise InputError(f"{name}: coordinates span more than float32 can hold; check the units")
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


def write_tracked_sequence(
    out_dir: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    observations: np.ndarray | None,
    loc=None,
    scale: float = 1.0,
    info: dict | None = None,
    render: bool = False,
    render_size: int = 320,
    turntable: bool = True,
) -> Path:
    """Write one sample's folder (layout in the module docstring); vertices / observations normalised."""
    out_dir = Path(out_dir)
    loc = np.zeros(3, np.float32) if loc is None else np.asarray(loc, np.float32)
    verts_n = np.asarray(vertices, np.float32)
    if verts_n.ndim != 3 or verts_n.shape[0] < 1:
        raise InputError(f"write_tracked_sequence: vertices must be (T, V, 3), got {verts_n.shape}")
    if observations is not None:
        obs = np.asarray(observations)
        if obs.ndim != 3 or obs.shape[-1] != 3 or len(obs) != len(verts_n):
            raise InputError(
                f"write_tracked_sequence: observations must be (T={len(verts_n)}, N, 3), got {obs.shape}"
            )
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
        arrays = dict(
            vertices=world.astype(np.float32),
            vertices_normalized=verts_n,
            faces=faces,
            loc=loc,
            scale=np.float32(scale),
            frame_index=np.arange(T, dtype=np.int32),
            colors=colors,
        )
        if obs_w is not None:
            arrays["observations"] = obs_w
        with atomic_path(tmp / "trajectories.npz") as f:
            with open(f, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        meta = dict(
            info or {},
            frames=T,
            vertices=int(world.shape[1]),
            faces=int(len(faces)),
            files={
                "meshes": "mesh_%04d.ply",
                "inputs": "input_%04d.ply" if obs_w is not None else None,
                "trajectories": "trajectories.npz",
            },
        )
        if render:
            meta["renders"] = render_sequence(
                tmp / "renders", world, faces, colors, obs_w, render_size, turntable
            )
        write_json_atomic(tmp / "reconstruction.json", meta)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def render_sequence(
    out_dir: Path,
    world: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    observations: np.ndarray | None,
    size: int = 320,
    turntable: bool = True,
) -> dict:
    """Per-frame PNGs from one fixed camera framing the whole sequence, an animated GIF, a turntable."""
    import imageio.v2 as imageio

    from latent4d.render import render_image, render_turntable, save_png

    lo, hi = world.reshape(-1, 3).min(0), world.reshape(-1, 3).max(0)
    centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    frames = []
    for t in range(len(world)):
        m = trimesh.Trimesh(world[t], faces, vertex_colors=colors, process=False)
        img = render_image(
            [m], width=size, height=size, azimuth=30.0, elevation=15.0, center=centre, radius=radius
        )
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


def load_tracked_sequence(folder: str | Path) -> dict:
    """Arrays of a sample folder written by :func:`write_tracked_sequence` (+ ``info`` from the JSON)."""
    folder = Path(folder)
    f = folder / "trajectories.npz"
    if not f.is_file():
        raise InputError(f"'{folder}' is not a motion reconstruction folder (no trajectories.npz)")
    import zipfile

    try:
        with zipfile.ZipFile(f) as zf:
            names = [n[:-4] if n.endswith(".npy") else n for n in zf.namelist()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise InputError(f"{f}: not a valid .npz file ({e}); the folder is damaged") from None
    out: dict = {k: _load_npz(f, (k,), f"an array '{k}'", only=False)[1] for k in names}
    j = folder / "reconstruction.json"
    try:
        out["info"] = json.loads(j.read_text()) if j.is_file() else {}
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{j}: not valid JSON ({e})") from None
    return out
