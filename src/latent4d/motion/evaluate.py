"""Evaluation on held-out procedural sequences (unseen motion, unseen identity), shared by
``latent4d evaluate``, ``latent4d bench motion_ae`` / ``motion`` and the demo.

All metrics follow :mod:`latent4d.motion.metrics`; correspondence errors are also reported relative
to the bounding-box diagonal of the true sequence (``*_rel``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from latent4d.geometry.sdf import MeshSDF
from latent4d.motion.data import HELD_OUT, build_procedural_split
from latent4d.motion.metrics import (
    bbox_diagonal,
    chamfer_l1,
    correspondence_l2,
    iou,
    mesh_iou,
    uniform_points,
)
from latent4d.motion.observe import add_noise, partial_observation, sparse_observation
from latent4d.motion.types import HeldOut


def held_out(
    n_per_split: int = 4,
    num_frames: int = 17,
    data_seed: int = 0,
    n_surface: int = 2048,
    splits=HELD_OUT,
    kinds=None,
) -> list[HeldOut]:
    """The first ``n_per_split`` clips of each held-out split (as generated for the data modules;
    ``kinds`` restricts the identities as ``data.kinds`` does)."""
    from latent4d.motion.synthetic import KINDS, procedural_sequence

    kinds = tuple(kinds or KINDS)
    out = []
    for split in splits:
        a = build_procedural_split(
            split, n_per_split, num_frames, n_surface, 256, 256, kinds=kinds, seed=data_seed
        )
        for k in range(n_per_split):
            seq = procedural_sequence(int(a["identity_seed"][k]), int(a["motion_seed"][k]), num_frames, kinds)
            out.append(HeldOut(split, k, seq, a["surface"][k]))
    return out


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.mean(xs)) if xs else float("nan")


def evaluate_shape_ae(
    pipe,
    clips: list[HeldOut],
    frames=(0, 8, 16),
    n_points: int = 1024,
    n_iou: int = 100_000,
    n_chamfer: int = 100_000,
    resolution: int = 128,
    mesh: bool = True,
    bounds: float = 0.55,
    seed: int = 0,
) -> dict:
    """Shape AE on held-out frames: network IoU on ``n_iou`` uniform points, Chamfer-L1 of the mesh.

    Returns ``{"iou": mean, "chamfer_l1": mean, "per_split": {...}, "rows": [...], "seconds": {...}}``.
    """
    pts = uniform_points(n_iou, bounds, seed)
    rows = []
    t_enc = t_dec = t_mesh = 0.0
    for c in clips:
        for t in frames:
            if t >= c.sequence.num_frames:
                continue
            rng = np.random.default_rng([seed, c.index, t])
            cloud = c.surface[t][rng.choice(len(c.surface[t]), n_points, replace=False)]
            t0 = time.perf_counter()
            z = pipe.encode_shape(cloud)[0]
            t1 = time.perf_counter()
            logits = pipe.occupancy(z, pts)
            t2 = time.perf_counter()
            gt_mesh = c.sequence.mesh(t)
            row = {
                "split": c.split,
                "clip": c.index,
                "frame": t,
                "iou": iou(logits > 0, MeshSDF(gt_mesh).occupancy(pts)),
            }
            if mesh:
                t3 = time.perf_counter()
                m = pipe.mesh(z, resolution)
                t_mesh += time.perf_counter() - t3
                row["chamfer_l1"] = chamfer_l1(m, gt_mesh, n_chamfer, seed)
            t_enc += t1 - t0
            t_dec += t2 - t1
            rows.append(row)
    out = {
        "iou": _mean(r["iou"] for r in rows),
        "rows": rows,
        "seconds": {
            "encode_per_shape": t_enc / max(1, len(rows)),
            "decode_per_shape": t_dec / max(1, len(rows)),
            "decode_points": n_iou,
            "mesh_per_shape": t_mesh / max(1, len(rows)) if mesh else None,
        },
    }
    if mesh:
        out["chamfer_l1"] = _mean(r["chamfer_l1"] for r in rows)
    out["per_split"] = {
        s: {
            k: _mean(r[k] for r in rows if r["split"] == s)
            for k in ("iou", "chamfer_l1")
            if k in (rows[0] if rows else {})
        }
        for s in sorted({r["split"] for r in rows})
    }
    return out


def evaluate_deform_ae(pipe, clips: list[HeldOut], n_points: int = 1024, seed: int = 0) -> dict:
    """Deformation AE on held-out clips: the true frame-0 mesh vertices decoded to every frame from
    (frame 0, frame t) clouds; mean L2 error to the true vertices, absolute and relative to the
    clip's bounding-box diagonal."""
    rows = []
    t_enc = t_dec = 0.0
    n_dec = 0
    for c in clips:
        rng = np.random.default_rng([seed, c.index])
        idx = rng.choice(c.surface.shape[1], n_points, replace=False)
        cl = c.surface[:, idx]
        t0 = time.perf_counter()
        z = pipe.encode_deformation(cl[0], cl[1:])
        t1 = time.perf_counter()
        pred = pipe.deform(z, c.sequence.vertices[0])
        t2 = time.perf_counter()
        err = np.linalg.norm(pred - c.sequence.vertices[1:], axis=-1).mean(1)  # (T-1,)
        diag = bbox_diagonal(c.sequence.vertices)
        t_enc += t1 - t0
        t_dec += t2 - t1
        n_dec += len(z)
        rows.append(
            {
                "split": c.split,
                "clip": c.index,
                "corr_l2": float(err.mean()),
                "corr_rel": float(err.mean() / diag),
                "corr_l2_per_frame": err.tolist(),
                "diag": diag,
                "vertices": int(pred.shape[1]),
            }
        )
    return {
        "corr_l2": _mean(r["corr_l2"] for r in rows),
        "corr_rel": _mean(r["corr_rel"] for r in rows),
        "per_split": {
            s: {k: _mean(r[k] for r in rows if r["split"] == s) for k in ("corr_l2", "corr_rel")}
            for s in sorted({r["split"] for r in rows})
        },
        "rows": rows,
        "seconds": {"encode_per_pair": t_enc / max(1, n_dec), "decode_per_pair": t_dec / max(1, n_dec)},
    }


def observe_clip(
    clip: HeldOut, mode: str, n_obs: int = 300, noise: float = 0.002, seed: int = 0, camera: str = "fixed"
) -> np.ndarray:
    """The observation of a held-out clip used by the benchmarks, the demo and ``evaluate``: ``sparse``
    corresponding points or a ``partial`` depth sequence, with noise. (T, n_obs, 3)."""
    rng = np.random.default_rng([seed, clip.index, 11])
    if mode == "sparse":
        return sparse_observation(clip.surface, n_obs, noise, rng)
    return add_noise(
        partial_observation(clip.sequence.vertices, clip.sequence.faces, n_obs, camera, 0.0, rng), noise, rng
    )


def sequence_metrics(
    vertices: np.ndarray,
    faces: np.ndarray,
    clip: HeldOut,
    n_iou: int = 100_000,
    n_chamfer: int = 100_000,
    frame_meshes=None,
    bounds: float = 0.55,
    seed: int = 0,
) -> dict:
    """Per-frame IoU, Chamfer-L1 and correspondence L2 of a tracked mesh sequence against the truth.

    ``frame_meshes`` replaces the tracked meshes for IoU / Chamfer (per-frame baselines).
    """
    import trimesh

    seq = clip.sequence
    T = seq.num_frames
    ious, cds = [], []
    for t in range(T):
        m = (
            frame_meshes[t]
            if frame_meshes is not None
            else trimesh.Trimesh(vertices[t], faces, process=False)
        )
        ious.append(mesh_iou(m, seq.mesh(t), n_iou, bounds, seed + t))
        cds.append(chamfer_l1(m, seq.mesh(t), n_chamfer, seed + t))
    corr = correspondence_l2(vertices, seq.vertices, seq.faces)
    diag = bbox_diagonal(seq.vertices)
    return {
        "iou": ious,
        "chamfer_l1": cds,
        "corr_l2": corr.tolist(),
        "corr_rel": (corr / diag).tolist(),
        "iou_mean": _mean(ious),
        "chamfer_l1_mean": _mean(cds),
        "corr_l2_mean": float(corr[1:].mean()),
        "corr_rel_mean": float(corr[1:].mean() / diag),
    }


def autoencode_metrics(
    pipe,
    clip: HeldOut,
    n_points: int = 1024,
    resolution: int = 128,
    n_iou: int = 30_000,
    n_chamfer: int = 30_000,
    seed: int = 0,
) -> dict:
    """Autoencoder-only tracking of a held-out clip from its dense corresponding clouds."""
    rng = np.random.default_rng([seed, clip.index, 5])
    idx = rng.choice(clip.surface.shape[1], n_points, replace=False)
    t0 = time.perf_counter()
    with torch.no_grad():
        rec = pipe.autoencode(clip.surface[:, idx], resolution=resolution)
    sec = time.perf_counter() - t0
    m = sequence_metrics(rec.vertices, rec.faces, clip, n_iou, n_chamfer, seed=seed)
    m["seconds"] = sec
    return m


# ----------------------------------------------------------------------------------------------
# the official protocol on an O-Flow split (Motion2VecSets core/eval.py, ONet's MeshEvaluator)

#: what the official protocol measures, and how latent4d's procedural metrics differ (written to the JSON)
OFFICIAL_PROTOCOL = {
    "units": "the dataset's normalisation: the stored loc / scale of each clip's first pcl_seq frame "
    "(official loaders); 'latent4d_units' rescales to latent4d's convention (each clip's surface fills "
    "[-0.5, 0.5] along its largest side)",
    "iou": "occupancy of the predicted mesh at every points_seq point of the frame (float16 points "
    "jittered by N(0, 1e-4) as the official loader does) against the stored labels; latent4d's "
    "procedural IoU uses 100k uniform points in [-0.55, 0.55]^3 against the true mesh. Inside test: "
    "Open3D ray majority vote (official: ONet's ray parity; equal on closed meshes)",
    "chamfer_l1": "(mean NN distance of n_chamfer points sampled on the predicted mesh to all pcl_seq "
    "points + the reverse) / 2; latent4d's procedural Chamfer-L1 samples the true mesh instead of "
    "using pcl_seq",
    "corr_l2": "each frame-0 vertex of the prediction is matched to its nearest pcl_seq point of frame 0; "
    "mean distance of the tracked vertices to those points' positions, averaged over all T frames "
    "(frame 0 included, official); corr_l2_moving averages frames 1..T-1 as latent4d's procedural "
    "corr_l2 does (which matches against the true mesh vertices instead)",
    "empty_mesh": "IoU 0, Chamfer-L1 sqrt(3) (the largest distance in [-0.5, 0.5]^3)",
}


def official_corr_l2(vertices: np.ndarray, pcl: np.ndarray) -> np.ndarray:
    """Per-frame correspondence error (T,) of tracked vertices (T, V, 3) against corresponding surface
    points (T, N, 3): frame-0 vertices matched to their nearest frame-0 point, then the mean distance of
    each frame's vertices to the matched points' positions in that frame."""
    from latent4d.geometry.distances import nearest_distance

    v0 = torch.as_tensor(np.asarray(vertices[0], np.float32))
    _, ind = nearest_distance(v0, torch.as_tensor(np.asarray(pcl[0], np.float32)))
    ind = ind.numpy()
    return np.linalg.norm(np.asarray(vertices, np.float64) - pcl[:, ind], axis=-1).mean(1)


def official_frame_metrics(
    mesh, pcl: np.ndarray, points: np.ndarray, occ: np.ndarray, n_chamfer: int, seed: int
):
    """(IoU, Chamfer-L1) of one predicted frame mesh against the frame's surface points ``pcl`` (N, 3)
    and occupancy queries ``points`` (P, 3) with labels ``occ`` (P,) bool (:data:`OFFICIAL_PROTOCOL`)."""
    from latent4d.geometry.sampling import sample_surface
    from latent4d.motion.metrics import chamfer_points, mesh_occupancy

    if len(mesh.faces) == 0:
        return 0.0, float(np.sqrt(3.0))
    samples, _, _ = sample_surface(mesh.vertices, mesh.faces, n_chamfer, seed)
    return iou(mesh_occupancy(mesh, points), occ), chamfer_points(samples, pcl)


def official_clip_metrics(
    vertices: np.ndarray,
    faces: np.ndarray,
    pcl: np.ndarray,
    points: np.ndarray,
    occ: np.ndarray,
    n_chamfer: int = 100_000,
    seed: int = 0,
) -> dict:
    """Per-frame and mean IoU, Chamfer-L1 and correspondence L2 of a tracked mesh sequence (vertices
    (T, V, 3), faces (F, 3)) against an O-Flow clip: ``pcl`` (T, N, 3) corresponding surface points,
    ``points`` (T, P, 3) occupancy queries, ``occ`` (T, P) bool; all in the same units."""
    import trimesh

    ious, cds = [], []
    for t in range(len(vertices)):
        m = trimesh.Trimesh(vertices[t], faces, process=False)
        a, b = official_frame_metrics(m, pcl[t], points[t], occ[t], n_chamfer, seed + t)
        ious.append(a)
        cds.append(b)
    corr = official_corr_l2(vertices, pcl) if len(faces) else np.full(len(vertices), np.nan)
    return {
        "iou": ious,
        "chamfer_l1": cds,
        "corr_l2": corr.tolist(),
        "iou_mean": _mean(ious),
        "chamfer_l1_mean": _mean(cds),
        "corr_l2_mean": float(corr.mean()),
        "corr_l2_moving_mean": float(corr[1:].mean()),
    }


def read_official_targets(index, k: int, n_iou: int | None = None, seed: int = 0):
    """The evaluation targets of clip ``k`` of an :class:`~latent4d.motion.oflow.OFlowIndex` in the
    dataset's units: (pcl (T, N, 3) every pcl_seq point, points (T, P, 3), occ (T, P) bool, transform
    (4,) loc0 x y z, scale0). ``n_iou`` caps the occupancy points per frame (None: all, official)."""
    from latent4d.motion.oflow import npz_member, point_count, read_clip_surface, read_queries

    loc, scale = index.transform(k, "dataset")
    tf = np.r_[loc, scale]
    pcl = read_clip_surface(index, k, None, tf)
    rng = np.random.default_rng([seed, k, 3])
    pts, occ = [], []
    for f in index.files(k, "uniform"):
        n = point_count(f)
        idx = np.arange(n) if not n_iou or n <= n_iou else np.sort(rng.choice(n, n_iou, replace=False))
        p, o = read_queries(f, idx, loc, scale)
        if npz_member(f, "points").dtype == np.float16:  # the official loader breaks float16 ties
            p = p + rng.normal(scale=1e-4, size=p.shape).astype(np.float32)
        pts.append(p)
        occ.append(o)
    n_min = min(len(p) for p in pts)
    return pcl, np.stack([p[:n_min] for p in pts]), np.stack([o[:n_min] for o in occ]), tf


def oflow_observer(index, model_tf: np.ndarray, n_obs: int, noise: float, seed: int = 0):
    """``observe(k, mode) -> (T, n_obs, 3)``: the inputs of clip ``k`` as the O-Flow training items make
    them (sparse: one ``pcl_seq`` index set for the window; partial: the ``depth_rotate45`` clouds; then
    noise), in the model's frame ``model_tf[k]`` (loc x y z, scale)."""
    from latent4d.motion.data import OFlowLatentDataset

    items = OFlowLatentDataset(
        index, model_tf, {"deform": np.zeros((len(index), 1))}, "deform", n_obs, noise, deterministic=True
    )
    frames = list(range(index.num_frames))

    def observe(k: int, mode: str) -> np.ndarray:
        return items._obs(np.random.default_rng([seed, k, 11]), k, frames, mode == "sparse")

    return observe


def evaluate_oflow_clip(
    solver, index, k: int, model_tf: np.ndarray, obs: np.ndarray, shape_points: int | None, o, seed: int = 0
) -> dict:
    """Reconstruct clip ``k`` from ``obs`` (T, n, 3, model frame) with ``solver`` (frame 0 from the shape
    diffusion, or when ``shape_points`` is set the shape AE's encoding of that many true frame-0
    ``pcl_seq`` points) and measure it with the official protocol; ``o`` holds ``n_iou`` / ``n_chamfer``.
    Returns :func:`official_clip_metrics` plus ``latent4d_units`` (see :data:`OFFICIAL_PROTOCOL`)."""
    from latent4d.motion.oflow import point_count, read_clip_surface

    sl = None
    if shape_points:
        n = point_count(index.files(k, "surface", 0))
        idx = np.random.default_rng([seed, k, 5]).choice(n, min(n, shape_points), replace=False)
        sl = solver.pipe.encode_shape(read_clip_surface(index, k, idx, model_tf[k], frames=[0])[0])
    t0 = time.perf_counter()
    rec = solver.reconstruct(obs, shape_latents=sl)[0]
    seconds = time.perf_counter() - t0
    pcl, pts, occ, tf = read_official_targets(index, k, o.n_iou or None, seed)
    v = (model_tf[k, :3] + model_tf[k, 3] * rec.vertices - tf[:3]) / tf[3]
    m = official_clip_metrics(v, rec.faces, pcl, pts, occ, o.n_chamfer, seed)
    flat = pcl.reshape(-1, 3)
    side = float((flat.max(0) - flat.min(0)).max())
    m["latent4d_units"] = {
        "chamfer_l1_mean": m["chamfer_l1_mean"] / side,
        "corr_l2_mean": m["corr_l2_mean"] / side,
        "corr_l2_moving_mean": m["corr_l2_moving_mean"] / side,
        "corr_rel_mean": m["corr_l2_moving_mean"] / bbox_diagonal(pcl),
    }
    m.update(seconds=seconds, sequence=index.names[index.clips[k][0]], start=index.clips[k][1])
    return m


def summarise_oflow(rows: list[dict]) -> dict:
    """Means over clips of the ``*_mean`` metrics (official units and ``latent4d_units``)."""
    keys = ("iou_mean", "chamfer_l1_mean", "corr_l2_mean", "corr_l2_moving_mean")
    out = {k[: -len("_mean")]: _mean(r[k] for r in rows) for k in keys}
    out["latent4d_units"] = {
        k: _mean(r["latent4d_units"][k] for r in rows) for k in rows[0]["latent4d_units"]
    }
    out["clips"] = len(rows)
    return out
