"""Import the published Motion2VecSets / 3DShape2VecSet checkpoints as latent4d networks.

``latent4d import-weights <kind> <checkpoint.pth> <out_dir>`` (:func:`import_weights`):

* ``m2v-shape-ae``: the official ``KLAutoEncoder`` (``kl_d512_m512_l8``) -> :class:`ShapeVecSetAE` in its
  official layout (``model=motion_shape_ae_official``);
* ``m2v-deform-ae``: the official ``KLAutoEncoder_deform`` (``de_kl_d512_m512_l32``) ->
  :class:`DeformVecSetAE` in its official layout (``model=motion_deform_ae_official``);
* ``m2v-shape-diffusion``: the official shape denoiser ``EDMPrecond`` (``kl_d512_m512_l8_surf300_edm`` /
  ``surf512``) -> :class:`ShapeDenoiser` in its official layout (``model=motion_shape_diffusion_official``),
  driven through :meth:`latent4d.diffusion.edm.EDM.denoise` (the official preconditioning: sigma_data 1,
  c_noise = ln(sigma) / 4 unscaled). Its latents are the shape AE's, unnormalised (statistics: identity);
* ``m2v-deform-diffusion``: the official deformation denoiser for sparse corresponding points (``EDMPrecond`` of
  ``de_kl_d512_m512_l32_surf*_edm`` with ``time_attn``, ``is_corr``; its ``Scan2latent_deform_timeatt`` pair
  encoder) -> :class:`DeformDenoiser` in its official layout (``model=motion_deform_diffusion_official``);
* ``m2v-deform-diffusion-partial``: the same for partial clouds (``is_corr`` False: ``Scan2latent`` on every
  frame, a cross-attention to the source frame's tokens and one to the target frame's) ->
  ``model=motion_deform_diffusion_partial_official``. Both are driven as latent4d's own (frames 1..T-1 given
  frame 0's shape latents and observation: the official ``shape_cond`` / ``cond_src_emb`` repeated over the
  frames, ``cond_tgt_emb`` the frames themselves); their window is :data:`OFFICIAL_WINDOW` frames.

The official training scripts save ``{"model": state_dict, "optimizer": ..., "epoch": int, "scaler": ...,
"args": argparse.Namespace}``. The file is read with ``weights_only=True`` through
:func:`latent4d.trust.load_checkpoint`, with an explicit allow-list of harmless types (:data:`SAFE_TYPES`:
the ``argparse.Namespace`` of the training options, paths): any other Python object named in the pickle
is refused before it is called. Every official tensor is renamed to its latent4d place (:data:`KINDS`);
missing, unexpected and mis-shaped tensors are listed (by their official names) in one
:class:`InputError`; the network's sizes (width, latent channels, depth, Fourier frequencies) come from
the tensor shapes. The result is a ``save_pretrained`` folder (``config.json`` with ``_class_name`` +
``diffusion_pytorch_model.safetensors``, plus :data:`MARKER` naming the source), written atomically: it
loads with :func:`latent4d.trust.load_network` and is accepted wherever a run is
(``latent4d reconstruct motion method=autoencoder shape_ae=<out_dir> ...``).

What the weights do not say: the number of latent queries M (the farthest-point samples of the input
cloud: 512 in every published model; ``num_latents``) and the heads of the latent layers (8 x 64 in the
official code; the encoder and decoder cross-attentions have one head as wide as the network).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import pathlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from latent4d.errors import ConfigError, InputError
from latent4d.motion.deform import DeformVecSetAE
from latent4d.motion.denoiser import DeformDenoiser, ShapeDenoiser
from latent4d.motion.vecset import ShapeVecSetAE

#: types the official checkpoints hold besides tensors and plain containers (rebuilt as data only)
SAFE_TYPES = (
    argparse.Namespace,
    pathlib.PosixPath,
    pathlib.PurePosixPath,
    pathlib.WindowsPath,
    pathlib.PureWindowsPath,
)
#: the file every import writes next to the network (an earlier import may be replaced, nothing else)
MARKER = "imported_from.json"
#: heads x dim_head of the official latent self-attention layers (fixed in models_ae.create_autoencoder)
OFFICIAL_HEADS = 8
#: stochastic depth of the official latent layers (training only)
OFFICIAL_DROP_PATH = 0.1
#: frames per window of the imported deformation denoisers (official: 17-frame sequences; the network
#: itself has no frame embedding and takes any number)
OFFICIAL_WINDOW = 17

#: official -> latent4d tensor names shared by both autoencoders (prefixes; ``{i}`` a layer index)
VECSET_RULES = (
    ("point_embed.mlp.", "point_embed.proj."),
    ("cross_attend_blocks.0.norm.", "encoder.norm_x."),
    ("cross_attend_blocks.0.norm_context.", "encoder.norm_c."),
    ("cross_attend_blocks.0.fn.", "encoder.attn."),
    ("cross_attend_blocks.1.norm.", "encoder.norm_ff."),
    ("cross_attend_blocks.1.fn.net.0.", "encoder.ff.net.0.proj."),
    ("cross_attend_blocks.1.fn.net.2.", "encoder.ff.net.2."),
    ("layers.{i}.0.norm.", "layers.{i}.norm1."),
    ("layers.{i}.0.fn.", "layers.{i}.attn."),
    ("layers.{i}.1.norm.", "layers.{i}.norm2."),
    ("layers.{i}.1.fn.net.0.", "layers.{i}.ff.net.0.proj."),
    ("layers.{i}.1.fn.net.2.", "layers.{i}.ff.net.2."),
    ("decoder_cross_attn.norm.", "decoder.norm_x."),
    ("decoder_cross_attn.norm_context.", "decoder.norm_c."),
    ("decoder_cross_attn.fn.", "decoder.attn."),
    ("proj.", "from_latent."),
    ("mean_fc.", "to_mean."),
    ("logvar_fc.", "to_logvar."),
)
#: the official Fourier basis buffer: checked against the frequencies, not stored (latent4d rebuilds it)
BASIS = "point_embed.basis"
#: the same buffer in the official denoiser's observation encoder
DIFFUSION_BASIS = "cond_enc.point_embed.basis"


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + r"(\d+)".join(re.escape(part) for part in template.split("{i}")))


def rename(key: str, rules: tuple[tuple[str, str], ...], reverse: bool = False) -> str | None:
    """``key`` under the first matching ``(official, latent4d)`` prefix rule (``reverse``: latent4d ->
    official); None when no rule matches."""
    for a, b in rules:
        src, dst = (b, a) if reverse else (a, b)
        m = _pattern(src).match(key)
        if m:
            return (dst.replace("{i}", m.group(1)) if m.groups() else dst) + key[m.end() :]
    return None


# ----------------------------------------------------------------------------------------------
# reading the checkpoint


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The official state dict (official names, ``module.`` prefixes of DDP removed) and what else the
    file says (``epoch``: int or None, ``args``: ``vars(args)`` or {}), read without executing anything
    (see module docstring).

    Raises :class:`InputError` naming the file when it is not a checkpoint of this layout.
    """
    from latent4d.trust import load_checkpoint

    with torch.serialization.safe_globals(list(SAFE_TYPES)):
        ckpt = load_checkpoint(path, what="official checkpoint")
    sd = ckpt.get("model", ckpt.get("state_dict"))
    if sd is None and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt  # a bare state dict
    if not isinstance(sd, dict) or not sd:
        raise InputError(
            f"official checkpoint '{path}' has no 'model' state dict (keys: "
            f"{', '.join(map(str, list(ckpt)[:8]))}); expected the file the official training "
            "scripts save ({'model': state_dict, 'args': ..., ...})"
        )
    bad = [str(k) for k, v in sd.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise InputError(
            f"official checkpoint '{path}': 'model' holds {len(bad)} entries that are not named "
            f"tensors ({', '.join(bad[:4])})"
        )
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    args, epoch = ckpt.get("args"), ckpt.get("epoch")
    return sd, {
        "epoch": epoch if isinstance(epoch, int) else None,
        "args": dict(vars(args)) if isinstance(args, argparse.Namespace) else {},
    }


def _shape(sd: dict, key: str, where: str) -> tuple[int, ...]:
    if key not in sd:
        raise InputError(f"{where}: tensor '{key}' is missing; it is not an official checkpoint of this kind")
    return tuple(sd[key].shape)


def _num_freqs(sd: dict, width: int, n_in: int, where: str, basis: str = BASIS) -> int:
    """Frequencies of the Fourier point embedding (3 * 2F + 3 features), checked against the basis buffer."""
    freqs = (n_in - 3) // 6
    if n_in != 6 * freqs + 3 or freqs < 1:
        raise InputError(
            f"{where}: point_embed.mlp.weight {(width, n_in)} is not a 3DShape2VecSet point "
            "embedding (6 F + 3 inputs)"
        )
    if basis in sd:
        e = (2.0 ** torch.arange(freqs, dtype=torch.float64)) * math.pi
        want = torch.block_diag(e[None], e[None], e[None])
        got = sd[basis].double()
        if tuple(got.shape) != tuple(want.shape) or not torch.allclose(got, want, rtol=1e-5):
            raise InputError(
                f"{where}: {basis} {tuple(got.shape)} is not the 3DShape2VecSet Fourier basis "
                f"(2^k pi, k < {freqs}, per axis); latent4d's embedding would differ"
            )
    return freqs


def _latent_layers(sd: dict, where: str) -> tuple[int, int]:
    """(depth, dim_head) of the official latent self-attention layers."""
    idx = {int(m.group(1)) for k in sd if (m := re.match(r"^layers\.(\d+)\.0\.fn\.to_q\.weight$", k))}
    depth = max(idx, default=-1) + 1
    inner = _shape(sd, "layers.0.0.fn.to_q.weight", where)[0]
    if inner % OFFICIAL_HEADS:
        raise InputError(f"{where}: latent attention width {inner} is not {OFFICIAL_HEADS} heads wide")
    return depth, inner // OFFICIAL_HEADS


def shape_ae_config(sd: dict, num_latents: int, where: str) -> dict:
    """:class:`ShapeVecSetAE` settings of an official ``KLAutoEncoder`` state dict (sizes from shapes)."""
    point_width, n_in = _shape(sd, "point_embed.mlp.weight", where)
    depth, dim_head = _latent_layers(sd, where)
    return dict(
        num_latents=num_latents,
        latent_channels=_shape(sd, "mean_fc.weight", where)[0],
        width=_shape(sd, "cross_attend_blocks.0.norm.weight", where)[0],
        heads=OFFICIAL_HEADS,
        dim_head=dim_head,
        depth=depth,
        num_freqs=_num_freqs(sd, point_width, n_in, where),
        decoder_heads=1,
        encoder_heads=1,
        query_residual=False,
        final_norm=False,
        drop_path=OFFICIAL_DROP_PATH,
    )


def deform_ae_config(sd: dict, num_latents: int, where: str) -> dict:
    """:class:`DeformVecSetAE` settings of an official ``KLAutoEncoder_deform`` state dict: the shape AE's,
    plus a point embedding half the width whose source / target pair is the encoder token."""
    cfg = shape_ae_config(sd, num_latents, where)
    point_width = _shape(sd, "point_embed.mlp.weight", where)[0]
    if 2 * point_width != cfg["width"]:
        raise InputError(
            f"{where}: point embedding {point_width} wide for a {cfg['width']}-wide encoder; the "
            "official deformation AE concatenates two embeddings of half its width"
        )
    return dict(
        cfg, point_width=point_width, pair_projection=False, displacement_features=False, predict="position"
    )


_BLOCK_PREFIX = "model.transformer_blocks.{i}."


def _branch(norm: str, attn: str, our_norm: str, our_attn: str, self_attention: bool = False) -> tuple:
    """Rules of one official block branch (``norm<k>`` AdaLN + ``attn<k>``) -> latent4d's (``our_norm``,
    ``our_attn``): a self-attention's stacked ``to_qkv``, a cross-attention's ``to_q`` + stacked ``to_kv``."""
    src, dst = _BLOCK_PREFIX, "blocks.{i}."
    rules = [(f"{src}{norm}.linear.", f"{dst}{our_norm}.mod.1.")]
    if self_attention:
        rules += [
            (f"{src}{attn}.to_qkv.", f"{dst}{our_attn}.qkv."),
            (f"{src}{attn}.to_out.0.", f"{dst}{our_attn}.to_out."),
        ]
    else:
        rules += [(f"{src}{attn}.to_{p}.", f"{dst}{our_attn}.attn.to_{p}.") for p in ("q", "kv")]
        rules += [(f"{src}{attn}.to_out.0.", f"{dst}{our_attn}.attn.to_out.")]
    return tuple(rules)


#: what the official shape and deformation denoisers share: input, noise embedding, feed-forward, output
#: and the ``Scan2latent`` observation encoder (``cond_enc.``)
_DIFFUSION_COMMON = (
    ("model.proj_in.", "proj_in."),
    ("model.map_layer0.", "time.mlp.linear_1."),
    ("model.map_layer1.", "time.mlp.linear_2."),
    *_branch("norm1", "attn1", "norm1", "attn1", self_attention=True),
    (f"{_BLOCK_PREFIX}norm4.linear.", "blocks.{i}.norm_ff.mod.1."),
    (f"{_BLOCK_PREFIX}ff.net.0.proj.", "blocks.{i}.ff.net.0.proj."),
    (f"{_BLOCK_PREFIX}ff.net.2.", "blocks.{i}.ff.net.2."),
    ("model.norm.", "norm_out."),
    ("model.proj_out.", "proj_out."),
    ("cond_enc.point_embed.mlp.", "obs.embed.proj."),
    ("cond_enc.cross_attend_blocks.0.norm.", "obs.norm_q."),
    ("cond_enc.cross_attend_blocks.0.norm_context.", "obs.norm_kv."),
    ("cond_enc.cross_attend_blocks.0.fn.", "obs.attn."),
    ("cond_enc.cross_attend_blocks.1.norm.", "obs.norm_ff."),
    ("cond_enc.cross_attend_blocks.1.fn.net.0.", "obs.ff.net.0.proj."),
    ("cond_enc.cross_attend_blocks.1.fn.net.2.", "obs.ff.net.2."),
)
#: official shape denoiser (``EDMPrecond``: ``model.`` the LatentArrayTransformer, ``cond_enc.`` its
#: ``Scan2latent``) -> :class:`ShapeDenoiser`. ``to_qkv`` / ``to_kv`` stand for the official separate
#: ``to_q``, ``to_k``, ``to_v`` projections, stacked by :func:`fuse_diffusion` (latent4d projects them in one).
DIFFUSION_RULES = (*_DIFFUSION_COMMON, *_branch("norm2", "attn2", "norm_obs", "obs"))
#: official deformation denoiser (``is_deform``, ``withT``) -> :class:`DeformDenoiser`: ``attn2`` the shape
#: latents (``shape_cond_proj``), ``attn3`` the temporal self-attention; sparse (``is_corr``): ``attn5`` the
#: pair-encoded observation; partial: ``attn5`` the source frame's, ``attn6`` the target frame's observation.
_DEFORM_COMMON = (
    *_DIFFUSION_COMMON,
    ("model.shape_cond_proj.", "shape_in."),
    *_branch("norm2", "attn2", "norm_ctx", "ctx"),
    *_branch("norm3", "attn3", "norm_t", "temporal", self_attention=True),
)
DEFORM_DIFFUSION_RULES = (*_DEFORM_COMMON, *_branch("norm5", "attn5", "norm_obs", "obs"))
PARTIAL_DIFFUSION_RULES = (
    *_DEFORM_COMMON,
    *_branch("norm5", "attn5", "norm_src", "src"),
    *_branch("norm6", "attn6", "norm_obs", "obs"),
)
_BLOCK = re.compile(r"^(model\.transformer_blocks\.\d+\.)")


#: the official block attentions: self-attentions (q, k, v stacked) and cross-attentions (k, v stacked)
_ATTENTIONS = (("attn1", "qkv"), ("attn3", "qkv"), ("attn2", "kv"), ("attn5", "kv"), ("attn6", "kv"))


def fuse_diffusion(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official denoiser's tensors in latent4d's arrangement, still under official names: the
    self-attention's ``to_q``, ``to_k``, ``to_v`` stacked into ``to_qkv``, the cross-attention's ``to_k``,
    ``to_v`` into ``to_kv``, the AdaLN modulation rows reordered (official (scale, shift) -> (shift, scale)).
    A group with a part missing or mis-shaped is left as it is (and reported by :func:`convert`)."""
    out = dict(sd)
    blocks = sorted({m.group(1) for k in sd if (m := _BLOCK.match(k))})
    for p in blocks:
        for attn, parts in _ATTENTIONS:
            names = [f"{p}{attn}.to_{c}.weight" for c in parts]
            if all(n in sd for n in names) and len({tuple(sd[n].shape) for n in names}) == 1:
                out[f"{p}{attn}.to_{parts}.weight"] = torch.cat([out.pop(n) for n in names])
        for norm in (f"norm{k}" for k in range(1, 7)):
            for leaf in ("weight", "bias"):
                key = f"{p}{norm}.linear.{leaf}"
                if key in sd and sd[key].shape[0] % 2 == 0:
                    out[key] = torch.cat(sd[key].chunk(2)[::-1])
    return out


def shape_diffusion_config(sd: dict, num_latents: int, where: str) -> dict:
    """:class:`ShapeDenoiser` settings of an official shape ``EDMPrecond`` state dict (sizes from shapes):
    the official layout (see :class:`ShapeDenoiser`), 8 heads in the blocks, 1 head x width in the
    observation encoder, every observed point a token up to ``num_latents`` (official FPS only beyond)."""
    width, channels = _shape(sd, "model.proj_in.weight", where)
    point_width, n_in = _shape(sd, "cond_enc.point_embed.mlp.weight", where)
    idx = {int(m.group(1)) for k in sd if (m := re.match(r"^model\.transformer_blocks\.(\d+)\.", k))}
    inner = _shape(sd, "model.transformer_blocks.0.attn1.to_q.weight", where)[0]
    if inner % OFFICIAL_HEADS:
        raise InputError(f"{where}: denoiser attention width {inner} is not {OFFICIAL_HEADS} heads wide")
    return dict(
        latent_channels=channels,
        num_latents=num_latents,
        width=width,
        depth=max(idx) + 1,
        heads=OFFICIAL_HEADS,
        dim_head=inner // OFFICIAL_HEADS,
        num_freqs=_num_freqs(sd, point_width, n_in, where, basis=DIFFUSION_BASIS),
        obs_tokens=num_latents,
        time_scale=1.0,
        obs_heads=1,
        obs_dim_head=width,
        obs_modes=False,
        obs_final_norm=False,
        adaln_gate=False,
        context_norm=False,
        norm_eps=1e-5,
        io_bias=False,
        out_affine=True,
        drop_path=OFFICIAL_DROP_PATH,
    )


def _deform_diffusion_config(sd: dict, num_latents: int, where: str, partial: bool) -> dict:
    """:class:`DeformDenoiser` settings of an official deformation ``EDMPrecond`` state dict: the shape
    denoiser's official options, the shape latents through one bias-free linear, no frame embedding, the
    temporal layer when the checkpoint has one (``time_attn``, as every published model); sparse: the pair
    observation encoder (half-width embeddings), partial: per-frame tokens + the source frame's."""
    cfg = shape_diffusion_config(sd, num_latents, where)
    width, point_width = cfg["width"], _shape(sd, "cond_enc.point_embed.mlp.weight", where)[0]
    if partial and point_width != width:
        raise InputError(
            f"{where}: observation embedding {point_width} wide for a {width}-wide denoiser; the partial-input "
            "variant embeds at full width (a sparse-input checkpoint imports as m2v-deform-diffusion)"
        )
    if not partial and 2 * point_width != width:
        raise InputError(
            f"{where}: observation embedding {point_width} wide for a {width}-wide denoiser; the sparse-input "
            "variant embeds source and target at half width (a partial-input checkpoint imports as "
            "m2v-deform-diffusion-partial)"
        )
    temporal = any(re.match(r"^model\.transformer_blocks\.\d+\.attn3\.", k) for k in sd)
    return dict(
        cfg,
        shape_channels=_shape(sd, "model.shape_cond_proj.weight", where)[1],
        num_frames=OFFICIAL_WINDOW,
        block_type="interleaved" if temporal else "spatial",
        obs_pair=not partial,
        obs_source=partial,
        shape_proj="linear",
        frame_embedding=False,
    )


def deform_diffusion_config(sd: dict, num_latents: int, where: str) -> dict:
    """Settings of the official sparse-input (corresponding points, ``is_corr``) deformation denoiser."""
    return _deform_diffusion_config(sd, num_latents, where, partial=False)


def partial_diffusion_config(sd: dict, num_latents: int, where: str) -> dict:
    """Settings of the official partial-input deformation denoiser (``is_corr`` False)."""
    return _deform_diffusion_config(sd, num_latents, where, partial=True)


@dataclass(frozen=True)
class OfficialKind:
    """One importable kind: the official class, the latent4d class, the renaming and the settings;
    ``prepare``: official tensors -> latent4d's arrangement (still official names); ``basis``: the
    Fourier basis buffer (checked, not stored); ``own``: latent4d tensors the official network has no
    counterpart of, kept at their initial values (the denoiser's latent statistics: identity)."""

    official: str
    cls: type
    rules: tuple[tuple[str, str], ...]
    config: Callable[[dict, int, str], dict]
    prepare: Callable[[dict], dict] | None = None
    basis: str = "point_embed.basis"
    own: tuple[str, ...] = ()


SHAPE_AE = OfficialKind(
    "KLAutoEncoder", ShapeVecSetAE, (*VECSET_RULES, ("to_outputs.", "to_occ.")), shape_ae_config
)
DEFORM_AE = OfficialKind(
    "KLAutoEncoder_deform", DeformVecSetAE, (*VECSET_RULES, ("to_outputs.", "to_pos.")), deform_ae_config
)
SHAPE_DIFFUSION = OfficialKind(
    "EDMPrecond (shape)",
    ShapeDenoiser,
    DIFFUSION_RULES,
    shape_diffusion_config,
    prepare=fuse_diffusion,
    basis=DIFFUSION_BASIS,
    own=("stats.latent_mean", "stats.latent_std"),
)
_DEFORM_STATS = ("stats.latent_mean", "stats.latent_std", "shape_stats.latent_mean", "shape_stats.latent_std")
DEFORM_DIFFUSION = OfficialKind(
    "EDMPrecond (deformation, sparse inputs)",
    DeformDenoiser,
    DEFORM_DIFFUSION_RULES,
    deform_diffusion_config,
    prepare=fuse_diffusion,
    basis=DIFFUSION_BASIS,
    own=_DEFORM_STATS,
)
PARTIAL_DIFFUSION = OfficialKind(
    "EDMPrecond (deformation, partial inputs)",
    DeformDenoiser,
    PARTIAL_DIFFUSION_RULES,
    partial_diffusion_config,
    prepare=fuse_diffusion,
    basis=DIFFUSION_BASIS,
    own=_DEFORM_STATS,
)
KINDS: dict[str, OfficialKind] = {
    "m2v-shape-ae": SHAPE_AE,
    "m2v-deform-ae": DEFORM_AE,
    "m2v-shape-diffusion": SHAPE_DIFFUSION,
    "m2v-deform-diffusion": DEFORM_DIFFUSION,
    "m2v-deform-diffusion-partial": PARTIAL_DIFFUSION,
}


# ----------------------------------------------------------------------------------------------
# converting


def _listed(label: str, items: list[str], most: int = 6) -> str:
    return f"{len(items)} {label} ({', '.join(items[:most])}{', ...' if len(items) > most else ''})"


def convert(kind: OfficialKind, sd: dict[str, torch.Tensor], num_latents: int, where: str):
    """The latent4d network holding the official state dict ``sd`` (official names), or an
    :class:`InputError` listing every missing / unexpected / mis-shaped tensor by its official name."""
    net = kind.cls(**kind.config(sd, num_latents, where))
    own = net.state_dict()
    mapped: dict[str, torch.Tensor] = {k: own[k] for k in kind.own}
    unexpected, shapes = [], []
    for key, value in (kind.prepare(sd) if kind.prepare else sd).items():
        if key == kind.basis:
            continue
        name = rename(key, kind.rules)
        if name is None or name not in own:
            unexpected.append(key)
        elif tuple(value.shape) != tuple(own[name].shape):
            shapes.append(f"{key} {tuple(value.shape)} vs {tuple(own[name].shape)}")
        else:
            mapped[name] = value
    missing = [rename(k, kind.rules, reverse=True) or k for k in own if k not in mapped]
    missing = [k for k in missing if not any(s.startswith(k + " ") for s in shapes)]
    if missing or unexpected or shapes:
        parts = [
            _listed(label, items)
            for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes))
            if items
        ]
        raise InputError(
            f"{where} does not fit the official {kind.official} ({kind.cls.__name__} with "
            f"{net.config.width} width, depth {net.config.depth}): "
            + "; ".join(parts)
            + ". Is it a checkpoint of another kind (see `latent4d import-weights --help`)?"
        )
    net.load_state_dict({k: v.float().contiguous() for k, v in mapped.items()})
    return net.eval()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_weights(kind: str, checkpoint: str | Path, out: str | Path, num_latents: int = 512) -> Path:
    """Convert the official ``checkpoint`` of ``kind`` (:data:`KINDS`) into the ``save_pretrained``
    folder ``out`` (replaced whole, atomically; an existing folder must be an earlier import).
    ``num_latents``: latent queries M (farthest-point samples; 512 in the published models)."""
    from latent4d.fileio import atomic_dir, write_json_atomic
    from latent4d.options import check_input_file, check_output_dir

    if kind not in KINDS:
        raise ConfigError(f"import-weights: unknown kind '{kind}'; kinds: {', '.join(KINDS)}")
    if not 1 <= int(num_latents) <= 65536:
        raise ConfigError(f"import-weights: --num-latents {num_latents} must be in [1, 65536]")
    src = check_input_file(checkpoint, "checkpoint")
    dst = check_output_dir(out, "out", marker=MARKER)
    spec = KINDS[kind]
    sd, meta = read_checkpoint(src)
    net = convert(spec, sd, int(num_latents), f"official checkpoint '{src}'")
    with atomic_dir(dst, marker=MARKER) as tmp:
        net.save_pretrained(tmp, safe_serialization=True)
        write_json_atomic(
            tmp / MARKER,
            {
                "kind": kind,
                "official_class": spec.official,
                "checkpoint": src.name,
                "sha256": _sha256(src),
                "epoch": meta["epoch"],
                "num_latents": int(num_latents),
            },
        )
    n = sum(p.numel() for p in net.parameters())
    print(
        f"[latent4d] imported {spec.official} ({n / 1e6:.1f}M parameters, width {net.config.width}, depth "
        f"{net.config.depth}, {net.config.num_latents} x {net.config.latent_channels} latents) -> {dst}"
    )
    return dst
