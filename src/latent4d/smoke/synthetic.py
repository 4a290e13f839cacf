"""Procedural sphere-and-box scenes (watertight meshes in [-1, 1]^3)."""

from __future__ import annotations

import numpy as np
import trimesh


def sphere_and_box(seed: int = 0) -> trimesh.Trimesh:
    """A sphere and a rotated box side by side (two disjoint watertight parts), seeded jitter."""
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.42 + 0.05 * rng.uniform(-1, 1))
    sphere.apply_translation([-0.4, 0.05 * rng.uniform(-1, 1), 0.0])
    ext = 0.5 + 0.1 * rng.uniform(-1, 1, size=3)
    box = trimesh.creation.box(extents=ext)
    angle = 0.4 + 0.2 * rng.uniform(-1, 1)
    box.apply_transform(trimesh.transformations.rotation_matrix(angle, [0.3, 1.0, 0.2]))
    box.apply_translation([0.45, 0.0, 0.05 * rng.uniform(-1, 1)])
    mesh = trimesh.util.concatenate([sphere, box])
    return mesh
