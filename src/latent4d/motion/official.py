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
import pathlib
import re
from pathlib import Path

import torch

from latent4d.errors import ConfigError, InputError
from latent4d.motion.deform import DeformVecSetAE
from latent4d.motion.official_diffusion import (  # noqa: F401  (re-exported: the kinds' parts)
    DEFORM_DIFFUSION,
    DEFORM_DIFFUSION_RULES,
    DIFFUSION_RULES,
    OFFICIAL_WINDOW,
    PARTIAL_DIFFUSION,
    PARTIAL_DIFFUSION_RULES,
    SHAPE_DIFFUSION,
    deform_diffusion_config,
    fuse_diffusion,
    partial_diffusion_config,
    shape_diffusion_config,
)
from latent4d.motion.official_layout import (  # noqa: F401  (re-exported)
    BASIS,
    DIFFUSION_BASIS,
    OFFICIAL_DROP_PATH,
    OFFICIAL_HEADS,
    OfficialKind,
    fourier_freqs,
    rename,
    tensor_shape,
)
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


def _latent_layers(sd: dict, where: str) -> tuple[int, int]:
    """(depth, dim_head) of the official latent self-attention layers."""
    idx = {int(m.group(1)) for k in sd if (m := re.match(r"^layers\.(\d+)\.0\.fn\.to_q\.weight$", k))}
    depth = max(idx, default=-1) + 1
    inner = tensor_shape(sd, "layers.0.0.fn.to_q.weight", where)[0]
    if inner % OFFICIAL_HEADS:
        raise InputError(f"{where}: latent attention width {inner} is not {OFFICIAL_HEADS} heads wide")
    return depth, inner // OFFICIAL_HEADS


def shape_ae_config(sd: dict, num_latents: int, where: str) -> dict:
    """:class:`ShapeVecSetAE` settings of an official ``KLAutoEncoder`` state dict (sizes from shapes)."""
    point_width, n_in = tensor_shape(sd, "point_embed.mlp.weight", where)
    depth, dim_head = _latent_layers(sd, where)
    return dict(
        num_latents=num_latents,
        latent_channels=tensor_shape(sd, "mean_fc.weight", where)[0],
        width=tensor_shape(sd, "cross_attend_blocks.0.norm.weight", where)[0],
        heads=OFFICIAL_HEADS,
        dim_head=dim_head,
        depth=depth,
        num_freqs=fourier_freqs(sd, point_width, n_in, where),
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
    point_width = tensor_shape(sd, "point_embed.mlp.weight", where)[0]
    if 2 * point_width != cfg["width"]:
        raise InputError(
            f"{where}: point embedding {point_width} wide for a {cfg['width']}-wide encoder; the "
            "official deformation AE concatenates two embeddings of half its width"
        )
    return dict(
        cfg, point_width=point_width, pair_projection=False, displacement_features=False, predict="position"
    )


SHAPE_AE = OfficialKind(
    "KLAutoEncoder", ShapeVecSetAE, (*VECSET_RULES, ("to_outputs.", "to_occ.")), shape_ae_config
)
DEFORM_AE = OfficialKind(
    "KLAutoEncoder_deform", DeformVecSetAE, (*VECSET_RULES, ("to_outputs.", "to_pos.")), deform_ae_config
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
