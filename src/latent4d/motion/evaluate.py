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
