"""Observations of a deforming surface: sparse corresponding points, partial depth clouds, noise.

All clouds are in the sequence's normalised frame ([-0.5, 0.5]^3, unit = largest bounding-box side).

* **sparse**: ``n`` (300 by default) surface points per frame that correspond across frames (the
  same face / barycentric sample in every frame), with Gaussian noise;
* **partial**: the surface seen from one pinhole depth camera (fixed, or orbiting during the clip),
  back-projected, resampled to ``n`` points per frame, no correspondence, with Gaussian noise.

:func:`resample_frames` turns frames with different point counts into one (T, n, 3) array (random
subset without replacement when there are enough points, with replacement otherwise); empty frames,
NaNs and sequences shorter than 2 frames raise :class:`~latent4d.errors.InputError`.
"""

from __future__ import annotations

import math

import numpy as np

from latent4d.errors import InputError

OBSERVATIONS = ("sparse", "partial")


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_sequence(frames, name: str = "sequence", min_frames: int = 2) -> list[np.ndarray]:
    """Validate a list of (N_t, 3) frames (or a (T, N, 3) array); returns float32 arrays."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 3 or frames.shape[-1] != 3:
            raise InputError(f"{name}: expected a (T, N, 3) array, got shape {frames.shape}")
        frames = list(frames)
    frames = list(frames)
    if len(frames) == 0:
        raise InputError(f"{name}: the sequence is empty (no frames)")
    if len(frames) < min_frames:
        raise InputError(f"{name}: a sequence needs at least {min_frames} frames, got {len(frames)}")
    out = []
    for t, f in enumerate(frames):
        a = np.asarray(f, dtype=np.float32)
        if a.ndim != 2 or a.shape[-1] != 3:
            raise InputError(f"{name}: frame {t} must be an (N, 3) point array, got shape {a.shape}")
        if len(a) == 0:
            raise InputError(f"{name}: frame {t} has no points")
        if not np.isfinite(a).all():
            raise InputError(f"{name}: frame {t} contains NaN or infinite coordinates")
        out.append(a)
    return out


def resample_frames(frames, n: int, rng=None, name: str = "sequence") -> np.ndarray:
    """(T, n, 3) float32: each frame resampled to ``n`` points (see module docstring)."""
    frames = check_sequence(frames, name, min_frames=1)
    rng = _rng(rng)
    out = np.empty((len(frames), n, 3), np.float32)
    for t, f in enumerate(frames):
        idx = rng.choice(len(f), n, replace=len(f) < n) if len(f) != n else np.arange(n)
        out[t] = f[idx]
    return out


def add_noise(points: np.ndarray, std: float, rng=None) -> np.ndarray:
    """Isotropic Gaussian noise of standard deviation ``std`` (normalised units)."""
    if std <= 0:
        return points.astype(np.float32)
    return (points + _rng(rng).normal(scale=std, size=points.shape)).astype(np.float32)


def sparse_observation(surface: np.ndarray, n: int = 300, noise: float = 0.0, rng=None) -> np.ndarray:
    """Corresponding samples: the same ``n`` random indices of ``surface`` (T, N, 3) in every frame."""
    rng = _rng(rng)
    T, N, _ = surface.shape
    if N < n:
        raise InputError(f"sparse_observation: asked for {n} points per frame from {N} surface samples")
    idx = rng.choice(N, n, replace=False)
    return add_noise(surface[:, idx], noise, rng)


def camera_path(num_frames: int, mode: str = "fixed", rng=None, distance: float = 1.6) -> np.ndarray:
    """(T, 3) camera centres looking at the origin: ``fixed`` (one random viewpoint) or ``moving``
    (orbiting by up to 90 degrees of azimuth over the clip)."""
    rng = _rng(rng)
    az0 = rng.uniform(0, 2 * math.pi)
    el = rng.uniform(math.radians(5), math.radians(35))
    if mode == "fixed":
        az = np.full(num_frames, az0)
    elif mode == "moving":
        sweep = rng.uniform(math.radians(45), math.radians(90)) * rng.choice([-1, 1])
        az = az0 + sweep * np.linspace(0, 1, num_frames)
    else:
        raise InputError(f"camera mode must be 'fixed' or 'moving', got {mode!r}")
    return np.stack(
        [
            distance * np.cos(el) * np.sin(az),
            np.full(num_frames, distance * np.sin(el)),
            distance * np.cos(el) * np.cos(az),
        ],
        1,
    )


def depth_points(
    vertices: np.ndarray, faces: np.ndarray, eye: np.ndarray, resolution: int = 64, fov_deg: float = 45.0
) -> np.ndarray:
    """Back-projected depth of one mesh seen from ``eye`` (looking at the origin) -> (K, 3) points."""
    import trimesh

    from latent4d.geometry.rgbd import backproject_depth, look_at, render_rgbd

    f = 0.5 * resolution / math.tan(math.radians(fov_deg) / 2)
    K = np.array([[f, 0, resolution / 2], [0, f, resolution / 2], [0, 0, 1.0]])
    w2c = look_at(eye, np.zeros(3))
    frame = render_rgbd([trimesh.Trimesh(vertices, faces, process=False)], K, w2c, resolution, resolution)
    pts, _ = backproject_depth(frame.depth, K, cam_to_world=np.linalg.inv(w2c))
    return pts


def partial_observation(
    vertices: np.ndarray,
    faces: np.ndarray,
    n: int = 512,
    camera: str = "fixed",
    noise: float = 0.0,
    rng=None,
    resolution: int = 64,
) -> np.ndarray:
    """Depth-camera clouds of a mesh sequence ``vertices`` (T, V, 3) -> (T, n, 3), no correspondence."""
    rng = _rng(rng)
    eyes = camera_path(len(vertices), camera, rng)
    frames = [depth_points(v, faces, e, resolution) for v, e in zip(vertices, eyes)]
    for t, f in enumerate(frames):
        if len(f) == 0:
            raise InputError(f"partial_observation: the camera sees nothing in frame {t}")
    return add_noise(resample_frames(frames, n, rng), noise, rng)
