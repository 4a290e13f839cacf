import numpy as np
import pytest

from latent4d.errors import InputError
from latent4d.geometry.sdf import MeshSDF
from latent4d.motion.data import split_pairs
from latent4d.motion.synthetic import (
    KINDS,
    MOTIONS,
    make_sequence,
    procedural_sequence,
    sample_identity,
    sample_motion,
)


def test_identity_and_motion_are_deterministic_and_independent():
    a, b = sample_identity(3), sample_identity(3)
    assert a.kind == b.kind and a.params == b.params
    assert sample_motion(3) == sample_motion(3)
    kinds = {sample_identity(s).kind for s in range(40)}
    motions = {sample_motion(s).kind for s in range(40)}
    assert kinds == set(KINDS) and motions == set(MOTIONS)
    with pytest.raises(InputError, match="identity kinds"):
        sample_identity(0, kinds=("dragon",))


@pytest.mark.parametrize("kind", ["tube", "blob", "humanoid"])
def test_sequence_fixed_topology_normalised_and_moving(kind):
    seq = procedural_sequence(5, 11, num_frames=5, kinds=(kind,))
    assert seq.vertices.shape[0] == 5 and seq.faces.max() < seq.vertices.shape[1]
    lo, hi = seq.vertices.reshape(-1, 3).min(0), seq.vertices.reshape(-1, 3).max(0)
    assert np.all(lo >= -0.5 - 1e-5) and np.all(hi <= 0.5 + 1e-5)
    assert np.isclose((hi - lo).max(), 1.0, atol=1e-5)  # largest side of the clip's box is 1
    assert np.abs(seq.vertices[-1] - seq.vertices[0]).max() > 0.01  # it deforms
    assert seq.mesh(0).is_watertight and seq.mesh(4).is_watertight


def test_articulated_motion_moves_limbs_more_than_torso():
    from latent4d.motion.synthetic import Motion, articulated_rig

    ident = sample_identity(2, kinds=("humanoid",))
    walk = Motion("walk", 1.0, 1.0, 0.0, 1, 0.0, 0)
    seq = make_sequence(ident, walk, 9)
    rig = articulated_rig(ident)
    disp = np.linalg.norm(seq.vertices - seq.vertices[0], axis=-1).max(0)  # (V,)
    thigh = rig.weights[:, rig.index["shin_l"]] > 0.9
    head = rig.weights[:, rig.index["head"]] > 0.9
    assert disp[thigh].mean() > 3 * disp[head].mean()


def test_too_short_sequence_rejected():
    with pytest.raises(InputError, match="at least 2 frames"):
        procedural_sequence(0, 0, num_frames=1)


def test_held_out_splits_are_disjoint():
    train = split_pairs("train", 64)
    val = split_pairs("val", 16)
    tm = split_pairs("test_motion", 8)
    ti = split_pairs("test_identity", 8)
    assert not set(train) & set(val)
    train_ids, train_mot = {i for i, _ in train}, {m for _, m in train}
    assert {i for i, _ in tm} <= train_ids and not {m for _, m in tm} & train_mot  # unseen motion
    assert not {i for i, _ in ti} & train_ids and {m for _, m in ti} <= {
        m for m in range(32)
    }  # unseen identity


def test_occupancy_of_deformed_frames_is_consistent():
    seq = procedural_sequence(1, 4, num_frames=3, kinds=("tube",))
    pts = np.random.default_rng(0).uniform(-0.55, 0.55, (4000, 3))
    occ = MeshSDF(seq.mesh(2)).occupancy(pts)
    sdf = MeshSDF(seq.mesh(2)).unsigned_distance(pts)
    far = sdf > 0.02
    # a tube's volume is a sizeable fraction of the box and the labels are stable away from the surface
    assert 0.005 < occ.mean() < 0.4
    occ2 = MeshSDF(seq.mesh(2), nsamples=9).occupancy(pts)
    assert (occ[far] == occ2[far]).mean() > 0.999
