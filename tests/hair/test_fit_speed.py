"""Hair fitting speed-ups keep the result: batched starts equal one start at a time, early stopping on a
plateau, the progress bar, and Ctrl-C during a reconstruction leaves no output (no wall-clock asserts)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import latent4d.hair.reconstruct as rec
from latent4d.hair.synthetic import generate_hairstyle

HairReconstructConfig, _optimise_starts, synthetic_observation = (rec.HairReconstructConfig, rec._optimise_starts,
                                                                  rec.synthetic_observation)


@pytest.fixture(scope="module")
def pipe(style_run):
    from latent4d.hair.pipeline import HairPipeline

    return HairPipeline.from_pretrained(style_run[0])


@pytest.fixture(scope="module")
def observation():
    h = generate_hairstyle(3_000_001, 1200)
    obs, _ = synthetic_observation(h.strands, n_points=300, seed=1)
    return obs


def _setup(pipe, obs, **settings):
    cfg = HairReconstructConfig(strands=0, progress=False, **settings)
    cfg, obs, objective, mean, std = rec._prepare(pipe, obs, cfg)
    for p in pipe.style_vae.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(5)
    starts = [torch.zeros(pipe.style_dim)] + [torch.randn(pipe.style_dim, generator=g) * 0.7 for _ in range(2)]
    return cfg, objective, mean, std, starts


def test_batched_starts_follow_the_same_path_as_one_at_a_time(pipe, observation):
    cfg, objective, mean, std, starts = _setup(pipe, observation, steps=8, patience=0)
    batched = _optimise_starts(pipe, objective, starts, cfg, mean, std)
    for z0, (loss, z, parts) in zip(starts, batched, strict=True):
        alone_loss, alone_z, alone_parts = _optimise_starts(pipe, objective, [z0], cfg, mean, std)[0]
        assert not torch.equal(z, z0)  # it moved
        torch.testing.assert_close(z, alone_z, rtol=1e-4, atol=1e-5)
        assert loss == pytest.approx(alone_loss, rel=1e-4, abs=1e-7)
        assert parts["chamfer_mm"] == pytest.approx(alone_parts["chamfer_mm"], rel=1e-3)


def test_early_stopping_on_a_plateau(pipe, observation):
    steps, calls = 60, []
    cfg, objective, mean, std, starts = _setup(pipe, observation, steps=steps, lr=1e-9, patience=3)
    out = _optimise_starts(pipe, objective, starts, cfg, mean, std, calls.append)
    assert sum(calls) == steps * len(starts)  # the bar still ends at its total
    assert len(calls) < 10  # 4 steps, then every start stopped (with lr ~ 0 nothing improves)
    for z0, (_, z, _) in zip(starts, out, strict=True):
        torch.testing.assert_close(z, z0, atol=1e-6, rtol=0)
    calls.clear()
    cfg = dataclasses.replace(cfg, patience=0, screen_steps=0)
    _optimise_starts(pipe, objective, starts, cfg, mean, std, calls.append)
    assert len(calls) == steps  # patience 0, no screening: every step runs


def test_screening_keeps_the_best_starts_and_the_others_stop_where_they_were(pipe, observation):
    cfg, objective, mean, std, starts = _setup(pipe, observation, steps=10, patience=0, screen_steps=4, keep=1)
    calls: list[int] = []
    out = _optimise_starts(pipe, objective, starts, cfg, mean, std, calls.append)
    assert sum(calls) == cfg.steps * len(starts)  # the bar still ends at its total
    at_screen = _optimise_starts(pipe, objective, starts, dataclasses.replace(cfg, steps=4, screen_steps=0),
                                 mean, std)
    moved = [not torch.equal(z, z4) for (_, z, _), (_, z4, _) in zip(out, at_screen, strict=True)]
    assert sum(moved) == 1  # one start went on; the others are exactly where the screening left them
    k = moved.index(True)
    alone = _optimise_starts(pipe, objective, [starts[k]], dataclasses.replace(cfg, screen_steps=0), mean, std)[0]
    torch.testing.assert_close(out[k][1], alone[1], rtol=1e-4, atol=1e-5)  # the kept one ran all its steps
    assert out[k][0] <= min(loss for loss, _, _ in at_screen) + 1e-9  # and it was the best at the screening


def test_cached_nearest_neighbours_are_exact_at_a_refresh_and_close_between():
    g = torch.Generator().manual_seed(0)
    query, points = torch.rand(300, 3, generator=g), torch.rand(2000, 3, generator=g)
    key = torch.ones(5, dtype=torch.bool)
    cand = rec._Candidates()
    exact = rec._nearest(query, points, None, None)
    assert torch.equal(rec._nearest(query, points, cand, key), exact)  # the first search is exact
    moved = points + 0.002 * torch.randn(points.shape, generator=g)  # a small step of the fit
    cached, truth = rec._nearest(query, moved, cand, key), rec._nearest(query, moved, None, None)
    d = lambda idx: (moved[idx] - query).norm(dim=-1)  # noqa: E731
    assert (cached == truth).float().mean() > 0.9 and float((d(cached) - d(truth)).max()) < 0.01
    for _ in range(rec.REFRESH - 1):
        rec._nearest(query, moved, cand, key)
    assert torch.equal(rec._nearest(query, moved, cand, key), truth)  # REFRESH steps later: exact again
    other = key.clone()
    other[0] = False  # another presence mask: other points, so a new exact search
    assert torch.equal(rec._nearest(query, points, cand, other), exact)


def test_fit_picks_the_best_start_and_reports_it(pipe, observation):
    res = rec.fit_observation(pipe, observation, HairReconstructConfig(inits=3, retrieve=0, steps=5, strands=0,
                                                                   progress=False))
    assert res.winner in ("zero", "random 1", "random 2") and np.isfinite(res.loss)


def test_ctrl_c_during_a_fit_leaves_no_output(style_run, tmp_path, monkeypatch):
    from latent4d.cli import main
    from latent4d.hair.formats import write_points

    write_points(tmp_path / "obs.ply", synthetic_observation(generate_hairstyle(3_000_002, 800).strands,
                                                             n_points=300)[0].points)
    calls = {"n": 0}
    terms = rec._Objective.terms

    def interrupted(self, x, present, *cache):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return terms(self, x, present, *cache)

    monkeypatch.setattr(rec._Objective, "terms", interrupted)
    out = tmp_path / "rec"
    code = main(["reconstruct", "hair", f"run={style_run[0]}", f"input={tmp_path / 'obs.ply'}", f"out={out}",
                 "strands=200", "inits=2", "retrieve=0", "steps=5", "render=false"])
    assert calls["n"] == 3 and code == 130
    assert not out.exists() or not any(out.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.ply"] + (["rec"] if out.exists() else [])
