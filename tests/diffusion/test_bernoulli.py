"""BernoulliDiffusionScheduler: forward marginals (empirical), posterior vs brute-force enumeration, API."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler, keep_schedule
from latent4d.errors import InputError


def _one_step_matrix(beta: float) -> np.ndarray:
    """Single-bit Markov kernel M[a, b] = q(x_t = b | x_{t-1} = a): keep with prob beta, else uniform."""
    return np.array([[(1 + beta) / 2, (1 - beta) / 2], [(1 - beta) / 2, (1 + beta) / 2]])


def _chain_matrix(k: np.ndarray, a: int, b: int, n_bits: int) -> np.ndarray:
    """Kernel over all 2^n states from step a to step b (a <= b), composing every one-step kernel."""
    m = np.eye(2)
    for t in range(a + 1, b + 1):
        m = m @ _one_step_matrix(k[t] / k[t - 1])
    full = np.ones((1, 1))
    for _ in range(n_bits):
        full = np.kron(full, m)
    return full


def _states(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)  # (2^n, n), kron order


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedule_endpoints_and_monotone(schedule):
    k = keep_schedule(10, schedule)
    assert k[0] == 1.0 and k[-1] == 0.0
    assert np.all(np.diff(k) < 0)
    if schedule == "linear":
        np.testing.assert_allclose(k, 1 - np.arange(11) / 10)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_forward_marginals_empirical(schedule):
    T = 8
    sch = BernoulliDiffusionScheduler(num_train_timesteps=T, schedule=schedule)
    k = keep_schedule(T, schedule)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.zeros(2, n)
    x0[1] = 1.0
    for t in range(T + 1):
        xt = sch.add_noise(x0, torch.tensor([t, t]), generator=g)
        assert set(torch.unique(xt).tolist()) <= {0.0, 1.0}
        for row, bit in ((0, 0.0), (1, 1.0)):
            p = k[t] * bit + (1 - k[t]) / 2
            freq = xt[row].mean().item()
            tol = 5 * np.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-9
            assert abs(freq - p) <= tol, (t, bit, freq, p)


def test_forward_marginals_match_simulated_chain():
    """add_noise (closed form) agrees with simulating every one-step keep/redraw transition."""
    T = 6
    sch = BernoulliDiffusionScheduler(num_train_timesteps=T, schedule="cosine")
    k = keep_schedule(T, "cosine")
    g = torch.Generator().manual_seed(1)
    n = 100_000
    x = torch.ones(n)
    for t in range(1, T + 1):
        keep = torch.rand(n, generator=g) < k[t] / k[t - 1]
        x = torch.where(keep, x, torch.bernoulli(torch.full((n,), 0.5), generator=g))
        direct = sch.add_noise(torch.ones(n), t, generator=g)
        tol = 5 * np.sqrt(0.25 * 2 / n)
        assert abs(x.mean().item() - direct.mean().item()) < tol, t


def test_add_noise_per_sample_timesteps_and_bad_input():
    sch = BernoulliDiffusionScheduler(num_train_timesteps=4)
    x0 = torch.ones(3, 5)
    out = sch.add_noise(x0, torch.tensor([0, 0, 0]))
    assert torch.equal(out, x0)  # t = 0 is the data itself
    with pytest.raises(InputError, match="bits"):
        sch.add_noise(torch.full((2, 3), 0.3), 1)
    with pytest.raises(InputError, match=r"\[0, 4\]"):
        sch.add_noise(x0, 5)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("t,s", [(6, 5), (6, 2), (4, 1), (3, 0)])
def test_posterior_matches_brute_force(schedule, t, s):
    """p(x_s | x_t) from the scheduler equals the enumeration over all x_0, x_s of
    sum_x0 p~(x0) q(x_s | x0) q(x_t | x_s) (skipped steps composed one by one), normalised over x_s."""
    T, n = 6, 3
    sch = BernoulliDiffusionScheduler(num_train_timesteps=T, schedule=schedule)
    k = keep_schedule(T, schedule)
    S = _states(n)
    rng = np.random.default_rng(t * 10 + s)
    p0 = rng.uniform(0.02, 0.98, size=n)
    prior_x0 = np.prod(np.where(S == 1, p0, 1 - p0), axis=1)  # (2^n,)
    q0s = _chain_matrix(k, 0, s, n)  # (x0, xs)
    qst = _chain_matrix(k, s, t, n)  # (xs, xt)
    for it in range(len(S)):
        joint = (prior_x0 @ q0s) * qst[:, it]  # (xs,)
        expect = joint / joint.sum()
        post = sch.posterior_probs(torch.tensor(p0), torch.tensor(S[it]), t, s).numpy()  # per-bit P(x_s=1)
        got = np.prod(np.where(S == 1, post, 1 - post), axis=1)  # factorised joint over x_s
        np.testing.assert_allclose(got, expect, atol=1e-10)


def test_posterior_with_known_x0_is_bayes_posterior():
    """With a one-hot p0 (x_0 known) the step posterior is the exact q(x_s | x_t, x_0) of the chain."""
    T, n = 5, 2
    sch = BernoulliDiffusionScheduler(num_train_timesteps=T)
    k = keep_schedule(T, "linear")
    S = _states(n)
    t, s = 5, 2
    q0s, qst = _chain_matrix(k, 0, s, n), _chain_matrix(k, s, t, n)
    for i0, it in itertools.product(range(len(S)), range(len(S))):
        joint = q0s[i0] * qst[:, it]
        expect = joint / joint.sum()
        post = sch.posterior_probs(torch.tensor(S[i0]), torch.tensor(S[it]), t, s).numpy()
        got = np.prod(np.where(S == 1, post, 1 - post), axis=1)
        np.testing.assert_allclose(got, expect, atol=1e-12)


def test_step_samples_the_posterior_and_applies_temperature():
    T = 8
    sch = BernoulliDiffusionScheduler(num_train_timesteps=T)
    sch.set_timesteps(4)  # 8, 6, 4, 2
    n = 100_000
    logits = torch.tensor([-1.5, 0.3, 2.0, -0.2]).repeat(n, 1)
    x_t = torch.tensor([0.0, 1.0, 1.0, 0.0]).repeat(n, 1)
    temp = 0.7
    pf = torch.sigmoid(torch.tensor([-1.5, 0.3, 2.0, -0.2]) / temp).double()
    p0 = torch.tensor([0.0, 1.0, 1.0, 0.0]).double() * (1 - pf) + (1 - torch.tensor([0.0, 1.0, 1.0, 0.0]).double()) * pf
    # expected posterior from brute force over a single bit (6 -> 4)
    k = keep_schedule(T, "linear")
    qst = _chain_matrix(k, 4, 6, 1)
    q0s = _chain_matrix(k, 0, 4, 1)
    expect = []
    for b in range(4):
        prior = np.array([1 - p0[b].item(), p0[b].item()]) @ q0s
        joint = prior * qst[:, int(x_t[0, b].item())]
        expect.append(joint[1] / joint.sum())
    out = sch.step(logits, 6, x_t, temperature=temp, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.pred_original_sample[0].double(), p0.float().double(), atol=1e-6, rtol=0)
    freq = out.prev_sample.mean(0).numpy()
    np.testing.assert_allclose(freq, expect, atol=5 * np.sqrt(0.25 / n))


def test_last_step_is_deterministic():
    sch = BernoulliDiffusionScheduler(num_train_timesteps=16)
    sch.set_timesteps(4)
    assert sch.timesteps.tolist() == [16, 12, 8, 4]
    assert sch.previous_timestep(4) == 0
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    x_t = torch.bernoulli(torch.full((64, 10), 0.5), generator=torch.Generator().manual_seed(1))
    a = sch.step(logits, 4, x_t, generator=torch.Generator().manual_seed(2)).prev_sample
    b = sch.step(logits, 4, x_t, generator=torch.Generator().manual_seed(3)).prev_sample
    assert torch.equal(a, b)
    assert torch.equal(a, (sch.step(logits, 4, x_t).pred_original_sample > 0.5).float())


def test_set_timesteps_and_rejections():
    sch = BernoulliDiffusionScheduler(num_train_timesteps=64)
    sch.set_timesteps(16)
    ts = sch.timesteps.tolist()
    assert ts == list(range(64, 0, -4))
    sch.set_timesteps(64)
    assert sch.timesteps.tolist() == list(range(64, 0, -1))
    for S in (3, 7, 13, 50):
        sch.set_timesteps(S)
        ts = sch.timesteps.tolist()
        assert len(ts) == S and ts[0] == 64 and len(set(ts)) == S and ts == sorted(ts, reverse=True)
    with pytest.raises(InputError, match="steps=65"):
        sch.set_timesteps(65)
    with pytest.raises(InputError):
        sch.set_timesteps(0)
    x = torch.zeros(2, 3)
    for bad in (0, -0.5, float("nan"), "hot"):
        with pytest.raises(InputError, match="temperature"):
            sch.step(torch.zeros(2, 3), 64, x, temperature=bad)
    with pytest.raises(InputError, match="timestep 5"):
        sch.set_timesteps(16)
        sch.step(torch.zeros(2, 3), 5, x)


def test_save_and_load_roundtrip(tmp_path):
    sch = BernoulliDiffusionScheduler(num_train_timesteps=32, schedule="cosine")
    sch.save_pretrained(tmp_path / "scheduler")
    assert (tmp_path / "scheduler" / "scheduler_config.json").is_file()
    back = BernoulliDiffusionScheduler.from_pretrained(tmp_path / "scheduler")
    assert back.config.num_train_timesteps == 32 and back.config.schedule == "cosine"
    torch.testing.assert_close(back.k, sch.k)
    with pytest.raises(InputError, match="schedule"):
        BernoulliDiffusionScheduler(num_train_timesteps=8, schedule="quadratic")


def test_sampling_with_exact_denoiser_recovers_two_pattern_distribution():
    """An exact per-bit denoiser of a two-pattern distribution samples those patterns in equal parts."""
    T, n_bits, B = 16, 4, 4000
    sch = BernoulliDiffusionScheduler(num_train_timesteps=T)
    k = sch.k
    a = torch.tensor([1.0, 1.0, 0.0, 0.0])
    b = torch.tensor([0.0, 1.0, 1.0, 1.0])

    def flip_logits(x_t, t):
        kt = float(k[t])
        like = [torch.prod(kt * (x_t == pat).double() + (1 - kt) / 2, dim=-1) for pat in (a, b)]
        w_a = like[0] / (like[0] + like[1])
        p0 = w_a[:, None] * a.double() + (1 - w_a[:, None]) * b.double()  # per-bit P(x0 = 1 | x_t)
        p_flip = (x_t * (1 - p0) + (1 - x_t) * p0).clamp(1e-9, 1 - 1e-9)
        return torch.logit(p_flip).float()

    g = torch.Generator().manual_seed(0)
    sch.set_timesteps(T)
    x = torch.bernoulli(torch.full((B, n_bits), 0.5), generator=g)
    for t in sch.timesteps:
        x = sch.step(flip_logits(x, int(t)), t, x, generator=g).prev_sample
    is_a = (x == a).all(-1).float().mean().item()
    is_b = (x == b).all(-1).float().mean().item()
    assert is_a + is_b > 0.95
    assert 0.4 < is_a / (is_a + is_b) < 0.6


def test_batched_posterior_matches_the_per_step_posterior():
    sch = BernoulliDiffusionScheduler(num_train_timesteps=16, schedule="cosine")
    g = torch.Generator().manual_seed(3)
    p0 = torch.rand(4, 5, generator=g, dtype=torch.float64)
    xt = torch.bernoulli(torch.full((4, 5), 0.5, dtype=torch.float64), generator=g)
    t, s = torch.tensor([3, 16, 9, 1]), torch.tensor([2, 11, 0, 0])
    got = sch.posterior_probs_batched(p0, xt, t, s)
    for i in range(4):
        want = p0[i] if s[i] == 0 else sch.posterior_probs(p0[i], xt[i], int(t[i]), int(s[i]))
        torch.testing.assert_close(got[i], want)
    p0.requires_grad_(True)
    sch.posterior_probs_batched(p0, xt, t, s).sum().backward()
    assert p0.grad is not None and p0.grad.abs().sum() > 0
    with pytest.raises(InputError):
        sch.posterior_probs_batched(p0, xt, torch.tensor([3, 3, 3, 3]), torch.tensor([3, 2, 1, 0]))


def test_sampling_temperature_is_saved_and_old_configs_default_to_0_9(tmp_path):
    import json

    from latent4d.trust import load_scheduler

    sch = BernoulliDiffusionScheduler(64)
    assert sch.config.sampling_temperature == 0.9
    sch.register_to_config(sampling_temperature=1.5)
    sch.save_pretrained(tmp_path / "s")
    assert load_scheduler(BernoulliDiffusionScheduler, tmp_path / "s").config.sampling_temperature == 1.5
    cfg = json.loads((tmp_path / "s" / "scheduler_config.json").read_text())
    del cfg["sampling_temperature"]  # saved before calibration existed
    (tmp_path / "s" / "scheduler_config.json").write_text(json.dumps(cfg))
    assert load_scheduler(BernoulliDiffusionScheduler, tmp_path / "s").config.sampling_temperature == 0.9
    with pytest.raises(InputError, match="temperature"):
        BernoulliDiffusionScheduler(64, sampling_temperature=0)
