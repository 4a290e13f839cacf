"""Sampling-temperature calibration (latent4d.binary.calibrate) and its place in training and sampling."""

from __future__ import annotations

import pytest
import torch

from latent4d.binary.calibrate import calibrate_temperature, code_frechet
from latent4d.binary.module import _check_calibration
from latent4d.errors import ConfigError, InputError


def _bits(p: float, n: int, seed: int, d: int = 32) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, 2, 4, d // 8), p), generator=torch.Generator().manual_seed(seed))


def test_code_frechet_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    ref = _bits(0.3, 2000, 0)
    same, near, far = (code_frechet(_bits(p, 2000, 1), ref) for p in (0.3, 0.4, 0.7))
    assert same < 0.1 < near < far
    # mean term 32 x 0.1^2 plus the variance term 32 x (sqrt(0.24) - sqrt(0.21))^2 = 0.352 (+ sampling noise)
    assert abs(near - 0.352) < 0.15
    with pytest.raises(InputError, match="bits"):
        code_frechet(_bits(0.3, 10, 0, 32), _bits(0.3, 10, 0, 64))
    with pytest.raises(InputError, match="at least 2"):
        code_frechet(_bits(0.3, 1, 0), ref)


class _StubPipe:
    """Samples bits with P(1) = temperature / 4 regardless of labels (records the labels it got)."""

    num_classes = 3

    def __init__(self):
        self.labels: list[torch.Tensor] = []

    def sample_latents(self, labels, steps=16, temperature=1.0, generator=None):
        self.labels.append(labels)
        return torch.bernoulli(torch.full((len(labels), 2, 4, 4), temperature / 4), generator=generator)


def test_calibration_picks_the_temperature_whose_codes_match_the_reference():
    ref = _bits(0.375, 800, 3)  # = temperature 1.5 of the stub
    labels = torch.tensor([0] * 600 + [2] * 200)
    pipe = _StubPipe()
    best, fds = calibrate_temperature(pipe, ref, labels, temperatures=(0.9, 1.0, 1.5, 2.0), num_samples=400,
                                      batch_size=150)
    assert best == 1.5 and set(fds) == {0.9, 1.0, 1.5, 2.0}
    assert fds[1.5] < min(fds[0.9], fds[2.0])
    y = torch.cat(pipe.labels[:3])  # the first temperature's batches: 150 + 150 + 100
    assert len(y) == 400 and set(y.tolist()) <= {0, 2} and 0.6 < float((y == 0).float().mean()) < 0.9
    with pytest.raises(InputError, match="positive"):
        calibrate_temperature(pipe, ref, labels, temperatures=(0.9, 0.0))
    with pytest.raises(InputError, match="reference codes"):
        calibrate_temperature(pipe, ref[:1], labels[:1])


def test_calibration_settings_are_checked():
    assert _check_calibration(None) is None
    assert _check_calibration({"steps": 8, "temperatures": [1, 2]}) == {"steps": 8, "temperatures": [1.0, 2.0]}
    with pytest.raises(ConfigError, match="unknown keys"):
        _check_calibration({"temperature": [1.0]})
    with pytest.raises(ConfigError, match="positive"):
        _check_calibration({"temperatures": [1.0, -1.0]})
    with pytest.raises(ConfigError, match="num_samples"):
        _check_calibration({"num_samples": 0})
    with pytest.raises(ConfigError, match="expected numbers"):
        _check_calibration({"temperatures": ["hot"]})
    with pytest.raises(ConfigError, match="mapping"):
        _check_calibration([1.0, 2.0])


def test_calibration_steps_beyond_T_are_refused_before_training():
    from latent4d.binary.module import BinaryDiffusionModule
    from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler

    with pytest.raises(ConfigError, match="T=8"):  # checked before the autoencoder is even looked for
        BinaryDiffusionModule(None, BernoulliDiffusionScheduler(8), autoencoder_path="unused",
                              calibration={"steps": 16})


def test_few_reference_codes_are_compared_on_their_principal_components(monkeypatch):
    from latent4d.binary import calibrate

    assert calibrate.compared_dims(1258, 256) == 256  # the digits: 4+ codes per bit, every bit
    assert calibrate.compared_dims(480, 1536) == 120  # the voxels: N / 4 components
    assert calibrate.compared_dims(10**6, 16384) == calibrate.MAX_DIMS
    ref, same, far = _bits(0.3, 400, 0, 64), _bits(0.3, 400, 1, 64), _bits(0.6, 400, 1, 64)
    assert code_frechet(same, ref, dims=64) == pytest.approx(code_frechet(same, ref))
    assert code_frechet(same, ref, dims=16) < code_frechet(far, ref, dims=16)
    monkeypatch.setattr(calibrate, "MAX_REFERENCE", 100)  # a seeded subset of the reference, labels with it
    pipe = _StubPipe()
    best, _ = calibrate_temperature(pipe, _bits(0.375, 800, 3), torch.tensor([1] * 800),
                                    temperatures=(0.9, 1.5, 2.0), num_samples=200)
    assert best == 1.5 and set(torch.cat(pipe.labels).tolist()) == {1}
