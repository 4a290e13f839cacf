"""Guide maps, hairstyle-VAE, hybrid densification."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent4d.hair.densify import blend_latents, densify, hybrid_weight, texel_similarity
from latent4d.hair.guides import (
    decode_guides,
    encode_guides,
    gather_map,
    guide_strands,
    mirror_local,
    mirror_permutation,
    scatter_map,
)
from latent4d.hair.strand_vae import load_strand_vae
from latent4d.hair.strands import Hairstyle, to_local
from latent4d.hair.style_vae import HairstyleVAE, load_style_vae
from latent4d.hair.synthetic import generate_strands, sample_style


@pytest.fixture(scope="module")
def grid(scalp):
    return scalp.grid(32)


def test_hybrid_weight_is_haars_formula():
    s = torch.tensor([0.0, 0.5, 0.9, 0.95, 1.0])
    w = hybrid_weight(s)
    assert torch.allclose(w, torch.tensor([1.0, 1 - 1.63 * 0.5 ** 5, 1 - 1.63 * 0.9 ** 5, 0.4 - 0.4 * 0.95, 0.0]))
    assert abs(float(hybrid_weight(torch.tensor(0.9 + 1e-6))) - float(w[2])) < 5e-3  # nearly continuous at 0.9


def test_scatter_gather_and_mirror(grid, scalp):
    V = int(grid.mask.sum())
    vals = torch.randn(V, 5)
    m = scatter_map(vals, grid)
    assert m.shape == (5, 32, 32) and torch.equal(gather_map(m, grid), vals)
    assert float(m[:, ~torch.as_tensor(grid.mask.reshape(32, 32))].abs().sum()) == 0
    perm = mirror_permutation(grid)
    roots, frames = grid.roots[grid.mask], grid.frames[grid.mask]
    assert np.allclose(roots[perm] * [-1, 1, 1], roots, atol=1e-6)
    world, _ = generate_strands(sample_style(4), roots, scalp)
    mirrored_world = world[perm] * np.array([-1, 1, 1], np.float32)
    assert np.allclose(to_local(mirrored_world, roots, frames), mirror_local(to_local(world, roots, frames)[perm]),
                       atol=1e-5)


def test_similarity_detects_partings(grid):
    V = int(grid.mask.sum())
    u = grid.uv[grid.mask][:, 0]
    base = np.cumsum(np.tile([[0.0, -0.01, 0.0]], (100, 1)), 0)
    g = np.repeat(base[None], V, 0)
    g[..., 0] += np.where(u < 0.5, -1, 1)[:, None] * np.linspace(0, 5.0, 100)[None]  # opposite sides
    s = texel_similarity(torch.as_tensor(g, dtype=torch.float32), torch.ones(V, dtype=torch.bool), grid)
    boundary = np.abs(u - 0.5) < 1.0 / 32
    assert float(s[torch.as_tensor(boundary)].max()) < 0.5
    assert float(s[torch.as_tensor(~boundary)].min()) > 0.999


def test_blend_latents_modes(grid):
    V = int(grid.mask.sum())
    lat = torch.randn(V, 4)
    pres = torch.ones(V)
    pres[:10] = 0
    gmap = scatter_map(torch.cat([lat, pres[:, None]], 1), grid)
    uv = grid.uv[grid.mask]
    sim = torch.ones(V)
    for mode in ("nearest", "bilinear", "hybrid"):
        z, present = blend_latents(gmap, grid, uv[10:], mode, sim)
        assert torch.allclose(z, lat[10:], atol=1e-5), mode  # texel centres reproduce the texel latents
        assert present.all()
    _, present = blend_latents(gmap, grid, uv[:10], "nearest")
    assert not present.any()  # absent texels give bald roots
    mid = (uv[20] + uv[21]) / 2 if abs(uv[21, 0] - uv[20, 0]) < 0.04 else uv[20]
    zb, _ = blend_latents(gmap, grid, mid[None], "bilinear")
    zn, _ = blend_latents(gmap, grid, mid[None], "nearest")
    assert not torch.allclose(zb, zn)
    with pytest.raises(Exception, match="unknown"):
        blend_latents(gmap, grid, uv, "cubic")


def test_guide_strands_pick_nearest_root_and_keep_bald(scalp, grid):
    roots, uv = scalp.sample_roots(4000, seed=2)
    strands, _ = generate_strands(sample_style(2), roots, scalp, uv)
    pts = [s if i % 7 else s[:1] for i, s in enumerate(strands)]  # every 7th strand is a bald root
    hs = Hairstyle.from_list(pts, root_uv=uv)
    local, presence, world, idx = guide_strands(hs, scalp, grid)
    V = int(grid.mask.sum())
    assert local.shape == (V, 100, 3) and presence.shape == (V,)
    d = np.linalg.norm(uv[idx] - grid.uv[grid.mask], axis=1)
    dall = np.linalg.norm(uv[None] - grid.uv[grid.mask][:, None], axis=-1).min(1)
    assert np.allclose(d, dall)
    assert (~presence == (idx % 7 == 0)).all()
    assert np.allclose(local[~presence], 0)


def test_hairstyle_vae_shapes_attributes_and_save(tmp_path):
    vae = HairstyleVAE(latent_channels=8, grid=32, style_dim=16, channels=(8, 8, 16, 16))
    gmap = torch.randn(3, 9, 32, 32)
    gmap[:, -1] = 1.0
    mu, logvar = vae.encode(gmap)
    assert mu.shape == (3, 16) and vae.decode(mu).shape == (3, 9, 32, 32)
    out = vae.decode(mu).detach()
    assert float(out[:, -1][:, ~vae.mask.bool()].abs().max()) == 0.0  # presence zero off the scalp
    z = torch.randn(200, 16)
    y = torch.stack([z[:, 0] * 2 + 1, z[:, 1] - z[:, 2], z[:, 3] * 0.1], 1)
    r2 = vae.fit_attributes(z, y, ridge=1e-6)
    assert min(r2.values()) > 0.99
    z0 = torch.zeros(1, 16)
    step = vae.predict_attributes(z0 + vae.attribute_direction("length")) - vae.predict_attributes(z0)
    assert float(step[0, 0]) == pytest.approx(float(y[:, 0].std()), rel=1e-3)
    vae.latent_mean.fill_(0.5)
    vae.save_pretrained(tmp_path / "style_vae")
    back = load_style_vae(tmp_path)
    assert torch.equal(back.latent_mean, vae.latent_mean) and torch.equal(back.attr_weight, vae.attr_weight)
    assert back.config.scalp == vae.config.scalp and back.has_attributes()
    assert torch.allclose(back.decode(mu), vae.decode(mu))


def test_style_training_end_to_end(style_run, strand_run):
    run, metrics = style_run
    for name in ("style_vae", "strand_vae"):
        assert (run / "models" / name / "config.json").is_file()
    assert np.isfinite(metrics["test/guide_err_mm"]) and np.isfinite(metrics["test/guide_err_vs_strand_vae_mm"])
    vae = load_style_vae(run)
    assert vae.has_attributes() and float(vae.latent_std.min()) > 0
    assert not torch.equal(vae.latent_mean, torch.zeros_like(vae.latent_mean))


def test_densify_from_a_procedural_guide_map(strand_run, scalp, grid):
    sv = load_strand_vae(strand_run[0]).eval()
    roots, frames = grid.roots[grid.mask], grid.frames[grid.mask]
    world, _ = generate_strands(sample_style(9), roots, scalp)
    presence = np.ones(len(roots), bool)
    presence[:50] = False
    gmap = encode_guides(sv, to_local(world, roots, frames), presence, grid)
    g = decode_guides(sv, gmap, grid)
    assert g.num_strands == len(roots) and int(g.bald.sum()) == 50
    for mode in ("nearest", "bilinear", "hybrid"):
        hs = densify(sv, gmap, grid, scalp, n_strands=3000, mode=mode, seed=1, chunk=700)
        assert hs.num_strands == 3000 and hs.root_uv.shape == (3000, 2)
        hair = hs.subset(~hs.bald)
        assert 0 < hair.num_strands < 3000 and hair.is_uniform
        assert not scalp.head.inside(hair.strands[:, 1:]).any()
        assert np.allclose(hs.roots, scalp.sample_roots(3000, seed=1)[0], atol=1e-6)


def test_guide_datamodule_reads_hair_files(strand_run, tmp_path):
    from latent4d.hair.data import HairGuideDataModule
    from latent4d.hair.formats import write_hair
    from latent4d.hair.synthetic import generate_hairstyle

    for i in range(3):
        h = generate_hairstyle(i, 3000)
        if i == 0:  # a bald patch: the first 500 strands become bald roots
            pts = [h.strand(j)[:1] if j < 500 else h.strand(j) for j in range(h.num_strands)]
            h = Hairstyle.from_list(pts)
        write_hair(tmp_path / f"s{i}.data", h)
    dm = HairGuideDataModule(strand_vae_path=str(strand_run[0]), root=str(tmp_path), batch_size=2, cache=False)
    dm.setup()
    total = sum(len(dm.dataset(s)) for s in ("train", "val", "test"))
    assert total == 3
    maps = torch.cat([dm.dataset(s).tensors[0] for s in ("train", "val", "test")])
    assert maps.shape[1:] == (65, 32, 32)
    pres = maps[:, -1][:, torch.as_tensor(dm.grid.mask.reshape(32, 32))]
    assert 0.5 < float(pres.mean()) < 1.0  # the bald patch shows up as absent texels
