import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from latent4d.errors import InputError
from latent4d.geometry import chamfer_distance, knn, nearest_distance


@pytest.mark.parametrize("backend", ["open3d", "torch"])
def test_knn_matches_ckdtree(backend):
    g = torch.Generator().manual_seed(1)
    p = torch.rand(2, 500, 3, generator=g)
    q = torch.rand(2, 80, 3, generator=g)
    d, i = knn(q, p, k=4, backend=backend)
    for b in range(2):
        ref_d, ref_i = cKDTree(p[b].numpy()).query(q[b].numpy(), k=4)
        assert np.allclose(d[b].numpy(), ref_d**2, atol=1e-5)
        assert (i[b].numpy() == ref_i).mean() > 0.99  # ties aside


def test_knn_padded_batches_ignore_padding():
    p = torch.zeros(2, 10, 3)
    p[0, :4] = torch.rand(4, 3)
    p[0, 4:] = 100.0  # padding far away must not matter...
    p[1] = torch.rand(10, 3)
    q = torch.rand(2, 5, 3)
    lengths = torch.tensor([4, 10])
    for backend in ("open3d", "torch"):
        _, i = knn(q, p, 1, points_lengths=lengths, backend=backend)
        assert (i[0] < 4).all()
    p[0, 4:] = q[0, 0]  # ...even when it is closer than the real points
    for backend in ("open3d", "torch"):
        _, i = knn(q, p, 1, points_lengths=lengths, backend=backend)
        assert (i[0] < 4).all()


def test_chamfer_matches_reference_and_is_differentiable():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 300, 3, generator=g, requires_grad=True)
    y = torch.rand(3, 200, 3, generator=g)
    c, (dxy, dyx) = chamfer_distance(x, y, return_parts=True, reduction="none")
    for b in range(3):
        a = cKDTree(y[b].numpy()).query(x[b].detach().numpy())[0]
        bb = cKDTree(x[b].detach().numpy()).query(y[b].numpy())[0]
        assert abs(float(c[b].detach()) - ((a**2).mean() + (bb**2).mean())) < 1e-5
    c.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_chamfer_euclidean_and_identity():
    x = torch.rand(100, 3)
    assert float(chamfer_distance(x, x)) < 1e-10
    y = x + torch.tensor([0.1, 0.0, 0.0])
    # every point's nearest neighbour in a shifted copy is at most 0.1 away
    assert float(chamfer_distance(x, y, squared=False)) <= 0.2 + 1e-6


def test_chamfer_large_clouds_fit_in_memory():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(100_000, 3, generator=g)
    y = torch.rand(100_000, 3, generator=g)
    d = chamfer_distance(x, y, squared=False)
    # mean NN distance of 100k uniform points in the unit cube is ~0.55 * n^(-1/3) ~ 0.012
    assert 0.01 < float(d) < 0.05


def test_nearest_distance_unbatched():
    p = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    q = torch.tensor([[0.9, 0, 0]])
    d, i = nearest_distance(q, p)
    assert int(i[0]) == 1 and abs(float(d[0]) - 0.1) < 1e-6


def test_bad_inputs():
    with pytest.raises(InputError, match="k=5"):
        knn(torch.rand(3, 3), torch.rand(4, 3), k=5)
    with pytest.raises(InputError, match="empty"):
        chamfer_distance(torch.rand(1, 5, 3), torch.rand(1, 5, 3), y_lengths=torch.tensor([0]))
    with pytest.raises(InputError, match="shape"):
        knn(torch.rand(3), torch.rand(4, 3))
