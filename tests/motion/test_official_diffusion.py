"""Official Motion2VecSets shape denoiser (issue 22): ``model=motion_shape_diffusion_official`` and
``latent4d import-weights m2v-shape-diffusion``.

Checkpoints are fabricated in the official layout (``EDMPrecond``: ``model.`` the LatentArrayTransformer,
``cond_enc.`` its Scan2latent observation encoder; official names and shapes, random weights). The imported
network, driven through :meth:`latent4d.diffusion.edm.EDM.denoise`, is compared with the official forward
written here from the equations: EDM preconditioning (sigma_data 1, c_noise = ln(sigma) / 4 unscaled), the
sinusoidal noise embedding + two SiLU layers, plain AdaLN blocks (LayerNorm * (1 + scale) + shift, rows
(scale, shift)), separate q / k / v projections, GEGLU feed-forward, the one-head observation encoder.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import call, fails

from latent4d.diffusion.edm import EDM
from latent4d.errors import InputError
from latent4d.motion import official
from latent4d.motion.denoiser import ShapeDenoiser
from latent4d.trust import load_network


def _load_ae_reference():
    """The autoencoders' reference forward (tests/motion/test_official.py; test folders are no packages and
    pytest runs with --import-mode=importlib, so it is loaded by path)."""
    path = Path(__file__).with_name("test_official.py")
    spec = importlib.util.spec_from_file_location("_m2v_official_ae_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_ae = _load_ae_reference()
_attention, _embed, _geglu_ff, _linear, _ln = _ae._attention, _ae._embed, _ae._geglu_ff, _ae._linear, _ae._ln
ae_state_dict, save_official = _ae.official_state_dict, _ae.save_official

SMALL = dict(width=128, depth=2, channels=8, freqs=8)  # 8 heads x 16
PAPER = dict(width=512, depth=12, channels=8, freqs=8)
PAPER_WIDTH = dict(PAPER, depth=2)  # paper widths, 2 of the 12 blocks (CPU test time)
TOL = 1e-4


def official_diffusion_shapes(width: int, depth: int, channels: int, freqs: int) -> dict:
    """Tensor names and shapes of the official shape ``EDMPrecond`` (``models_diff.py``, t_channels 256)."""
    shapes: dict[str, tuple] = {
        "model.proj_in.weight": (width, channels),
        "model.map_layer0.weight": (width, 256),
        "model.map_layer0.bias": (width,),
        "model.map_layer1.weight": (width, width),
        "model.map_layer1.bias": (width,),
        "model.norm.weight": (width,),
        "model.norm.bias": (width,),
        "model.proj_out.weight": (channels, width),
    }
    for i in range(depth):
        p = f"model.transformer_blocks.{i}"
        for n in ("norm1", "norm2", "norm4"):
            shapes.update(
                {f"{p}.{n}.linear.weight": (2 * width, width), f"{p}.{n}.linear.bias": (2 * width,)}
            )
        for a in ("attn1", "attn2"):
            shapes.update({f"{p}.{a}.to_{c}.weight": (width, width) for c in "qkv"})
            shapes.update({f"{p}.{a}.to_out.0.weight": (width, width), f"{p}.{a}.to_out.0.bias": (width,)})
        shapes.update(
            {
                f"{p}.ff.net.0.proj.weight": (8 * width, width),
                f"{p}.ff.net.0.proj.bias": (8 * width,),
                f"{p}.ff.net.2.weight": (width, 4 * width),
                f"{p}.ff.net.2.bias": (width,),
            }
        )
    return shapes


def official_diffusion_state_dict(seed: int = 0, **size) -> dict[str, torch.Tensor]:
    """Random weights in the official layout; the observation encoder is the autoencoders' encoder
    (``point_embed`` + ``cross_attend_blocks``) under ``cond_enc.``."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_diffusion_shapes(**size).items():
        sd[k] = torch.randn(shape, generator=g) / math.sqrt(shape[-1] if len(shape) == 2 else 1)
        if k == "model.norm.weight":
            sd[k] = 1.0 + 0.1 * torch.randn(shape, generator=g)
    ae = ae_state_dict(seed + 1, **size, inner=size["width"])
    sd.update(
        {f"cond_enc.{k}": v for k, v in ae.items() if k.startswith(("point_embed.", "cross_attend_blocks."))}
    )
    return sd


def _sub(sd: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _attention_qkv(x, context, sd, p, heads):
    """The official models_diff CrossAttention: separate bias-free q / k / v, 1 / sqrt(d) scale, to_out.0."""
    kv = torch.cat([sd[f"{p}.to_k.weight"], sd[f"{p}.to_v.weight"]])
    own = {f"{p}.to_q.weight": sd[f"{p}.to_q.weight"], f"{p}.to_kv.weight": kv}
    own.update({f"{p}.to_out.{leaf}": sd[f"{p}.to_out.0.{leaf}"] for leaf in ("weight", "bias")})
    return _attention(x, context, own, p, heads)


def official_denoiser(sd, x_in, c_noise, pc, heads: int = 8):
    """F(c_in x, c_noise; pc) of the official LatentArrayTransformer with its Scan2latent condition."""
    enc = _sub(sd, "cond_enc.")
    pe = _embed(pc, enc)  # every observed point is a query (N <= 512: no FPS in the official code)
    h = pe + _attention(
        _ln(pe, enc, "cross_attend_blocks.0.norm"),
        _ln(pe, enc, "cross_attend_blocks.0.norm_context"),
        enc,
        "cross_attend_blocks.0.fn",
        heads=1,
    )
    cond = h + _geglu_ff(_ln(h, enc, "cross_attend_blocks.1.norm"), enc, "cross_attend_blocks.1.fn")
    freqs = (1.0 / 10000) ** (torch.arange(128, dtype=torch.float32) / 128)
    ang = c_noise[:, None] * freqs
    t = F.silu(_linear(torch.cat([ang.cos(), ang.sin()], dim=1), sd, "model.map_layer0"))
    t = F.silu(_linear(t, sd, "model.map_layer1"))[:, None]  # (B, 1, D)
    x = x_in @ sd["model.proj_in.weight"].T
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("model.transformer_blocks."))
    for i in range(depth):
        p = f"model.transformer_blocks.{i}"

        def ada(v, n, p=p):
            scale, shift = _linear(t, sd, f"{p}.{n}.linear").chunk(2, dim=-1)
            return F.layer_norm(v, v.shape[-1:], eps=1e-5) * (1 + scale) + shift

        a = ada(x, "norm1")
        x = x + _attention_qkv(a, a, sd, f"{p}.attn1", heads)
        x = x + _attention_qkv(ada(x, "norm2"), cond, sd, f"{p}.attn2", heads)
        v, gate = _linear(ada(x, "norm4"), sd, f"{p}.ff.net.0.proj").chunk(2, dim=-1)
        x = x + _linear(v * F.gelu(gate), sd, f"{p}.ff.net.2")
    return _ln(x, sd, "model.norm") @ sd["model.proj_out.weight"].T


def official_precond(sd, x, sigma, pc):
    """EDMPrecond.forward: D = c_skip x + c_out F(c_in x, ln(sigma) / 4), sigma_data 1."""
    s = sigma.reshape(-1, 1, 1)
    c_skip, c_out, c_in = 1 / (s**2 + 1), s / (s**2 + 1).sqrt(), 1 / (s**2 + 1).sqrt()
    return c_skip * x + c_out * official_denoiser(sd, c_in * x, sigma.log().flatten() / 4, pc)


def _inputs(n=90, m=96, channels=8, seed=1, batch=2):
    g = torch.Generator().manual_seed(seed)
    """Latents (B, M, C), sigma (B,), observed points (B, N, 3); N <= M: every observed point is a token,
    as in the official encoder (which samples only beyond M points)."""
    x = torch.randn(batch, m, channels, generator=g) * 2.0
    sigma = torch.tensor([0.05, 3.0, 40.0, 0.5][:batch])
    return x, sigma, torch.rand(batch, n, 3, generator=g) - 0.5


def _max_diff(net, sd, x, sigma, pc):
    with torch.no_grad():
        ours = EDM().denoise(net, x, sigma, obs=pc)
        ref = official_precond(sd, x, sigma, pc)
    return (ours - ref).abs().max().item(), ref


def _import(tmp_path, sd, num_latents=96, name="den"):
    ckpt = save_official(tmp_path / f"{name}.pth", sd)
    return official.import_weights("m2v-shape-diffusion", ckpt, tmp_path / name, num_latents=num_latents)


# ----------------------------------------------------------------------------------------------
# layout


def test_official_config_is_the_official_layout():
    """model=motion_shape_diffusion_official builds a network whose every tensor is an official one,
    renamed (the q / k / v projections stacked), plus the latent statistics (paper size, meta device)."""
    import tempfile

    from hydra.utils import instantiate

    from latent4d.train import compose_config

    cfg = compose_config(
        ["experiment=motion/shape_diffusion", "model=motion_shape_diffusion_official"], tempfile.mkdtemp()
    )
    with torch.device("meta"):
        net = instantiate(cfg.model.denoiser)
    assert isinstance(net, ShapeDenoiser) and net.config.time_scale == 1.0
    assert net.obs.attn.heads == 1 and net.obs.attn.dim_head == 512 and net.obs.mode is None
    assert not net.blocks[0].gate and net.blocks[0].drop_path.p == 0.1
    own = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    sd = {k: torch.empty(s, device="meta") for k, s in official_diffusion_shapes(**PAPER).items()}
    sd.update({f"cond_enc.{k}": torch.empty(s, device="meta") for k, s in _encoder_shapes(PAPER).items()})
    want = {
        official.rename(k, official.DIFFUSION_RULES): tuple(v.shape)
        for k, v in official.fuse_diffusion(sd).items()
        if k != official.DIFFUSION_BASIS
    }
    want.update({k: (8,) for k in official.SHAPE_DIFFUSION.own})
    assert own == want


def _encoder_shapes(size):
    shapes = _ae.official_shapes(**size, inner=size["width"])
    return {k: s for k, s in shapes.items() if k.startswith(("point_embed.", "cross_attend_blocks."))}


def test_rename_round_trips():
    for k in official.fuse_diffusion(official_diffusion_state_dict(**SMALL)):
        if k == official.DIFFUSION_BASIS:
            continue
        new = official.rename(k, official.DIFFUSION_RULES)
        assert new is not None and official.rename(new, official.DIFFUSION_RULES, reverse=True) == k


# ----------------------------------------------------------------------------------------------
# equivalence


def test_imported_matches_official_forward(tmp_path):
    sd = official_diffusion_state_dict(**SMALL)
    net = load_network(ShapeDenoiser, _import(tmp_path, sd)).eval()
    assert net.config.width == 128 and net.config.depth == 2 and net.config.dim_head == 16
    diff, ref = _max_diff(net, sd, *_inputs(batch=4))
    print(f"max |latent4d - official| = {diff:.2e} (denoised up to {ref.abs().max():.2f})")
    assert ref.abs().max() > 0.1
    assert diff < TOL


def test_imported_matches_official_forward_paper_size():
    """Paper widths (512, 8 x 64 heads, 1 x 512 observation attention, 512 x 8 latents, 300 observed
    points; 2 of the 12 blocks)."""
    sd = official_diffusion_state_dict(seed=3, **PAPER_WIDTH)
    net = official.convert(official.SHAPE_DIFFUSION, sd, 512, "test")
    diff, ref = _max_diff(net, sd, *_inputs(n=300, m=512, seed=2, batch=2))
    print(f"paper size: max |latent4d - official| = {diff:.2e} (denoised up to {ref.abs().max():.2f})")
    assert diff < TOL


def test_a_wrong_mapping_would_be_caught():
    """The comparison can fail: latent4d's time scale (c_noise x 1000) or unswapped AdaLN rows change the output."""
    sd = official_diffusion_state_dict(**SMALL)
    inputs = _inputs()
    net = official.convert(official.SHAPE_DIFFUSION, sd, 96, "test")
    assert _max_diff(net, sd, *inputs)[0] < TOL
    net.time.scale = 1000.0
    assert _max_diff(net, sd, *inputs)[0] > 1e-2
    bad = dict(sd)
    for k in [k for k in sd if k.endswith("norm2.linear.weight")]:
        bad[k] = torch.cat(sd[k].chunk(2)[::-1])
    net = official.convert(official.SHAPE_DIFFUSION, bad, 96, "test")
    assert _max_diff(net, sd, *inputs)[0] > 1e-2


def test_imported_denoiser_samples_in_the_pipeline(tmp_path, capsys):
    """An imported shape AE + shape denoiser sample frame-0 latents and decode them through MotionPipeline."""
    from latent4d.motion.pipeline import MotionPipeline

    ae = save_official(tmp_path / "ae.pth", ae_state_dict(width=64, depth=1, channels=8, inner=128, freqs=8))
    assert call(capsys, "import-weights", "m2v-shape-ae", ae, tmp_path / "ae", "--num-latents", "96")[0] == 0
    ckpt = save_official(tmp_path / "den.pth", official_diffusion_state_dict(**SMALL))
    rc, err = call(
        capsys, "import-weights", "m2v-shape-diffusion", ckpt, tmp_path / "den", "--num-latents", "96"
    )
    assert rc == 0, err
    cfg = json.loads((tmp_path / "den" / "config.json").read_text())
    assert cfg["_class_name"] == "ShapeDenoiser" and cfg["time_scale"] == 1.0 and cfg["adaln_gate"] is False
    pipe = MotionPipeline.from_runs(shape_ae=tmp_path / "ae", shape_diffusion=tmp_path / "den")
    pc = _inputs(n=300)[2][0].numpy()
    z = pipe.sample_shape(pc, steps=3, generator=torch.Generator().manual_seed(0))
    assert z.shape == (1, 96, 8) and torch.isfinite(z).all()


def test_defaults_unchanged_for_saved_networks(tmp_path):
    """A denoiser saved before the official options existed (no such keys in config.json) loads with
    latent4d's layout and gives the same output."""
    torch.manual_seed(0)
    net = ShapeDenoiser(num_latents=16, width=32, heads=2, dim_head=16, depth=1).eval()
    net.save_pretrained(tmp_path / "old")
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    new = (
        "obs_heads",
        "obs_dim_head",
        "obs_modes",
        "obs_final_norm",
        "adaln_gate",
        "context_norm",
        "norm_eps",
    )
    for k in (*new, "io_bias", "out_affine", "drop_path"):
        del cfg[k]
    cfg_path.write_text(json.dumps(cfg))
    old = load_network(ShapeDenoiser, tmp_path / "old").eval()
    assert old.obs.mode is not None and old.blocks[0].gate and old.proj_in.bias is not None
    x, sigma, pc = _inputs(m=16)
    with torch.no_grad():
        assert torch.equal(EDM().denoise(net, x, sigma, obs=pc), EDM().denoise(old, x, sigma, obs=pc))


# ----------------------------------------------------------------------------------------------
# refused checkpoints


def test_mismatched_keys_are_listed(tmp_path, capsys):
    sd = official_diffusion_state_dict(**SMALL)
    del (
        sd["model.transformer_blocks.1.ff.net.2.bias"],
        sd["cond_enc.cross_attend_blocks.0.norm_context.weight"],
    )
    sd["model.transformer_blocks.0.attn3.to_q.weight"] = torch.ones(128, 128)
    sd["model.proj_out.weight"] = torch.zeros(4, 128)
    ckpt = save_official(tmp_path / "den.pth", sd)
    fails(
        capsys,
        ["import-weights", "m2v-shape-diffusion", ckpt, tmp_path / "out"],
        "den.pth",
        "2 missing",
        "model.transformer_blocks.1.ff.net.2.bias",
        "cond_enc.cross_attend_blocks.0.norm_context.weight",
        "1 unexpected",
        "model.transformer_blocks.0.attn3.to_q.weight",
        "1 mis-shaped",
        "model.proj_out.weight (4, 128) vs (8, 128)",
    )
    assert not (tmp_path / "out").exists()


def test_a_missing_projection_is_named(tmp_path):
    """A self-attention missing its key projection: the stacked projection is reported missing and its
    remaining parts unexpected (nothing is guessed)."""
    sd = official_diffusion_state_dict(**SMALL)
    del sd["model.transformer_blocks.0.attn1.to_k.weight"]
    with pytest.raises(InputError, match=r"missing \(model.transformer_blocks.0.attn1.to_qkv.weight\)") as e:
        official.convert(official.SHAPE_DIFFUSION, sd, 96, "test")
    assert "model.transformer_blocks.0.attn1.to_v.weight" in str(e.value)


def test_an_autoencoder_is_not_a_denoiser(tmp_path, capsys):
    ckpt = save_official(
        tmp_path / "ae.pth", ae_state_dict(width=64, depth=1, channels=8, inner=128, freqs=8)
    )
    fails(
        capsys,
        ["import-weights", "m2v-shape-diffusion", ckpt, tmp_path / "out"],
        "ae.pth",
        "model.proj_in.weight",
    )
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# sampling and training


def official_heun(denoise, latents, num_steps=18, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    """The official ``edm_sampler`` (EDM Algorithm 1, deterministic: S_churn 0): Karras sigmas, x in float64,
    Heun steps with an Euler last step to sigma 0; ``denoise(x, sigma)`` the preconditioned network."""
    i = torch.arange(num_steps, dtype=torch.float64)
    t = (
        sigma_max ** (1 / rho) + i / (num_steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))
    ) ** rho
    t = torch.cat([t, torch.zeros(1, dtype=torch.float64)])
    x = latents.double() * t[0]
    for k in range(num_steps):
        d = (x - denoise(x.float(), t[k].float().expand(len(x))).double()) / t[k]
        x_next = x + (t[k + 1] - t[k]) * d
        if k < num_steps - 1:
            d2 = (x_next - denoise(x_next.float(), t[k + 1].float().expand(len(x))).double()) / t[k + 1]
            x_next = x + (t[k + 1] - t[k]) * (0.5 * d + 0.5 * d2)
        x = x_next
    return x.float()


def test_imported_sampler_matches_official_sampler():
    """latent4d's EDM Heun sampler with the imported denoiser vs the official edm_sampler with the official
    forward, from the same initial noise (18 steps)."""
    sd = official_diffusion_state_dict(seed=5, **SMALL)
    net = official.convert(official.SHAPE_DIFFUSION, sd, 96, "test")
    x, _, pc = _inputs(seed=6)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ours = EDM(init_noise="sigma_max").sample(net, x.shape, steps=18, sampler="heun", noise=noise, obs=pc)
        # diffusers' initial sigma, sqrt(80^2 + 1): a measurable difference (the comparison can fail)
        other = EDM().sample(net, x.shape, steps=18, sampler="heun", noise=noise, obs=pc)
        ref = official_heun(lambda v, s: official_precond(sd, v, s, pc), noise)
    diff = (ours - ref).abs().max().item()
    print(
        f"18-step Heun sampling: max |latent4d - official| = {diff:.2e} (samples up to {ref.abs().max():.2f})"
    )
    assert diff < TOL
    assert (other - ref).abs().max() > diff


def test_official_layout_trains():
    """The official layout at a small size: DropPath acts in training only, the EDM loss has gradients
    everywhere."""
    net = ShapeDenoiser(**official.shape_diffusion_config(official_diffusion_state_dict(**SMALL), 96, "test"))
    torch.nn.init.normal_(
        net.proj_out.weight, std=0.02
    )  # zero-initialised: F would be 0 whatever DropPath does
    x, _, pc = _inputs()
    loss = EDM().loss(net.train(), x, obs=pc).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    sigma = torch.ones(2)
    with torch.no_grad():
        a, b = EDM().denoise(net, x, sigma, obs=pc), EDM().denoise(net, x, sigma, obs=pc)
        net.eval()
        c, d = EDM().denoise(net, x, sigma, obs=pc), EDM().denoise(net, x, sigma, obs=pc)
    assert not torch.equal(a, b) and torch.equal(c, d)
