import pytest
import torch

from latent4d.diffusion.edm import EDM, edm_sigma_schedule

MU, STD = 0.3, 0.6


def _optimal_net(edm: EDM):
    """The exact EDM network F for Gaussian data N(MU, STD^2) (so that D is the ideal denoiser)."""
    def net(x_in, c_noise):
        sigma = (4 * c_noise).exp().view(-1, *([1] * (x_in.dim() - 1)))
        c_skip, c_out, c_in, _ = edm.coefficients(sigma)
        x = x_in / c_in
        d = MU + (x - MU) * STD ** 2 / (STD ** 2 + sigma ** 2)
        return (d - c_skip * x) / c_out
    return net


def test_coefficients_match_karras():
    edm = EDM(sigma_data=0.5)
    s = torch.tensor([0.1, 1.0, 10.0])
    c_skip, c_out, c_in, c_noise = edm.coefficients(s)
    torch.testing.assert_close(c_skip, 0.25 / (s ** 2 + 0.25))
    torch.testing.assert_close(c_out, s * 0.5 / (s ** 2 + 0.25).sqrt())
    torch.testing.assert_close(c_in, 1 / (s ** 2 + 0.25).sqrt())
    torch.testing.assert_close(c_noise, s.log() / 4)
    # the scheduler's own preconditioning is the same
    sched = edm.scheduler("euler")
    torch.testing.assert_close(sched.precondition_noise(s), c_noise)


def test_scheduler_sigmas_are_the_edm_schedule():
    edm = EDM()
    for kind in ("euler", "dpmsolver"):
        sched = edm.scheduler(kind)
        sched.set_timesteps(18)
        torch.testing.assert_close(sched.sigmas[:-1].float(), edm_sigma_schedule(18), rtol=1e-4, atol=1e-5)
        assert sched.sigmas[-1] == 0


@pytest.mark.parametrize("sampler,steps,tol", [("dpmsolver", 40, 0.02), ("heun", 40, 0.02), ("euler", 100, 0.04)])
def test_sampling_the_ideal_denoiser_recovers_the_data(sampler, steps, tol):
    edm = EDM()
    x = edm.sample(_optimal_net(edm), (4000, 4), steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert abs(x.mean().item() - MU) < 0.03
    assert abs(x.std().item() - STD) / STD < tol


def test_loss_is_smallest_for_the_ideal_denoiser():
    edm = EDM()
    g = torch.Generator().manual_seed(0)
    x0 = MU + STD * torch.randn(2048, 4, generator=g)
    sigma = edm.sample_sigma(2048, generator=g)
    noise = torch.randn(2048, 4, generator=g)
    ideal = _optimal_net(edm)
    best = edm.loss(ideal, x0, sigma=sigma, noise=noise).mean()
    worse = edm.loss(lambda x, c: ideal(x, c) + 0.1, x0, sigma=sigma, noise=noise).mean()
    assert best < worse
    # EDM's weighting makes the loss O(1) at every noise level
    assert 0.1 < best.item() < 2.0
    assert edm.num_evaluations(18, "heun") == 35 and edm.num_evaluations(18) == 18


@pytest.mark.parametrize("sampler", ["dpmsolver", "euler", "heun"])
def test_a_guide_that_pins_the_estimate_pins_the_sample(sampler):
    """A guide replacing every denoised estimate by a constant target drives the sample to it; the
    guide sees the solver's noise levels, largest first."""
    edm = EDM()
    seen = []

    def guide(x0, sigma):
        seen.append(sigma)
        return torch.full_like(x0, 0.7)

    x = edm.sample(_optimal_net(edm), (64, 4), steps=12, sampler=sampler, generator=torch.Generator().manual_seed(0),
                   guide=guide)
    torch.testing.assert_close(x, torch.full_like(x, 0.7), atol=0.02, rtol=0)
    assert seen[0] == pytest.approx(80.0, rel=1e-3) and seen == sorted(seen, reverse=True)


def test_an_identity_guide_changes_nothing():
    edm = EDM()
    net = _optimal_net(edm)
    a = edm.sample(net, (32, 4), steps=8, generator=torch.Generator().manual_seed(1))
    b = edm.sample(net, (32, 4), steps=8, generator=torch.Generator().manual_seed(1), guide=lambda x0, s: x0)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
