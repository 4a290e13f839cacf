import math

import torch

from latent4d.nn import (
    AdaLayerNorm,
    Attention,
    DropPath,
    FeedForward,
    FourierPointEmbed,
    TimestepEmbedder,
    attention_flops,
    sincos_embedding_grid,
)


def test_attention_matches_manual_softmax():
    torch.manual_seed(0)
    att = Attention(16, heads=2, dim_head=8, context_dim=12).eval()
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    out = att(x, ctx)
    q = att.to_q(x).view(2, 5, 2, 8).transpose(1, 2)
    k, v = (t.view(2, 7, 2, 8).transpose(1, 2) for t in att.to_kv(ctx).chunk(2, -1))
    w = (q @ k.transpose(-1, -2) / math.sqrt(8)).softmax(-1)
    ref = att.to_out((w @ v).transpose(1, 2).reshape(2, 5, 16))
    assert torch.allclose(out, ref, atol=1e-5)


def test_attention_mask_ignores_padding():
    torch.manual_seed(0)
    att = Attention(8, heads=2, dim_head=4).eval()
    x = torch.randn(1, 6, 8)
    ctx = torch.randn(1, 4, 8)
    mask = torch.tensor([[True, True, False, False]])
    a = att(x, ctx, mask=mask)
    ctx2 = ctx.clone()
    ctx2[:, 2:] = 1e3  # garbage in padded slots
    assert torch.allclose(a, att(x, ctx2, mask=mask), atol=1e-5)
    assert torch.allclose(a, att(x, ctx[:, :2]), atol=1e-5)


def test_attention_flops_counts_scores():
    f1 = attention_flops(100, 100, 64, 4, 16)
    f2 = attention_flops(200, 200, 64, 4, 16)
    assert f2 > 2 * f1  # quadratic term


def test_fourier_point_embed_dims_and_frequencies():
    e = FourierPointEmbed(32, num_freqs=8)
    assert e.out_features == 51
    x = torch.tensor([[0.5, 0.0, 0.0]])
    f = e.features(x)
    assert f.shape == (1, 51)
    assert torch.allclose(f[0, 0], torch.sin(torch.tensor(math.pi * 0.5)))  # 2^0 * pi * 0.5
    assert e(torch.rand(2, 10, 3)).shape == (2, 10, 32)


def test_adaln_starts_as_identity_modulation_and_gates():
    ln = AdaLayerNorm(8, 4, gate=True)
    x = torch.randn(2, 3, 8)
    y, gate = ln(x, torch.randn(2, 4))
    assert torch.allclose(y, torch.nn.functional.layer_norm(x, (8,), eps=1e-6), atol=1e-5)
    assert gate.abs().max() == 0
    assert AdaLayerNorm(8, 4)(torch.randn(2, 3, 5, 8), torch.randn(2, 4)).shape == (2, 3, 5, 8)


def test_feedforward_droppath_timestep():
    assert FeedForward(8)(torch.randn(2, 3, 8)).shape == (2, 3, 8)
    dp = DropPath(0.5).train()
    torch.manual_seed(0)
    out = dp(torch.ones(1000, 4))
    kept = (out[:, 0] > 0).float().mean()
    assert 0.4 < kept < 0.6 and torch.allclose(out[out > 0], torch.tensor(2.0))
    assert torch.equal(DropPath(0.5).eval()(torch.ones(3)), torch.ones(3))
    te = TimestepEmbedder(16)
    e = te(torch.tensor([0.1, 0.9]))
    assert e.shape == (2, 16) and not torch.allclose(e[0], e[1])


def test_sincos_grid_positions_are_distinct():
    p = sincos_embedding_grid((4, 4), 16)
    assert p.shape == (16, 16)
    assert torch.cdist(p, p).add(torch.eye(16) * 10).min() > 0.1
    assert sincos_embedding_grid((2, 3, 4), 12).shape == (24, 12)
