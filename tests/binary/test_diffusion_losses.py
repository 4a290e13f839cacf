"""BinaryDiffusionModule's loss terms (official BinaryLatentDiffusion losses): focal / alpha balancing, time
weighting, the auxiliary variational-bound term; built on a tiny exported autoencoder (no training)."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from latent4d.binary.autoencoder import BernoulliAutoencoder
from latent4d.binary.denoiser import LatentTransformer
from latent4d.binary.module import BinaryDiffusionModule
from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler
from latent4d.errors import ConfigError

T = 16


@pytest.fixture(scope="module")
def ae_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_ae") / "autoencoder"
    torch.manual_seed(0)
    BernoulliAutoencoder(channels=(8,), latent_channels=4, sample_size=8).save_pretrained(folder)
    return folder


def _module(ae_folder, **kw) -> BinaryDiffusionModule:
    den = functools.partial(LatentTransformer, dim=32, depth=1, heads=2, dim_head=16, num_classes=0)
    return BinaryDiffusionModule(den, BernoulliDiffusionScheduler(T), autoencoder_path=str(ae_folder), **kw)


def _batch(seed=0, B=6):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.bernoulli(torch.full((B, 4, 4, 4), 0.5), generator=g)
    t = torch.randint(1, T + 1, (B,), generator=g)
    sch = BernoulliDiffusionScheduler(T)
    xt = sch.add_noise(x0, t, generator=g)
    logits = torch.randn(x0.shape, generator=g)
    return x0, xt, (xt != x0).float(), t, logits


def test_focal_gamma0_is_the_official_alpha_balanced_bce(ae_folder):
    _, _, target, t, logits = _batch()
    m = _module(ae_folder, loss="focal", focal_gamma=0.0)
    f = target.flatten(1).mean(1).view(-1, 1, 1, 1)  # per-sample flip fraction
    alpha = (1 - f) * target + f * (1 - target)
    want = (alpha * F.binary_cross_entropy_with_logits(logits, target, reduction="none")).mean()
    torch.testing.assert_close(m.flip_loss(logits, target, t), want)
    # gamma > 0 down-weights confident correct predictions: never larger than gamma = 0
    assert _module(ae_folder, loss="focal", focal_gamma=2.0).flip_loss(logits, target, t) < want


def test_time_weighting(ae_folder):
    _, _, target, _, logits = _batch(1)
    mean = _module(ae_folder, time_weighting="mean")
    weighted = _module(ae_folder, time_weighting="weighted")
    t1, tT = torch.ones(6, dtype=torch.long), torch.full((6,), T)
    torch.testing.assert_close(weighted.flip_loss(logits, target, t1), mean.flip_loss(logits, target, t1))
    torch.testing.assert_close(weighted.flip_loss(logits, target, tT), mean.flip_loss(logits, target, tT) / T)


def test_aux_loss_is_smallest_for_the_true_x0(ae_folder):
    x0, xt, target, t, logits = _batch(2)
    m = _module(ae_folder, aux_weight=0.01)
    perfect = (2 * target - 1) * 30.0  # flip logits that reproduce x0 exactly
    wrong = -perfect
    a_perfect, a_random, a_wrong = (m.aux_loss(lg, xt, x0, t) for lg in (perfect, logits, wrong))
    assert a_perfect < a_random < a_wrong
    # at the truth it is the entropy of the true posterior: zero where t = 1 (x_0 is known exactly)
    t1 = torch.ones_like(t)
    assert m.aux_loss(perfect, xt, x0, t1) < 1e-4
    logits.requires_grad_(True)
    m.aux_loss(logits, xt, x0, t).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("kw", [dict(loss="nope"), dict(time_weighting="linear"), dict(aux_weight=-1.0),
                                dict(focal_gamma=-0.5)])
def test_bad_loss_settings_are_refused(ae_folder, kw):
    with pytest.raises(ConfigError):
        _module(ae_folder, **kw)
