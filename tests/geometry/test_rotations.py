import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation as SciR

from latent4d.geometry import rotations as rot


@pytest.fixture
def R():
    g = torch.Generator().manual_seed(0)
    return rot.random_rotation(64, generator=g, dtype=torch.float64)


def test_random_rotations_are_proper(R):
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    assert torch.allclose(R.transpose(-1, -2) @ R, eye, atol=1e-10)
    assert torch.allclose(torch.det(R), torch.ones(len(R), dtype=R.dtype), atol=1e-10)


def test_6d_round_trip_and_layout(R):
    d6 = rot.matrix_to_6d(R)
    assert d6.shape == (64, 6)
    assert torch.allclose(d6[:, :3], R[:, :, 0]) and torch.allclose(d6[:, 3:], R[:, :, 1])
    assert torch.allclose(rot.sixd_to_matrix(d6), R, atol=1e-10)


def test_6d_of_arbitrary_vector_is_a_rotation():
    d6 = torch.randn(10, 6, dtype=torch.float64)
    M = rot.sixd_to_matrix(d6)
    assert torch.allclose(torch.det(M), torch.ones(10, dtype=M.dtype), atol=1e-10)


def test_quaternion_xyzw_matches_scipy(R):
    q = rot.matrix_to_quaternion(R).numpy()
    ref = SciR.from_matrix(R.numpy()).as_quat()  # scipy is xyzw too
    # q and -q are the same rotation
    same = np.minimum(np.abs(q - ref).max(1), np.abs(q + ref).max(1))
    assert same.max() < 1e-8
    assert torch.allclose(rot.quaternion_to_matrix(torch.from_numpy(ref)), R, atol=1e-10)


def test_axis_angle_matches_scipy(R):
    rv = rot.matrix_to_axis_angle(R).numpy()
    assert np.allclose(SciR.from_rotvec(rv).as_matrix(), R.numpy(), atol=1e-8)
    v = torch.tensor([[0.0, 0.0, np.pi / 2]], dtype=torch.float64)
    M = rot.axis_angle_to_matrix(v)[0]
    assert torch.allclose(M @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                          torch.tensor([0.0, 1.0, 0], dtype=torch.float64), atol=1e-12)  # column-vector convention


def test_geodesic_and_symmetric_error():
    R1 = rot.rotation_about_axis("y", 0.0)
    R2 = rot.rotation_about_axis("y", 1.0)
    R3 = rot.rotation_about_axis("x", 0.3)
    assert abs(float(rot.geodesic_angle(R1, R2)) - 1.0) < 1e-5
    assert float(rot.symmetric_rotation_error(R1, R2)) < 1e-5  # about the up axis: ignored
    assert abs(float(rot.symmetric_rotation_error(R1, R3)) - 0.3) < 1e-4


def test_project_to_rotation_recovers_noisy_matrix(R):
    noisy = R + 0.01 * torch.randn_like(R)
    P = rot.project_to_rotation(noisy)
    assert torch.allclose(torch.det(P), torch.ones(len(P), dtype=P.dtype), atol=1e-8)
    assert (rot.geodesic_angle(P, R) < 0.05).all()
