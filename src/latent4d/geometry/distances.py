"""Nearest neighbours and Chamfer distance for batched (optionally padded) point clouds.

k-NN uses Open3D's ``open3d.ml.torch.ops.knn_search`` (a compiled KD-tree, fast on CPU) when it is
available and the tensors live on the CPU, and a chunked ``torch.cdist`` otherwise (GPU, or no
Open3D). Indices are found without gradients; distances are then recomputed from the gathered
points, so Chamfer losses are differentiable with respect to both clouds.
"""

from __future__ import annotations

import functools

import torch

from latent4d.errors import InputError

_CHUNK_BYTES = 256 * 2**20  # memory per cdist chunk in the torch fallback


@functools.lru_cache(maxsize=1)
def _o3d_ops():
    try:
        import open3d.ml.torch as ml3d  # noqa: F401

        return ml3d.ops
    except Exception:  # pragma: no cover - depends on the install
        return None


def _as_batched(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if x.dim() == 2:
        return x[None], True
    if x.dim() != 3:
        raise InputError(f"{name}: expected (N, D) or (B, N, D), got shape {tuple(x.shape)}")
    return x, False


def _lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
    return lengths.to(device=x.device, dtype=torch.long)


def _knn_torch(q: torch.Tensor, p: torch.Tensor, k: int, ql: torch.Tensor, pl: torch.Tensor):
    B, Q, _ = q.shape
    N = p.shape[1]
    d_out = torch.empty(B, Q, k, dtype=q.dtype, device=q.device)
    i_out = torch.empty(B, Q, k, dtype=torch.long, device=q.device)
    chunk = max(1, int(_CHUNK_BYTES // max(1, 4 * N * B)))
    mask = torch.arange(N, device=p.device)[None, :] >= pl[:, None]  # (B, N) padded
    for s in range(0, Q, chunk):
        d = torch.cdist(q[:, s:s + chunk], p).square_()
        d.masked_fill_(mask[:, None, :], float("inf"))
        vals, idx = d.topk(k, dim=-1, largest=False)
        d_out[:, s:s + chunk] = vals
        i_out[:, s:s + chunk] = idx
    return d_out, i_out


def _knn_open3d(ops, q: torch.Tensor, p: torch.Tensor, k: int, ql: torch.Tensor, pl: torch.Tensor):
    B, Q, D = q.shape
    qm = torch.arange(Q)[None, :] < ql[:, None]
    pm = torch.arange(p.shape[1])[None, :] < pl[:, None]
    qf = q[qm].float().contiguous()
    pf = p[pm].float().contiguous()
    q_splits = torch.cat([torch.zeros(1, dtype=torch.long), ql.cumsum(0)])
    p_splits = torch.cat([torch.zeros(1, dtype=torch.long), pl.cumsum(0)])
    res = ops.knn_search(pf, qf, k, p_splits, q_splits, return_distances=True)
    idx_flat = res.neighbors_index.long().reshape(-1, k)
    dist_flat = res.neighbors_distance.reshape(-1, k).to(q.dtype)
    # open3d returns global indices into the concatenated points: make them per-batch.
    batch_of_q = torch.repeat_interleave(torch.arange(B), ql)
    idx_flat = idx_flat - p_splits[batch_of_q][:, None]
    d_out = torch.full((B, Q, k), float("inf"), dtype=q.dtype)
    i_out = torch.zeros((B, Q, k), dtype=torch.long)
    d_out[qm] = dist_flat
    i_out[qm] = idx_flat
    return d_out, i_out


def knn(query: torch.Tensor, points: torch.Tensor, k: int = 1,
        query_lengths: torch.Tensor | None = None, points_lengths: torch.Tensor | None = None,
        backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest neighbours of each query point among ``points``.

    Args:
        query: (B, Q, D) or (Q, D).
        points: (B, N, D) or (N, D).
        k: neighbours per query; must not exceed the smallest valid point count.
        query_lengths / points_lengths: (B,) valid counts for padded batches.
        backend: ``"auto"`` | ``"open3d"`` | ``"torch"``.

    Returns:
        ``(sq_dist, idx)``, each (B, Q, k) (or (Q, k) for unbatched input), sorted ascending;
        squared Euclidean distances, no gradient (use :func:`gather_points` to differentiate).
        Padded query rows get ``inf`` distance and index 0.
    """
    q, unb = _as_batched(query, "query")
    p, _ = _as_batched(points, "points")
    if p.shape[0] != q.shape[0]:
        raise InputError(f"knn: batch sizes differ (query {q.shape[0]}, points {p.shape[0]})")
    if q.shape[-1] != p.shape[-1]:
        raise InputError(f"knn: dimensions differ (query {q.shape[-1]}, points {p.shape[-1]})")
    ql, pl = _lengths(q, query_lengths), _lengths(p, points_lengths)
    if int(pl.min()) < k:
        raise InputError(f"knn: k={k} but a point cloud has only {int(pl.min())} point(s)")
    with torch.no_grad():
        ops = _o3d_ops()
        use_o3d = backend == "open3d" or (backend == "auto" and ops is not None and q.device.type == "cpu"
                                           and q.shape[-1] == 3)
        if use_o3d:
            if ops is None:
                raise RuntimeError("knn backend 'open3d' requested but open3d.ml.torch is unavailable")
            d, i = _knn_open3d(ops, q.detach().cpu(), p.detach().cpu(), k, ql.cpu(), pl.cpu())
        else:
            d, i = _knn_torch(q.detach(), p.detach(), k, ql, pl)
    if unb:
        return d[0], i[0]
    return d, i


def gather_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """points (B, N, D), idx (B, Q, k) -> (B, Q, k, D) (differentiable w.r.t. points)."""
    B, Q, k = idx.shape
    flat = idx.reshape(B, Q * k, 1).expand(-1, -1, points.shape[-1])
    return points.gather(1, flat).reshape(B, Q, k, points.shape[-1])


def nearest_distance(query: torch.Tensor, points: torch.Tensor, query_lengths=None, points_lengths=None,
                     squared: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable distance from each query point to its nearest point: ((B, Q), idx (B, Q))."""
    q, unb = _as_batched(query, "query")
    p, _ = _as_batched(points, "points")
    _, idx = knn(q, p, 1, query_lengths, points_lengths)
    nn_pts = gather_points(p, idx)[:, :, 0]
    d2 = (q - nn_pts).square().sum(-1)
    d = d2 if squared else (d2 + 1e-18).sqrt()
    if query_lengths is not None:
        valid = torch.arange(q.shape[1], device=q.device)[None, :] < query_lengths.to(q.device)[:, None]
        d = d * valid
    if unb:
        return d[0], idx[0, :, 0]
    return d, idx[..., 0]


def chamfer_distance(x: torch.Tensor, y: torch.Tensor, x_lengths: torch.Tensor | None = None,
                     y_lengths: torch.Tensor | None = None, squared: bool = True,
                     reduction: str = "mean", return_parts: bool = False):
    """Symmetric Chamfer distance between batched clouds x (B, N, 3) and y (B, M, 3).

    ``squared=True`` averages squared distances (the usual training loss); ``squared=False``
    averages Euclidean distances (Chamfer-L1 in ONet's sense is ``0.5 * (acc + comp)`` of these).
    Per cloud: ``mean_x d(x, y) + mean_y d(y, x)``; ``reduction`` over the batch: mean|sum|none.
    With ``return_parts`` also returns the per-point distances ``(d_xy (B, N), d_yx (B, M))``
    (padded entries are 0).
    """
    xb, unb = _as_batched(x, "x")
    yb, _ = _as_batched(y, "y")
    xl, yl = _lengths(xb, x_lengths), _lengths(yb, y_lengths)
    if int(xl.min()) < 1 or int(yl.min()) < 1:
        raise InputError("chamfer_distance: empty point cloud")
    d_xy, _ = nearest_distance(xb, yb, xl, yl, squared=squared)
    d_yx, _ = nearest_distance(yb, xb, yl, xl, squared=squared)
    per = d_xy.sum(1) / xl + d_yx.sum(1) / yl
    if reduction == "mean":
        out = per.mean()
    elif reduction == "sum":
        out = per.sum()
    elif reduction == "none":
        out = per[0] if unb else per
    else:
        raise ValueError(f"reduction must be mean|sum|none, got {reduction!r}")
    if return_parts:
        if unb:
            return out, (d_xy[0], d_yx[0])
        return out, (d_xy, d_yx)
    return out
