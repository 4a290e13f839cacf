"""Official Motion2VecSets deformation denoisers (issue 22): ``model=motion_deform_diffusion_official`` /
``..._partial_official`` and ``latent4d import-weights m2v-deform-diffusion`` / ``m2v-deform-diffusion-partial``.

Checkpoints are fabricated in the official layout (``EDMPrecond`` with ``is_deform``, ``withT``; sparse:
``is_corr`` with the ``Scan2latent_deform_timeatt`` pair encoder, partial: ``Scan2latent`` and the extra
``attn6``; official names and shapes, random weights). The imported network, driven through
:meth:`latent4d.diffusion.edm.EDM.denoise`, is compared with an official-style forward written here after the
official code's structure: 4-D ``CrossAttentionT`` layers (separate bias-free q / k / v, per-frame contexts:
the shape latents repeated over the frames as the official training and demo give them), the temporal
attention by permuting frames and latents, AdaLN with (scale, shift) rows chunked on the last axis, the
official inputs ``cond_src_emb`` = frame 0 repeated, ``cond_tgt_emb`` = frames 1..T-1.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import call, fails

from latent4d.diffusion.edm import EDM
from latent4d.errors import InputError
from latent4d.geometry.sampling import farthest_point_sampling
from latent4d.motion import official
from latent4d.motion.denoiser import DeformDenoiser
from latent4d.trust import load_network


def _load(name: str, alias: str):
    """A sibling test module by path (test folders are no packages; pytest runs with --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(alias, Path(__file__).with_name(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_ae = _load("test_official.py", "_m2v_official_ae_reference")
_sd = _load("test_official_diffusion.py", "_m2v_official_shape_diffusion_reference")
_embed, _geglu_ff, _linear, _ln, _attention = _ae._embed, _ae._geglu_ff, _ae._linear, _ae._ln, _ae._attention
save_official, official_heun = _ae.save_official, _sd.official_heun

SMALL = dict(width=64, depth=2, channels=32, shape_channels=8, freqs=8)  # 8 heads x 8
PAPER_WIDTH = dict(width=512, depth=2, channels=32, shape_channels=8, freqs=8)  # 2 of the 12 blocks
TOL = 1e-4
KIND = {False: "m2v-deform-diffusion", True: "m2v-deform-diffusion-partial"}
SPEC = {False: official.DEFORM_DIFFUSION, True: official.PARTIAL_DIFFUSION}


# ----------------------------------------------------------------------------------------------
# the official layout


def official_deform_shapes(
    width: int,
    depth: int,
    channels: int,
    shape_channels: int,
    freqs: int,
    partial: bool,
    temporal: bool = True,
) -> dict[str, tuple]:
    """Tensor names and shapes of the official deformation ``EDMPrecond`` (``models_diff.py``, t_channels 256;
    ``condition_encoder.py``: the pair encoder's point embedding is width / 2, the partial one's width)."""
    shapes = _sd.official_diffusion_shapes(width, depth, channels, freqs)  # what the shape denoiser has too
    shapes["model.shape_cond_proj.weight"] = (width, shape_channels)
    for i in range(depth):
        p = f"model.transformer_blocks.{i}"
        for n in ["5"] + (["6"] if partial else []) + (["3"] if temporal else []):
            shapes.update(
                {f"{p}.norm{n}.linear.weight": (2 * width, width), f"{p}.norm{n}.linear.bias": (2 * width,)}
            )
            shapes.update({f"{p}.attn{n}.to_{c}.weight": (width, width) for c in "qkv"})
            shapes.update(
                {f"{p}.attn{n}.to_out.0.weight": (width, width), f"{p}.attn{n}.to_out.0.bias": (width,)}
            )
    enc = _ae.official_shapes(width, 0, channels, width, freqs, point_width=width if partial else width // 2)
    shapes.update(
        {f"cond_enc.{k}": s for k, s in enc.items() if k.startswith(("point_embed.", "cross_attend_blocks."))}
    )
    return shapes


def official_deform_state_dict(seed: int = 0, partial: bool = False, **size) -> dict[str, torch.Tensor]:
    """Random weights in the official layout (norms random around 1, the Fourier basis as the official one)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_deform_shapes(partial=partial, **size).items():
        sd[k] = torch.randn(shape, generator=g) / math.sqrt(shape[-1] if len(shape) == 2 else 1)
        if k.endswith(("norm.weight", "norm_context.weight")):
            sd[k] = 1.0 + 0.1 * torch.randn(shape, generator=g)
    e = (2.0 ** torch.arange(size["freqs"])).float() * math.pi
    sd["cond_enc.point_embed.basis"] = torch.block_diag(e[None], e[None], e[None])
    return sd


# ----------------------------------------------------------------------------------------------
# the official forward, after the official code's structure


def _sub(sd: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _attn_t(x, context, sd, p, heads=8):
    """The official CrossAttentionT: x (B, T, N, D), context (B, T, K, C); q / k / v bias-free and separate,
    'b t n (h d) -> (b h) t n d', einsum scores * d^-0.5, softmax over the context, to_out.0."""
    q, k, v = (t @ sd[f"{p}.to_{c}.weight"].T for t, c in ((x, "q"), (context, "k"), (context, "v")))
    B, T, N, inner = q.shape
    d = inner // heads

    def split(t):
        return (
            t.reshape(B, T, t.shape[2], heads, d).permute(0, 3, 1, 2, 4).reshape(B * heads, T, t.shape[2], d)
        )

    q, k, v = split(q), split(k), split(v)
    attn = (torch.einsum("btid,btjd->btij", q, k) * d**-0.5).softmax(dim=-1)
    out = torch.einsum("btij,btjd->btid", attn, v)
    out = out.reshape(B, heads, T, N, d).permute(0, 2, 3, 1, 4).reshape(B, T, N, inner)
    return out @ sd[f"{p}.to_out.0.weight"].T + sd[f"{p}.to_out.0.bias"]


def _encode(enc, queries, points):
    """Scan2latent's attention: query tokens (B', K, D) attend to point tokens (B', N, D), + GEGLU FFN."""
    q, kv = (
        _ln(queries, enc, "cross_attend_blocks.0.norm"),
        _ln(points, enc, "cross_attend_blocks.0.norm_context"),
    )
    x = _attention(q, kv, enc, "cross_attend_blocks.0.fn", heads=1) + queries
    return _geglu_ff(_ln(x, enc, "cross_attend_blocks.1.norm"), enc, "cross_attend_blocks.1.fn") + x


def official_pair_encoder(enc, src, tgt, idx=None):
    """Scan2latent_deform_timeatt on 4-D inputs src, tgt (B, T, N, 3): FPS of src[:, 0] (``idx`` (B, K); None:
    N <= num_latents, every point) gathered in every frame of both, [embed(src), embed(tgt)] -> (B, T, K, D)."""
    B, T, N, _ = src.shape
    gather = (
        (lambda pc: pc)
        if idx is None
        else (lambda pc: torch.gather(pc, 2, idx[:, None, :, None].expand(B, T, -1, 3)))
    )
    s, t = gather(src).reshape(B * T, -1, 3), gather(tgt).reshape(B * T, -1, 3)
    q = torch.cat([_embed(s, enc), _embed(t, enc)], dim=-1)
    kv = torch.cat([_embed(src.reshape(B * T, N, 3), enc), _embed(tgt.reshape(B * T, N, 3), enc)], dim=-1)
    out = _encode(enc, q, kv)
    return out.reshape(B, T, out.shape[1], -1)


def official_scan_encoder(enc, pc, idx=None):
    """Scan2latent on (B, T, N, 3) flattened to (B T, N, 3): per-frame FPS (``idx`` (B, T, K); None: every point)."""
    B, T, N, _ = pc.shape
    flat = pc.reshape(B * T, N, 3)
    q = flat if idx is None else torch.gather(flat, 1, idx.reshape(B * T, -1, 1).expand(-1, -1, 3))
    out = _encode(enc, _embed(q, enc), _embed(flat, enc))
    return out.reshape(B, T, out.shape[1], -1)


def official_deform_denoiser(sd, x_in, c_noise, shape_cond, src, tgt, partial, idx=None, heads=8):
    """F of the official LatentArrayTransformer (is_deform, withT): x_in (B, T, M, C), shape_cond (B, T, Ms, Cs)."""
    enc = _sub(sd, "cond_enc.")
    if partial:
        cond_src = official_scan_encoder(enc, src, None if idx is None else idx[0])
        cond_tgt = official_scan_encoder(enc, tgt, None if idx is None else idx[1])
    else:
        cond = official_pair_encoder(enc, src, tgt, idx)
    freqs = (1.0 / 10000) ** (torch.arange(128, dtype=torch.float32) / 128)
    ang = c_noise[:, None] * freqs
    t = F.silu(_linear(torch.cat([ang.cos(), ang.sin()], dim=1)[:, None, None], sd, "model.map_layer0"))
    t = F.silu(_linear(t, sd, "model.map_layer1"))  # (B, 1, 1, D)
    x = x_in @ sd["model.proj_in.weight"].T
    shape_cond = shape_cond @ sd["model.shape_cond_proj.weight"].T
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("model.transformer_blocks."))
    for i in range(depth):
        p = f"model.transformer_blocks.{i}"

        def ada(v, n, p=p):
            scale, shift = torch.chunk(_linear(t, sd, f"{p}.{n}.linear"), 2, dim=3)
            return F.layer_norm(v, v.shape[-1:], eps=1e-5) * (1 + scale) + shift

        h = ada(x, "norm1")
        x = _attn_t(h, h, sd, f"{p}.attn1", heads) + x
        x = _attn_t(ada(x, "norm2"), shape_cond, sd, f"{p}.attn2", heads) + x
        if partial:
            x = _attn_t(ada(x, "norm5"), cond_src, sd, f"{p}.attn5", heads) + x
            x = _attn_t(ada(x, "norm6"), cond_tgt, sd, f"{p}.attn6", heads) + x
        else:
            x = _attn_t(ada(x, "norm5"), cond, sd, f"{p}.attn5", heads) + x
        x = x.permute(0, 2, 1, 3)  # (B, M, T, D): attention across frames; t (B, 1, 1, D) permutes to itself
        h = ada(x, "norm3")
        x = (_attn_t(h, h, sd, f"{p}.attn3", heads) + x).permute(0, 2, 1, 3)
        v, gate = _linear(ada(x, "norm4"), sd, f"{p}.ff.net.0.proj").chunk(2, dim=-1)
        x = _linear(v * F.gelu(gate), sd, f"{p}.ff.net.2") + x
    return _ln(x, sd, "model.norm") @ sd["model.proj_out.weight"].T


def official_deform_precond(sd, x, sigma, shape_latents, obs, partial, idx=None):
    """EDMPrecond.forward with the official inputs: shape_cond = frame-0 shape latents repeated over the T-1
    frames, cond_src_emb = frame 0's observation repeated, cond_tgt_emb = frames 1..T-1."""
    T1 = x.shape[1]
    shape_cond = shape_latents[:, None].expand(-1, T1, -1, -1)
    src, tgt = obs[:, :1].expand(-1, T1, -1, -1), obs[:, 1:]
    s = sigma.reshape(-1, 1, 1, 1)
    c_skip, c_out, c_in = 1 / (s**2 + 1), s / (s**2 + 1).sqrt(), 1 / (s**2 + 1).sqrt()
    f = official_deform_denoiser(sd, c_in * x, sigma.log().flatten() / 4, shape_cond, src, tgt, partial, idx)
    return c_skip * x + c_out * f


def _inputs(n=40, m=48, frames=5, channels=32, seed=1, batch=2):
    """Deformation latents (B, T-1, M, C), sigma (B,), frame-0 shape latents (B, M, 8), observations (B, T, N, 3)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames - 1, m, channels, generator=g) * 2.0
    sigma = torch.tensor([0.05, 3.0, 40.0, 0.5][:batch])
    shape = torch.randn(batch, m, 8, generator=g)
    return x, sigma, shape, torch.rand(batch, frames, n, 3, generator=g) - 0.5


def _max_diff(net, sd, x, sigma, shape, obs, partial, idx=None):
    with torch.no_grad():
        ours = EDM().denoise(net, x, sigma, shape_latents=shape, obs=obs)
        ref = official_deform_precond(sd, x, sigma, shape, obs, partial, idx)
    return (ours - ref).abs().max().item(), ref


# ----------------------------------------------------------------------------------------------
# layout


@pytest.mark.parametrize("partial", [False, True])
def test_official_configs_are_the_official_layout(partial):
    """model=motion_deform_diffusion[_partial]_official builds a network whose every tensor is an official one,
    renamed, plus the latent statistics (paper size, meta device)."""
    import tempfile

    from hydra.utils import instantiate

    from latent4d.train import compose_config

    model = "motion_deform_diffusion_partial_official" if partial else "motion_deform_diffusion_official"
    cfg = compose_config(["experiment=motion/deform_diffusion", f"model={model}"], tempfile.mkdtemp())
    with torch.device("meta"):
        net = instantiate(cfg.model.denoiser)
    assert isinstance(net, DeformDenoiser) and net.config.time_scale == 1.0 and net.frame_embed is None
    assert (
        net.obs.attn.heads == 1
        and net.obs.pair is (not partial)
        and (net.blocks[0].src is not None) is partial
    )
    own = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    size = dict(width=512, depth=12, channels=32, shape_channels=8, freqs=8)
    sd = {
        k: torch.empty(s, device="meta") for k, s in official_deform_shapes(partial=partial, **size).items()
    }
    want = {
        official.rename(k, SPEC[partial].rules): tuple(v.shape)
        for k, v in official.fuse_diffusion(sd).items()
        if k != official.DIFFUSION_BASIS
    }
    want.update({k: ((32,) if k.startswith("stats") else (8,)) for k in SPEC[partial].own})
    assert own == want


@pytest.mark.parametrize("partial", [False, True])
def test_rename_round_trips(partial):
    rules = SPEC[partial].rules
    for k in official.fuse_diffusion(official_deform_state_dict(partial=partial, **SMALL)):
        if k != official.DIFFUSION_BASIS:
            new = official.rename(k, rules)
            assert new is not None and official.rename(new, rules, reverse=True) == k


# ----------------------------------------------------------------------------------------------
# equivalence


@pytest.mark.parametrize("partial", [False, True])
def test_imported_matches_official_forward(tmp_path, partial):
    sd = official_deform_state_dict(partial=partial, **SMALL)
    ckpt = save_official(tmp_path / "den.pth", sd)
    net = load_network(
        DeformDenoiser, official.import_weights(KIND[partial], ckpt, tmp_path / "den", 48)
    ).eval()
    assert net.config.width == 64 and net.config.depth == 2 and net.config.block_type == "interleaved"
    assert net.config.obs_pair is (not partial) and net.config.obs_source is partial
    diff, ref = _max_diff(net, sd, *_inputs(batch=4), partial)
    print(f"{KIND[partial]}: max |latent4d - official| = {diff:.2e} (denoised up to {ref.abs().max():.2f})")
    assert ref.abs().max() > 0.1
    assert diff < TOL


@pytest.mark.parametrize("partial", [False, True])
def test_imported_matches_official_forward_paper_size(partial):
    """Paper widths (512, 8 x 64 heads, 1 x 512 observation attention, 512 x 32 deformation latents, 512 x 8
    shape latents, 300 observed points, 5 frames as the official training; 2 of the 12 blocks)."""
    sd = official_deform_state_dict(seed=3, partial=partial, **PAPER_WIDTH)
    net = official.convert(SPEC[partial], sd, 512, "test")
    x, _, shape, obs = _inputs(n=300, m=512, seed=2, batch=1)
    diff, ref = _max_diff(net, sd, x, torch.tensor([3.0]), shape, obs, partial)
    print(f"{KIND[partial]} paper size: max |latent4d - official| = {diff:.2e} (up to {ref.abs().max():.2f})")
    assert diff < TOL


@pytest.mark.parametrize("partial", [False, True])
def test_more_points_than_tokens_take_the_same_samples(partial):
    """N > M observed points: the official encoders' FPS path (sparse: frame-0 samples in every frame of source
    and target; partial: each frame's own), given latent4d's FPS indices (started at index 0)."""
    sd = official_deform_state_dict(seed=4, partial=partial, **SMALL)
    net = official.convert(SPEC[partial], sd, 12, "test")
    x, sigma, shape, obs = _inputs(n=30, m=12, frames=3, seed=5)
    B, T = obs.shape[:2]
    if partial:
        idx = farthest_point_sampling(obs.reshape(B * T, -1, 3), 12).view(B, T, 12)
        idx = (idx[:, :1].expand(-1, T - 1, -1), idx[:, 1:])
    else:
        idx = farthest_point_sampling(obs[:, 0], 12)
    diff = _max_diff(net, sd, x, sigma, shape, obs, partial, idx)[0]
    assert diff < TOL
    assert _max_diff(net, sd, x, sigma, shape, obs, partial, None)[0] > 1e-2  # all 30 points: not the same


def test_a_wrong_mapping_would_be_caught():
    """The comparison can fail: the shape and observation cross-attentions swapped (sparse), the source and
    target observation attentions swapped (partial), latent4d's time scale, or unswapped AdaLN rows."""
    inputs = _inputs(n=16, m=16, frames=3)
    for partial, (a, b) in ((False, ("attn2", "attn5")), (True, ("attn5", "attn6"))):
        sd = official_deform_state_dict(partial=partial, **SMALL)
        net = official.convert(SPEC[partial], sd, 16, "test")
        assert _max_diff(net, sd, *inputs, partial)[0] < TOL
        net.time.scale = 1000.0
        assert _max_diff(net, sd, *inputs, partial)[0] > 1e-2
        swapped = {
            k.replace(f".{a}.", ".tmp.").replace(f".{b}.", f".{a}.").replace(".tmp.", f".{b}."): v
            for k, v in sd.items()
        }
        net = official.convert(SPEC[partial], swapped, 16, "test")
        assert _max_diff(net, sd, *inputs, partial)[0] > 1e-2
    bad = dict(sd)
    for k in [k for k in sd if k.endswith("norm3.linear.weight")]:
        bad[k] = torch.cat(sd[k].chunk(2)[::-1])
    net = official.convert(official.PARTIAL_DIFFUSION, bad, 16, "test")
    assert _max_diff(net, sd, *inputs, True)[0] > 1e-2


def test_imported_sampler_matches_official_sampler():
    """latent4d's EDM Heun sampler with the imported sparse denoiser vs the official edm_sampler with the official
    forward, from the same initial noise (18 steps)."""
    sd = official_deform_state_dict(seed=5, **SMALL)
    net = official.convert(official.DEFORM_DIFFUSION, sd, 16, "test")
    x, _, shape, obs = _inputs(n=16, m=16, frames=3, seed=6)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    cond = dict(shape_latents=shape, obs=obs)
    with torch.no_grad():
        ours = EDM(init_noise="sigma_max").sample(net, x.shape, steps=18, sampler="heun", noise=noise, **cond)
        ref = official_heun(lambda v, s: official_deform_precond(sd, v, s, shape, obs, False), noise)
    diff = (ours - ref).abs().max().item()
    print(
        f"18-step Heun sampling: max |latent4d - official| = {diff:.2e} (samples up to {ref.abs().max():.2f})"
    )
    assert diff < TOL


# ----------------------------------------------------------------------------------------------
# refused checkpoints


@pytest.mark.parametrize("partial", [False, True])
def test_the_other_variant_is_named(tmp_path, capsys, partial):
    """A sparse-input checkpoint imported as the partial kind (and the reverse) names the right kind."""
    ckpt = save_official(tmp_path / "den.pth", official_deform_state_dict(partial=partial, **SMALL))
    fails(capsys, ["import-weights", KIND[not partial], ckpt, tmp_path / "out"], "den.pth", KIND[partial])
    assert not (tmp_path / "out").exists()


def test_mismatched_keys_are_listed(tmp_path, capsys):
    sd = official_deform_state_dict(**SMALL)
    del sd["model.transformer_blocks.1.attn5.to_out.0.bias"]
    sd["model.transformer_blocks.0.attn6.to_q.weight"] = torch.ones(64, 64)
    sd["model.proj_in.weight"] = torch.zeros(64, 16)
    fails(
        capsys,
        ["import-weights", "m2v-deform-diffusion", save_official(tmp_path / "den.pth", sd), tmp_path / "out"],
        "den.pth",
        "1 missing (model.transformer_blocks.1.attn5.to_out.0.bias)",
        "1 unexpected (model.transformer_blocks.0.attn6.to_q.weight)",
        "1 mis-shaped",
        "model.proj_out.weight (32, 64) vs (16, 64)",
    )
    with pytest.raises(InputError, match="model.shape_cond_proj.weight' is missing"):
        official.convert(
            official.DEFORM_DIFFUSION, {k: v for k, v in sd.items() if "shape_cond" not in k}, 48, "t"
        )


# ----------------------------------------------------------------------------------------------
# use and training


def test_defaults_unchanged_for_saved_networks(tmp_path):
    """A deformation denoiser saved before the official options existed (no such keys in config.json) loads
    with latent4d's layout and gives the same output."""
    torch.manual_seed(0)
    net = DeformDenoiser(num_latents=16, width=32, heads=2, dim_head=16, depth=1, num_frames=5).eval()
    net.save_pretrained(tmp_path / "old")
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for k in (
        "obs_heads",
        "obs_dim_head",
        "obs_modes",
        "obs_final_norm",
        "obs_pair",
        "obs_source",
        "shape_proj",
    ):
        del cfg[k]
    for k in (
        "frame_embedding",
        "adaln_gate",
        "context_norm",
        "norm_eps",
        "io_bias",
        "out_affine",
        "drop_path",
    ):
        del cfg[k]
    cfg_path.write_text(json.dumps(cfg))
    old = load_network(DeformDenoiser, tmp_path / "old").eval()
    assert (
        old.frame_embed is not None and old.blocks[0].gate and isinstance(old.shape_in, torch.nn.Sequential)
    )
    x, sigma, shape, obs = _inputs(m=16)
    cond = dict(shape_latents=shape, obs=obs)
    with torch.no_grad():
        assert torch.equal(EDM().denoise(net, x, sigma, **cond), EDM().denoise(old, x, sigma, **cond))


def test_official_layout_trains():
    """The partial official layout at a small size: every weight (the source attention included) gets a finite
    gradient from the EDM loss; DropPath acts in training only."""
    net = DeformDenoiser(
        **official.partial_diffusion_config(official_deform_state_dict(partial=True, **SMALL), 16, "t")
    )
    torch.nn.init.normal_(net.proj_out.weight, std=0.02)  # zero-initialised: nothing would reach the blocks
    for name, p in net.named_parameters():
        if ".mod." in name:
            torch.nn.init.normal_(
                p, std=0.02
            )  # AdaLN modulation starts at zero: its input would get no gradient
    x, _, shape, obs = _inputs(n=16, m=16, frames=3, batch=8)
    EDM().loss(net.train(), x, shape_latents=shape, obs=obs).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    sigma = torch.ones(8)
    with torch.no_grad():
        a, b = (EDM().denoise(net, x, sigma, shape_latents=shape, obs=obs) for _ in range(2))
        net.eval()
        c, d = (EDM().denoise(net, x, sigma, shape_latents=shape, obs=obs) for _ in range(2))
    assert not torch.equal(a, b) and torch.equal(c, d)


def test_reconstruct_motion_with_imported_networks(tmp_path, capsys):
    """The four imported networks in one folder (shape_ae, deform_ae, shape_denoiser, deform_denoiser) run
    `latent4d reconstruct motion method=diffusion shape_run=OUT deform_run=OUT` (a template for frame 0: the
    random-weight shape decoder has no surface to mesh): the imported deformation denoiser moves it."""
    import trimesh

    out = tmp_path / "official"
    ae = dict(width=64, depth=1, inner=128, freqs=8)
    parts = {
        "shape_ae": ("m2v-shape-ae", _ae.official_state_dict(seed=1, channels=8, **ae)),
        "deform_ae": ("m2v-deform-ae", _ae.official_state_dict(seed=2, channels=32, point_width=32, out_dim=3, **ae)),
        "shape_denoiser": ("m2v-shape-diffusion", _sd.official_diffusion_state_dict(seed=3, width=64, depth=1, channels=8, freqs=8)),
        "deform_denoiser": ("m2v-deform-diffusion", official_deform_state_dict(seed=4, **SMALL)),
    }  # fmt: skip
    for name, (kind, sd) in parts.items():
        ckpt = save_official(tmp_path / f"{name}.pth", sd)
        rc, err = call(capsys, "import-weights", kind, ckpt, out / name, "--num-latents", "32")
        assert rc == 0, err
    assert (
        json.loads((out / "deform_denoiser" / "config.json").read_text())["num_frames"]
        == official.OFFICIAL_WINDOW
    )
    g = np.random.default_rng(0)
    clip = (g.standard_normal((1, 200, 3)) * 0.2 + np.linspace(0, 0.1, 4)[:, None, None]).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    sphere.export(tmp_path / "template.ply")
    rc, err = call(
        capsys, "reconstruct", "motion", f"input={tmp_path / 'clip.npy'}", f"shape_run={out}", f"deform_run={out}",
        f"template={tmp_path / 'template.ply'}", f"out={tmp_path / 'rec'}", "render=false", "steps=2", "n_obs=32",
        "guidance=0", "fuse=false",
    )  # fmt: skip
    assert rc == 0, err
    v = np.load(tmp_path / "rec" / "sample_00" / "trajectories.npz")["vertices"]
    assert v.shape == (4, len(sphere.vertices), 3) and np.isfinite(v).all()
    assert np.abs(v[1:] - v[:1]).max() > 1e-3  # the sampled deformations moved the template
