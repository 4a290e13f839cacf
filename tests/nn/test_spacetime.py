import pytest
import torch

from latent4d.nn.attention import attention_flops
from latent4d.nn.spacetime import (
    AXES,
    InterleavedSelfAttention,
    JointSelfAttention,
    ReshapeSpaceTimeAttention,
    SpaceTimeBlock,
    SpaceTimeSelfAttention,
    spacetime_attention_flops,
    spacetime_block_flops,
)


def _copy(fused: SpaceTimeSelfAttention, ref: ReshapeSpaceTimeAttention):
    inner = fused.heads * fused.dim_head
    with torch.no_grad():
        ref.attn.to_q.weight.copy_(fused.qkv.weight[:inner])
        ref.attn.to_kv.weight.copy_(fused.qkv.weight[inner:])
        ref.attn.to_out.load_state_dict(fused.to_out.state_dict())


@pytest.mark.parametrize("axis", AXES)
def test_fused_matches_reshape_reference(axis):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 32)
    f, r = SpaceTimeSelfAttention(32, 4, 8, axis), ReshapeSpaceTimeAttention(32, 4, 8, axis)
    _copy(f, r)
    torch.testing.assert_close(f(x), r(x), atol=1e-5, rtol=1e-5)
    if axis != "space":
        mask = torch.ones(2, 5, dtype=torch.bool)
        mask[1, 3:] = False
        torch.testing.assert_close(f(x, mask), r(x, mask), atol=1e-5, rtol=1e-5)


def test_axes_mix_the_right_tokens():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 16, requires_grad=True)
    for axis, expect in (("space", lambda t, m: t == 2), ("time", lambda t, m: m == 3), ("joint", lambda t, m: True)):
        attn = SpaceTimeSelfAttention(16, 2, 8, axis)
        y = attn(x)
        (g,) = torch.autograd.grad(y[0, 2, 3].sum(), x)
        touched = g[0].abs().sum(-1) > 0  # (T, M) tokens that influence output token (t=2, m=3)
        for t in range(4):
            for m in range(6):
                assert bool(touched[t, m]) == expect(t, m), (axis, t, m)


def test_blocks_start_as_identity_and_keep_frames_apart_without_temporal_layer():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 16)
    cond = torch.randn(2, 8)
    ctx = torch.randn(2, 4, 12)
    obs = torch.randn(2, 3, 6, 10)
    for bt in ("interleaved", "joint", "spatial"):
        blk = SpaceTimeBlock(16, 2, 8, cond_dim=8, context_dim=12, frame_context_dim=10, block_type=bt)
        torch.testing.assert_close(blk(x, cond, ctx, obs), x)  # AdaLN-Zero gates start at 0
    blk = SpaceTimeBlock(16, 2, 8, cond_dim=8, context_dim=12, frame_context_dim=10, block_type="spatial")
    for p in blk.parameters():
        p.data.normal_(0, 0.2)
    x2 = x.clone()
    x2[:, 2] += 1.0  # change frame 2 only
    d = (blk(x, cond, ctx, obs) - blk(x2, cond, ctx, obs)).abs().sum((0, 2, 3))
    assert d[0] < 1e-5 and d[1] < 1e-5 and d[2] > 1e-2
    with pytest.raises(ValueError, match="block_type"):
        SpaceTimeBlock(16, 2, 8, 8, block_type="axial")


def test_pair_modules_and_flop_counts():
    x = torch.randn(1, 3, 4, 16)
    assert InterleavedSelfAttention(16, 2, 8)(x).shape == x.shape
    assert JointSelfAttention(16, 2, 8, fused=False)(x).shape == x.shape
    f = spacetime_attention_flops(17, 512, 512, 8, 64)
    assert f["joint"] == attention_flops(17 * 512, 17 * 512, 512, 8, 64)
    assert f["ratio"] == pytest.approx(3.77, abs=0.01)  # the "about 3.8x at T = 17"
    ratios = [spacetime_attention_flops(T, 512, 512, 8, 64)["ratio"] for T in (5, 9, 17, 33)]
    assert ratios == sorted(ratios)
    assert spacetime_block_flops("joint", 17, 512, 512, 8, 64) > spacetime_block_flops("interleaved", 17, 512, 512, 8, 64)
