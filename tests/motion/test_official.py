"""Official Motion2VecSets / 3DShape2VecSet weights (issue 22): ``latent4d import-weights m2v-shape-ae`` and
``m2v-deform-ae``.

Checkpoints are fabricated in the official layout (``{"model": state_dict, "args": argparse.Namespace,
...}`` with the official tensor names and shapes, random weights). The imported network is compared with a
direct reimplementation of the official forward written here from the paper's equations (pre-norm
attention blocks, one-head cross-attentions, GEGLU feed-forward, the KL bottleneck, the query decoder), on
the same inputs and the same farthest-point indices (started at index 0).
"""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import Payload, call, fails

from latent4d.errors import InputError
from latent4d.geometry.sampling import farthest_point_sampling
from latent4d.motion import official
from latent4d.motion.deform import DeformVecSetAE
from latent4d.motion.vecset import ShapeVecSetAE
from latent4d.trust import load_network

SMALL = dict(width=64, depth=3, channels=8, inner=128, freqs=8)  # inner: 8 heads x 16 in the latent layers
PAPER = dict(width=512, depth=24, channels=8, inner=512, freqs=8)
PAPER_WIDTH = dict(PAPER, depth=4)  # the forward at paper widths, fewer latent layers (CPU test time)
DEFORM_SMALL = dict(
    SMALL, channels=32, point_width=32, out_dim=3
)  # official: point / query width = width / 2
DEFORM_PAPER = dict(PAPER, channels=32, point_width=256, out_dim=3)
TOL = 1e-4


# ----------------------------------------------------------------------------------------------
# the official layout and forward, from the paper's equations


def _assert_official_shapes(net, spec, shapes: dict) -> None:
    """Every tensor of ``net`` is an official tensor (renamed by ``spec``) with the official shape."""
    own = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    want = {official.rename(k, spec.rules): s for k, s in shapes.items() if k != official.BASIS}
    assert own == want


def official_shapes(
    width: int,
    depth: int,
    channels: int,
    inner: int,
    freqs: int,
    point_width: int | None = None,
    out_dim: int = 1,
) -> dict[str, tuple]:
    """Tensor names and shapes of the official ``KLAutoEncoder`` state dict (``models_ae.py``); with
    ``point_width`` (width / 2) and ``out_dim=3``, of ``KLAutoEncoder_deform``."""
    pw = point_width or width
    shapes: dict[str, tuple] = {
        "point_embed.basis": (3, 3 * freqs),
        "point_embed.mlp.weight": (pw, 6 * freqs + 3),
        "point_embed.mlp.bias": (pw,),
    }

    def norm(p, d):
        shapes.update({f"{p}.weight": (d,), f"{p}.bias": (d,)})

    def attn(p, q_dim, inner_dim):
        shapes.update(
            {
                f"{p}.to_q.weight": (inner_dim, q_dim),
                f"{p}.to_kv.weight": (2 * inner_dim, width),
                f"{p}.to_out.weight": (q_dim, inner_dim),
                f"{p}.to_out.bias": (q_dim,),
            }
        )

    def ff(p):
        shapes.update(
            {
                f"{p}.net.0.weight": (8 * width, width),
                f"{p}.net.0.bias": (8 * width,),
                f"{p}.net.2.weight": (width, 4 * width),
                f"{p}.net.2.bias": (width,),
            }
        )

    def linear(p, d_out, d_in):
        shapes.update({f"{p}.weight": (d_out, d_in), f"{p}.bias": (d_out,)})

    norm("cross_attend_blocks.0.norm", width)
    norm("cross_attend_blocks.0.norm_context", width)
    attn("cross_attend_blocks.0.fn", width, width)
    norm("cross_attend_blocks.1.norm", width)
    ff("cross_attend_blocks.1.fn")
    for i in range(depth):
        norm(f"layers.{i}.0.norm", width)
        attn(f"layers.{i}.0.fn", width, inner)
        norm(f"layers.{i}.1.norm", width)
        ff(f"layers.{i}.1.fn")
    norm("decoder_cross_attn.norm", pw)
    norm("decoder_cross_attn.norm_context", width)
    attn("decoder_cross_attn.fn", pw, width)
    linear("to_outputs", out_dim, pw)
    linear("proj", width, channels)
    linear("mean_fc", channels, width)
    linear("logvar_fc", channels, width)
    return shapes


def official_state_dict(seed: int = 0, **size) -> dict[str, torch.Tensor]:
    """Random weights in the official layout (norms and biases random too, so a swapped name shows)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_shapes(**size).items():
        fan_in = shape[-1] if len(shape) == 2 else 1
        sd[k] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        if k.endswith("norm.weight") or k.endswith("norm_context.weight"):
            sd[k] = 1.0 + 0.1 * torch.randn(shape, generator=g)
    e = (2.0 ** torch.arange(size["freqs"])).float() * math.pi
    z = torch.zeros(size["freqs"])
    sd["point_embed.basis"] = torch.stack([torch.cat([e, z, z]), torch.cat([z, e, z]), torch.cat([z, z, e])])
    return sd


def _ln(x, sd, p):
    return F.layer_norm(x, x.shape[-1:], sd[f"{p}.weight"], sd[f"{p}.bias"])


def _linear(x, sd, p):
    return x @ sd[f"{p}.weight"].T + sd[f"{p}.bias"]


def _attention(x, context, sd, p, heads):
    """softmax(Q K^T / sqrt(d)) V per head, Q = x W_q, [K, V] = context W_kv, then W_out."""
    q = x @ sd[f"{p}.to_q.weight"].T
    k, v = (context @ sd[f"{p}.to_kv.weight"].T).chunk(2, dim=-1)
    B, N, inner = q.shape
    d = inner // heads
    q, k, v = (t.reshape(B, t.shape[1], heads, d).transpose(1, 2) for t in (q, k, v))
    a = torch.softmax(q @ k.transpose(-1, -2) * d**-0.5, dim=-1)
    out = (a @ v).transpose(1, 2).reshape(B, N, inner)
    return _linear(out, sd, f"{p}.to_out")


def _geglu_ff(x, sd, p):
    h, gate = _linear(x, sd, f"{p}.net.0").chunk(2, dim=-1)
    return _linear(h * F.gelu(gate), sd, f"{p}.net.2")


def _embed(x, sd):
    proj = torch.einsum("bnd,de->bne", x, sd["point_embed.basis"])
    return _linear(torch.cat([proj.sin(), proj.cos(), x], dim=-1), sd, "point_embed.mlp")


def _gather(pc, idx):
    return torch.gather(pc, 1, idx[..., None].expand(-1, -1, 3))


def official_forward(sd, pc, queries, idx, eps=None):
    """The official KLAutoEncoder: encode (FPS queries ``idx``) -> posterior -> decode -> logits (B, Q),
    kl (B,). ``eps``: the posterior's noise (None: the mean)."""
    logits, kl = official_vecset(sd, _embed(_gather(pc, idx), sd), _embed(pc, sd), queries, eps)
    return logits.squeeze(-1), kl


def official_deform_forward(sd, src, tgt, queries, idx, eps=None):
    """The official KLAutoEncoder_deform: encoder tokens are [embed(source), embed(target)] (FPS of the
    source, reused on the target) -> posterior -> decode -> target positions (B, Q, 3), kl (B,)."""
    qe = torch.cat([_embed(_gather(src, idx), sd), _embed(_gather(tgt, idx), sd)], dim=-1)
    pe = torch.cat([_embed(src, sd), _embed(tgt, sd)], dim=-1)
    return official_vecset(sd, qe, pe, queries, eps)


def official_vecset(sd, qe, pe, queries, eps=None, heads: int = 8):
    """What both official autoencoders share: query tokens ``qe`` cross-attend to point tokens ``pe``,
    the KL bottleneck, the latent layers and the query decoder -> (output (B, Q, out_dim), kl (B,))."""
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
    x = (
        _attention(
            _ln(qe, sd, "cross_attend_blocks.0.norm"),
            _ln(pe, sd, "cross_attend_blocks.0.norm_context"),
            sd,
            "cross_attend_blocks.0.fn",
            heads=1,
        )
        + qe
    )
    x = _geglu_ff(_ln(x, sd, "cross_attend_blocks.1.norm"), sd, "cross_attend_blocks.1.fn") + x
    mean, logvar = _linear(x, sd, "mean_fc"), _linear(x, sd, "logvar_fc").clamp(-30.0, 20.0)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean(dim=(1, 2))
    z = mean if eps is None else mean + (0.5 * logvar).exp() * eps
    x = _linear(z, sd, "proj")
    for i in range(depth):
        h = _ln(x, sd, f"layers.{i}.0.norm")
        x = _attention(h, h, sd, f"layers.{i}.0.fn", heads) + x
        x = _geglu_ff(_ln(x, sd, f"layers.{i}.1.norm"), sd, f"layers.{i}.1.fn") + x
    qe = _embed(queries, sd)
    lat = _attention(
        _ln(qe, sd, "decoder_cross_attn.norm"),
        _ln(x, sd, "decoder_cross_attn.norm_context"),
        sd,
        "decoder_cross_attn.fn",
        heads=1,
    )
    return _linear(lat, sd, "to_outputs"), kl


def save_official(path, sd, extra=None):
    """What the official training scripts write (misc.save_model)."""
    args = argparse.Namespace(
        batch_size=64,
        epochs=800,
        kl_weight=1e-3,
        config_path="configs/DFAUST/shape.yaml",
        device="cuda",
        clip_grad=None,
        distributed=False,
    )
    torch.save(
        {
            "model": sd,
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
            "epoch": 799,
            "scaler": {"scale": 65536.0, "_growth_tracker": 0},
            "args": args,
            **(extra or {}),
        },
        path,
    )
    return path


def _inputs(n=600, q=700, seed=1, batch=2):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, n, 3, generator=g) - 0.5, torch.rand(batch, q, 3, generator=g) - 0.5


def _max_diff(net, sd, pc, queries, num_latents, sample: bool):
    idx = farthest_point_sampling(pc, num_latents)  # start at index 0 on both sides
    eps = torch.randn(
        len(pc), num_latents, sd["mean_fc.weight"].shape[0], generator=torch.Generator().manual_seed(5)
    )
    with torch.no_grad():
        post = net.encode(pc, sample=sample, generator=torch.Generator().manual_seed(5))
        logits = net.query(net.decode(post.z), queries)
        ref, ref_kl = official_forward(sd, pc, queries, idx, eps if sample else None)
    return max((logits - ref).abs().max().item(), (post.kl() - ref_kl).abs().max().item()), ref


# ----------------------------------------------------------------------------------------------
# layout


def test_official_config_is_the_official_layout():
    """model=motion_shape_ae_official builds a network whose every tensor is an official one, renamed
    (paper size, on the meta device)."""
    import tempfile

    from hydra.utils import instantiate

    from latent4d.train import compose_config

    cfg = compose_config(["experiment=motion/shape_ae", "model=motion_shape_ae_official"], tempfile.mkdtemp())
    with torch.device("meta"):
        net = instantiate(cfg.model.ae)
    assert isinstance(net, ShapeVecSetAE) and net.norm_out is None and not net.decoder.residual
    assert net.encoder.attn.heads == 1 and net.encoder.attn.dim_head == 512
    _assert_official_shapes(net, official.SHAPE_AE, official_shapes(**PAPER))


def test_rename_round_trips():
    for k in official_shapes(**SMALL):
        if k == official.BASIS:
            continue
        new = official.rename(k, official.SHAPE_AE.rules)
        assert new is not None and official.rename(new, official.SHAPE_AE.rules, reverse=True) == k


# ----------------------------------------------------------------------------------------------
# equivalence


@pytest.mark.parametrize("sample", [False, True])
def test_imported_matches_official_forward(tmp_path, sample):
    sd = official_state_dict(**SMALL)
    out = official.import_weights(
        "m2v-shape-ae", save_official(tmp_path / "ae.pth", sd), tmp_path / "ae", num_latents=64
    )
    net = load_network(ShapeVecSetAE, out)
    assert net.config.width == 64 and net.config.depth == 3 and net.config.dim_head == 16
    pc, queries = _inputs()
    diff, ref = _max_diff(net.eval(), sd, pc, queries, 64, sample)
    print(f"max |latent4d - official| = {diff:.2e} (logits up to {ref.abs().max():.2f})")
    assert ref.abs().max() > 0.1  # a forward that does something
    assert diff < TOL


def test_imported_matches_official_forward_paper_size(tmp_path):
    """Paper widths (width 512, 1 x 512 cross-attention heads, 8 x 64 latent heads, 512 x 8 latents, 2048
    input points; 4 of the 24 latent layers)."""
    sd = official_state_dict(seed=3, **PAPER_WIDTH)
    net = official.convert(official.SHAPE_AE, sd, 512, "test")
    pc, queries = _inputs(n=2048, q=1024, seed=2, batch=1)
    diff, ref = _max_diff(net, sd, pc, queries, 512, sample=False)
    print(f"paper size: max |latent4d - official| = {diff:.2e} (logits up to {ref.abs().max():.2f})")
    assert diff < TOL


def test_a_wrong_mapping_would_be_caught(tmp_path):
    """The comparison can fail: swapping two norms in the official weights changes the output."""
    sd = official_state_dict(**SMALL)
    net = official.convert(official.SHAPE_AE, sd, 64, "test")
    bad = dict(sd)
    bad["decoder_cross_attn.norm.weight"], bad["decoder_cross_attn.norm_context.weight"] = (
        sd["decoder_cross_attn.norm_context.weight"],
        sd["decoder_cross_attn.norm.weight"],
    )
    pc, queries = _inputs()
    assert _max_diff(net, bad, pc, queries, 64, sample=False)[0] > 1e-2


def test_imported_folder_runs_in_the_pipeline(tmp_path, capsys):
    from latent4d.motion.pipeline import MotionPipeline

    ckpt = save_official(tmp_path / "ae.pth", official_state_dict(**SMALL))
    rc, err = call(capsys, "import-weights", "m2v-shape-ae", ckpt, tmp_path / "ae", "--num-latents", "64")
    assert rc == 0, err
    cfg = json.loads((tmp_path / "ae" / "config.json").read_text())
    assert cfg["_class_name"] == "ShapeVecSetAE" and cfg["final_norm"] is False
    meta = json.loads((tmp_path / "ae" / official.MARKER).read_text())
    assert meta["epoch"] == 799 and meta["kind"] == "m2v-shape-ae" and len(meta["sha256"]) == 64
    pipe = MotionPipeline.from_runs(shape_ae=tmp_path / "ae")
    z = pipe.encode_shape(_inputs()[0][0].numpy())
    assert z.shape == (1, 64, 8)
    # importing again replaces the earlier import
    assert (
        call(capsys, "import-weights", "m2v-shape-ae", ckpt, tmp_path / "ae", "--num-latents", "64")[0] == 0
    )


def test_defaults_unchanged_for_saved_networks(tmp_path):
    """A network saved before the official options existed (no such keys in config.json) loads with
    today's layout and gives the same output."""
    torch.manual_seed(0)
    net = ShapeVecSetAE(num_latents=16, width=32, heads=2, dim_head=16, depth=1, decoder_heads=2).eval()
    net.save_pretrained(tmp_path / "old")
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for k in ("encoder_heads", "query_residual", "final_norm", "drop_path"):
        del cfg[k]
    cfg_path.write_text(json.dumps(cfg))
    old = load_network(ShapeVecSetAE, tmp_path / "old").eval()
    assert old.norm_out is not None and old.decoder.residual and old.encoder.attn.heads == 2
    pc, queries = _inputs(n=64, q=32)
    with torch.no_grad():
        a = net.query(net.decode(net.encode(pc, sample=False).z), queries)
        b = old.query(old.decode(old.encode(pc, sample=False).z), queries)
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------------------------
# refused checkpoints


def test_pickle_payload_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"
    ckpt = save_official(tmp_path / "ae.pth", official_state_dict(**SMALL), {"hook": Payload(marker)})
    fails(capsys, ["import-weights", "m2v-shape-ae", ckpt, tmp_path / "out"], "ae.pth", "never unpickles")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_namespace_is_allowed_only_inside_the_import():
    """The allow-list is scoped to the import: a plain latent4d checkpoint load still refuses a Namespace."""
    assert argparse.Namespace not in torch.serialization.get_safe_globals()


def test_mismatched_keys_are_listed(tmp_path, capsys):
    sd = official_state_dict(**SMALL)
    del sd["layers.1.1.fn.net.2.bias"], sd["decoder_cross_attn.norm_context.weight"]
    sd["decoder_ff.norm.weight"] = torch.ones(64)
    sd["to_outputs.weight"] = torch.zeros(2, 64)
    ckpt = save_official(tmp_path / "ae.pth", sd)
    err = fails(
        capsys,
        ["import-weights", "m2v-shape-ae", ckpt, tmp_path / "out"],
        "ae.pth",
        "2 missing",
        "layers.1.1.fn.net.2.bias",
        "decoder_cross_attn.norm_context.weight",
        "1 unexpected",
        "decoder_ff.norm.weight",
        "1 mis-shaped",
        "to_outputs.weight (2, 64) vs (1, 64)",
    )
    assert "to_outputs.weight," not in err.split("missing")[1].split(";")[0]  # mis-shaped, not also missing
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["garbage", "no_model", "basis", "not_official"])
def test_other_files_are_refused(tmp_path, case):
    path = tmp_path / "x.pth"
    sd = official_state_dict(**SMALL)
    if case == "garbage":
        path.write_bytes(b"PK\x03\x04 not a checkpoint")
    elif case == "no_model":
        torch.save({"epoch": 3, "args": argparse.Namespace(lr=1.0)}, path)
    elif case == "basis":
        sd["point_embed.basis"] = sd["point_embed.basis"] * 2
        save_official(path, sd)
    else:
        torch.save({"state_dict": {"encoder.0.weight": torch.zeros(3, 3)}}, path)
    with pytest.raises(InputError, match="x.pth"):
        official.import_weights("m2v-shape-ae", path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_foreign_output_folder_is_kept(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    ckpt = save_official(tmp_path / "ae.pth", official_state_dict(**SMALL))
    fails(capsys, ["import-weights", "m2v-shape-ae", ckpt, out], "out=", official.MARKER)
    assert (out / "notes.txt").read_text() == "keep" and len(list(out.iterdir())) == 1


# ----------------------------------------------------------------------------------------------
# deformation autoencoder


def _deform_inputs(n=600, q=700, seed=4, batch=2):
    g = torch.Generator().manual_seed(seed)
    src = torch.rand(batch, n, 3, generator=g) - 0.5
    return src, src + 0.05 * torch.randn(batch, n, 3, generator=g), torch.rand(batch, q, 3, generator=g) - 0.5


def _deform_diff(net, sd, src, tgt, queries, num_latents, sample: bool):
    idx = farthest_point_sampling(src, num_latents)
    eps = torch.randn(
        len(src), num_latents, sd["mean_fc.weight"].shape[0], generator=torch.Generator().manual_seed(5)
    )
    with torch.no_grad():
        post = net.encode(src, tgt, sample=sample, generator=torch.Generator().manual_seed(5))
        pos = net.query(net.decode(post.z), queries)
        ref, ref_kl = official_deform_forward(sd, src, tgt, queries, idx, eps if sample else None)
    return max((pos - ref).abs().max().item(), (post.kl() - ref_kl).abs().max().item()), ref


def test_official_deform_config_is_the_official_layout():
    import tempfile

    from hydra.utils import instantiate

    from latent4d.train import compose_config

    cfg = compose_config(
        ["experiment=motion/deform_ae", "model=motion_deform_ae_official"], tempfile.mkdtemp()
    )
    with torch.device("meta"):
        net = instantiate(cfg.model.ae)
    assert isinstance(net, DeformVecSetAE) and net.pair_proj is None and net.disp_embed is None
    _assert_official_shapes(net, official.DEFORM_AE, official_shapes(**DEFORM_PAPER))


@pytest.mark.parametrize("sample", [False, True])
def test_imported_deform_matches_official_forward(tmp_path, capsys, sample):
    sd = official_state_dict(seed=7, **DEFORM_SMALL)
    ckpt = save_official(tmp_path / "deform.pth", sd)
    rc, err = call(capsys, "import-weights", "m2v-deform-ae", ckpt, tmp_path / "dae", "--num-latents", "64")
    assert rc == 0, err
    net = load_network(DeformVecSetAE, tmp_path / "dae").eval()
    assert (
        net.config.point_width == 32 and net.config.predict == "position" and net.config.latent_channels == 32
    )
    src, tgt, queries = _deform_inputs()
    diff, ref = _deform_diff(net, sd, src, tgt, queries, 64, sample)
    print(f"deform: max |latent4d - official| = {diff:.2e} (positions up to {ref.abs().max():.2f})")
    assert ref.abs().max() > 0.1 and diff < TOL


def test_imported_deform_matches_official_forward_paper_size():
    sd = official_state_dict(seed=8, **dict(DEFORM_PAPER, depth=4))
    net = official.convert(official.DEFORM_AE, sd, 512, "test")
    src, tgt, queries = _deform_inputs(n=2048, q=1024, batch=1)
    diff, _ = _deform_diff(net, sd, src, tgt, queries, 512, sample=False)
    print(f"deform, paper widths: max |latent4d - official| = {diff:.2e}")
    assert diff < TOL


def test_a_shape_checkpoint_is_not_a_deformation_ae(tmp_path, capsys):
    ckpt = save_official(tmp_path / "ae.pth", official_state_dict(**SMALL))
    fails(capsys, ["import-weights", "m2v-deform-ae", ckpt, tmp_path / "out"], "ae.pth", "half its width")
    assert not (tmp_path / "out").exists()


def test_reconstruct_with_imported_autoencoders(tmp_path, capsys):
    """Both imported folders drive `latent4d reconstruct motion method=autoencoder` (no run folders)."""
    import numpy as np

    src, tgt, _ = _deform_inputs(n=256, batch=1)
    sd = official_state_dict(**SMALL)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-0.4, 0.4, 16)] * 3, indexing="ij"), -1).reshape(
        1, -1, 3
    )
    logits = official_forward(sd, src, grid, farthest_point_sampling(src, 64))[0]
    sd["to_outputs.bias"] -= logits.median()  # random weights: put a zero level inside the box
    call(
        capsys,
        "import-weights",
        "m2v-shape-ae",
        save_official(tmp_path / "s.pth", sd),
        tmp_path / "sae",
        "--num-latents",
        "64",
    )
    call(
        capsys,
        "import-weights",
        "m2v-deform-ae",
        save_official(tmp_path / "d.pth", official_state_dict(seed=7, **DEFORM_SMALL)),
        tmp_path / "dae",
        "--num-latents",
        "64",
    )
    np.save(tmp_path / "clip.npy", torch.cat([src, tgt]).numpy())
    rc, err = call(
        capsys,
        "reconstruct",
        "motion",
        f"input={tmp_path / 'clip.npy'}",
        "method=autoencoder",
        f"shape_ae={tmp_path / 'sae'}",
        f"deform_ae={tmp_path / 'dae'}",
        f"out={tmp_path / 'rec'}",
        "render=false",
        "resolution=32",
        "normalize=false",
    )
    assert rc == 0, err
    assert any((tmp_path / "rec").iterdir())


def test_official_layouts_train():
    """The official layouts train as latent4d's own (DropPath active in training): every weight gets a
    finite gradient from the autoencoders' losses."""
    torch.manual_seed(0)
    official = dict(num_latents=16, width=32, heads=2, dim_head=16, depth=2, decoder_heads=1, encoder_heads=1,
                    query_residual=False, final_norm=False, drop_path=0.1)  # fmt: skip
    shape = ShapeVecSetAE(**official).train()
    deform = DeformVecSetAE(
        **official, point_width=16, pair_projection=False, displacement_features=False, predict="position"
    ).train()
    src, tgt, queries = _deform_inputs(n=64, q=32, batch=8)  # DropPath drops a branch for all 8: 1e-8
    out = shape(src, queries)
    loss = (
        F.binary_cross_entropy_with_logits(out["logits"], (queries.norm(dim=-1) < 0.3).float())
        + out["kl"].mean()
    )
    out = deform(src, tgt, src)
    loss = loss + (out["positions"] - tgt).square().mean() + out["kl"].mean()
    loss.backward()
    for net in (shape, deform):
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
