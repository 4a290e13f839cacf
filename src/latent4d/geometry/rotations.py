"""Rotations, through roma.

Conventions (DESIGN.md): matrices act on column vectors (``x' = R @ x``); the 6D representation
is the first two columns of the matrix, concatenated ``[c1, c2]`` (shape ``(..., 6)``), mapped back
by Gram-Schmidt (roma's ``special_gramschmidt``); quaternions are ``xyzw`` (roma's order);
axis-angle is a rotation vector (axis * angle in radians).
"""

from __future__ import annotations

import roma
import torch


def matrix_to_6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 6) first two columns ``[c1, c2]``."""
    return R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)


def sixd_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) ``[c1, c2]`` -> (..., 3, 3) proper rotation (Gram-Schmidt; any input is valid)."""
    cols = d6.reshape(*d6.shape[:-1], 2, 3).transpose(-1, -2)  # (..., 3, 2)
    return roma.special_gramschmidt(cols)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors (radians) -> (..., 3, 3)."""
    return roma.rotvec_to_rotmat(rotvec)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3) rotation vectors with angle in [0, pi]."""
    return roma.rotmat_to_rotvec(R)


def quaternion_to_matrix(q_xyzw: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions ``xyzw`` (normalised here) -> (..., 3, 3)."""
    return roma.unitquat_to_rotmat(roma.quat_normalize(q_xyzw))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) unit quaternions ``xyzw``."""
    return roma.rotmat_to_unitquat(R)


def project_to_rotation(M: torch.Tensor) -> torch.Tensor:
    """Nearest proper rotation to an arbitrary (..., 3, 3) matrix (special Procrustes / SVD)."""
    return roma.special_procrustes(M)


def geodesic_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of ``R1^T R2``, shape (...)."""
    return roma.rotmat_geodesic_distance(R1, R2)


def random_rotation(n: int | None = None, generator: torch.Generator | None = None,
                    dtype=torch.float32) -> torch.Tensor:
    """Uniform random rotations (n, 3, 3) (or (3, 3) when n is None), reproducible with ``generator``."""
    q = torch.randn((1 if n is None else n, 4), generator=generator, dtype=dtype)
    R = quaternion_to_matrix(q)
    return R[0] if n is None else R


def rotation_about_axis(axis: str | torch.Tensor, angle: torch.Tensor | float) -> torch.Tensor:
    """Rotation about ``'x'|'y'|'z'`` or a unit axis (3,) by ``angle`` radians -> (..., 3, 3)."""
    angle = torch.as_tensor(angle, dtype=torch.float32)
    if isinstance(axis, str):
        axis = {"x": torch.tensor([1.0, 0, 0]), "y": torch.tensor([0, 1.0, 0]),
                "z": torch.tensor([0, 0, 1.0])}[axis]
    axis = torch.as_tensor(axis, dtype=torch.float32)
    return axis_angle_to_matrix(angle[..., None] * axis)


def symmetric_rotation_error(R_pred: torch.Tensor, R_gt: torch.Tensor, up_axis: int = 1) -> torch.Tensor:
    """Rotation error (radians) ignoring rotation about the ``up_axis`` (bottles, bowls, cans).

    Compares only where the up axis goes: ``acos(<R_pred e_up, R_gt e_up>)``, shape (...).
    """
    a = R_pred[..., :, up_axis]
    b = R_gt[..., :, up_axis]
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)
    return torch.arccos(cos.clamp(-1.0, 1.0))
