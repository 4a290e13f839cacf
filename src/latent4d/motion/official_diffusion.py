"""The official Motion2VecSets denoisers (``EDMPrecond``) as latent4d networks: the renaming rules, the
rearrangement of their tensors (:func:`fuse_diffusion`), the settings read from their shapes and the three
importable kinds (``m2v-shape-diffusion``, ``m2v-deform-diffusion``, ``m2v-deform-diffusion-partial``; see
:mod:`latent4d.motion.official`)."""

from __future__ import annotations

import re

import torch

from latent4d.errors import InputError
from latent4d.motion.denoiser import DeformDenoiser, ShapeDenoiser
from latent4d.motion.official_layout import (
    DIFFUSION_BASIS,
    OFFICIAL_DROP_PATH,
    OFFICIAL_HEADS,
    OfficialKind,
    fourier_freqs,
    tensor_shape,
)

#: frames per window of the imported deformation denoisers (official: 17-frame sequences; the network
#: itself has no frame embedding and takes any number)
OFFICIAL_WINDOW = 17


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
    width, channels = tensor_shape(sd, "model.proj_in.weight", where)
    point_width, n_in = tensor_shape(sd, "cond_enc.point_embed.mlp.weight", where)
    idx = {int(m.group(1)) for k in sd if (m := re.match(r"^model\.transformer_blocks\.(\d+)\.", k))}
    inner = tensor_shape(sd, "model.transformer_blocks.0.attn1.to_q.weight", where)[0]
    if inner % OFFICIAL_HEADS:
        raise InputError(f"{where}: denoiser attention width {inner} is not {OFFICIAL_HEADS} heads wide")
    return dict(
        latent_channels=channels,
        num_latents=num_latents,
        width=width,
        depth=max(idx) + 1,
        heads=OFFICIAL_HEADS,
        dim_head=inner // OFFICIAL_HEADS,
        num_freqs=fourier_freqs(sd, point_width, n_in, where, basis=DIFFUSION_BASIS),
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
    width, point_width = cfg["width"], tensor_shape(sd, "cond_enc.point_embed.mlp.weight", where)[0]
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
        shape_channels=tensor_shape(sd, "model.shape_cond_proj.weight", where)[1],
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
