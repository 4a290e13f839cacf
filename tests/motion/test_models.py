import pytest
import torch

from latent4d.errors import InputError
from latent4d.motion.deform import DeformVecSetAE
from latent4d.motion.denoiser import DeformDenoiser, ShapeDenoiser
from latent4d.motion.vecset import ShapeVecSetAE


def _cloud(B=2, N=96):
    return torch.rand(B, N, 3) - 0.5


def test_shape_ae_shapes_kl_and_errors(tmp_path):
    ae = ShapeVecSetAE(
        num_latents=16, latent_channels=4, width=32, heads=2, dim_head=16, depth=1, decoder_heads=2
    )
    out = ae(_cloud(), torch.rand(2, 50, 3) - 0.5)
    assert out["logits"].shape == (2, 50) and out["z"].shape == (2, 16, 4) and out["kl"].shape == (2,)
    assert (out["kl"] >= 0).all()
    post = ae.encode(_cloud(), sample=False)
    assert torch.equal(post.z, post.mean)
    with pytest.raises(InputError, match="fewer than the 16 latent queries"):
        ae.encode(_cloud(N=10))
    bad = _cloud()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        ae.encode(bad)
    ae.save_pretrained(tmp_path / "ae")
    ae2 = ShapeVecSetAE.from_pretrained(tmp_path / "ae")
    x, q = _cloud(), torch.rand(2, 20, 3) - 0.5
    torch.testing.assert_close(
        ae.eval()(x, q, sample=False)["logits"], ae2.eval()(x, q, sample=False)["logits"]
    )


def test_deform_ae_starts_at_identity_and_checks_pairs():
    ae = DeformVecSetAE(
        num_latents=16, latent_channels=8, width=32, heads=2, dim_head=16, depth=1, decoder_heads=2
    )
    src = _cloud()
    tgt = src + 0.05
    q = torch.rand(2, 30, 3) - 0.5
    out = ae(src, tgt, q)
    torch.testing.assert_close(out["positions"], q)  # zero-initialised displacement head
    loss = (out["positions"] - (q + 0.05)).square().mean()
    loss.backward()
    assert ae.to_disp.weight.grad.abs().sum() > 0
    with pytest.raises(InputError, match="same shape"):
        ae.encode(src, tgt[:, :50])


def _deform_denoiser(**kw) -> DeformDenoiser:
    """A 5-frame deformation denoiser of 16 x 8 latents, width 32, one block."""
    size = dict(latent_channels=8, num_latents=16, shape_channels=4, num_frames=5, width=32, depth=1, heads=2)
    return DeformDenoiser(**size, dim_head=16, obs_tokens=8, **kw)


def test_denoisers_shapes_and_modes():
    sd = ShapeDenoiser(
        latent_channels=4, num_latents=16, width=32, depth=1, heads=2, dim_head=16, obs_tokens=8
    )
    x = torch.randn(3, 16, 4)
    y = sd(x, torch.zeros(3), torch.rand(3, 40, 3) - 0.5, corresponding=torch.tensor([True, False, True]))
    assert y.shape == x.shape
    for bt in ("interleaved", "joint", "spatial"):
        dd = _deform_denoiser(block_type=bt)
        xd = torch.randn(2, 4, 16, 8)
        out = dd(xd, torch.zeros(2), torch.randn(2, 16, 4), torch.rand(2, 5, 30, 3) - 0.5)
        assert out.shape == xd.shape
    with pytest.raises(InputError, match="mismatched frame counts"):
        dd(xd, torch.zeros(2), torch.randn(2, 16, 4), torch.rand(2, 4, 30, 3))
    with pytest.raises(InputError, match="exceed the model's window"):
        dd(torch.randn(2, 6, 16, 8), torch.zeros(2), torch.randn(2, 16, 4), torch.rand(2, 7, 30, 3))
    with pytest.raises(InputError, match="block_type"):
        DeformDenoiser(block_type="diagonal")


def test_corresponding_mode_changes_the_output():
    torch.manual_seed(0)
    dd = _deform_denoiser()
    for p in dd.parameters():  # leave the zero-initialised output layers non-zero for this check
        if p.dim() >= 1 and p.abs().sum() == 0:
            p.data.normal_(0, 0.1)
    args = (torch.randn(1, 4, 16, 8), torch.zeros(1), torch.randn(1, 16, 4), torch.rand(1, 5, 30, 3) - 0.5)
    a = dd(*args, corresponding=torch.tensor([True]))
    b = dd(*args, corresponding=torch.tensor([False]))
    assert (a - b).abs().max() > 1e-4


def test_warmup_cosine_follows_time_budget():
    """A time-limited run anneals by wall clock when that is ahead of the step count."""
    from latent4d.motion.module import warmup_cosine

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    clock = {"p": 0.0}
    sched = warmup_cosine(opt, 1000, 0, min_ratio=0.1, progress=lambda: clock["p"])
    f = sched.lr_lambdas[0]
    assert f(0) == pytest.approx(1.0)
    assert f(500) == pytest.approx(0.55)  # half the steps, no time spent: step-based
    clock["p"] = 1.0
    assert f(10) == pytest.approx(0.1)  # time budget spent: end of the decay
    clock["p"] = 0.5
    assert f(10) == pytest.approx(0.55) and f(900) < 0.55  # whichever is further along
