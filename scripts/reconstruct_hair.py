#!/usr/bin/env python
"""Reconstruct a complete hairstyle from a partial observation with a trained hairstyle-VAE.

Same as ``latent4d reconstruct hair run=... input=... [key=value ...]``, with the same defaults
(``conf/reconstruct/hair.yaml``):

    python scripts/reconstruct_hair.py --run outputs/hair/style_vae/<time> --input scan.ply \
        [--scalp scalp.obj] [--out out_dir] [--format data|hair|ply|npz|usd|usda|usdc] [--strands 20000] \
        [--inits 4] [--retrieve 2] [--steps 200] [--seed 0] [--no-render] [--view front] [key=value ...]

Options left out keep the config file's defaults; any other setting of the config (``lr=0.02``,
``w_free=2``, ...) can follow as ``key=value``. Input: a point cloud of the visible hair surface
(``.ply`` with x y z [dx dy dz | nx ny nz], or ``.npz`` with ``points`` [+ ``directions``]), or a hair
file with partial strands (``.data``/``.hair``/``.ply``/``.npz``); metres in the USC-HairSalon head
frame. Output under ``--out``: ``<stem>_hair.<fmt>`` (dense), ``<stem>_guides.<fmt>``,
``<stem>_latent.npz``, ``<stem>.png`` (hair + observation) and ``<stem>_fit.json``.
"""

from __future__ import annotations

import argparse
import sys

#: argparse option -> config key (the defaults are the config file's: None here means "not given")
OPTIONS = {"run": "hairstyle-VAE run directory (or saved pipeline folder)",
           "input": "observation: .ply/.npz point cloud or a partial hair file",
           "scalp": "scalp mesh (.obj/.ply) in the head frame",
           "out": "output folder (default: <input>_reconstruction)",
           "format": "data, hair, ply, npz, usd, usda or usdc",
           "strands": "dense strands of the result",
           "inits": "initial style latents tried",
           "retrieve": "nearest training styles of the run's latent bank used as extra starts (0: none)",
           "steps": "Adam steps per initial latent",
           "seed": "seed",
           "view": "direction towards the camera that saw the hair (front, back, left, right, top or x,y,z): "
                   "adds the free-space term"}


def overrides(argv: list[str] | None = None) -> list[str]:
    """The ``key=value`` overrides of ``conf/reconstruct/hair.yaml`` given on the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for key, text in OPTIONS.items():
        p.add_argument(f"--{key}", default=None, required=key in ("run", "input"), help=text)
    p.add_argument("--no-render", action="store_true", help="skip the PNG render")
    p.add_argument("settings", nargs="*", help="other settings of conf/reconstruct/hair.yaml as key=value")
    a = p.parse_args(argv)
    out = [f"{k}={getattr(a, k)}" for k in OPTIONS if getattr(a, k) is not None]
    return out + (["render=false"] if a.no_render else []) + list(a.settings)


def main(argv: list[str] | None = None) -> int:
    """Runs ``latent4d reconstruct hair <overrides>`` (the CLI's checks, errors and exit codes)."""
    given = overrides(argv)

    from latent4d.cli import main as latent4d

    return latent4d(["reconstruct", "hair", *given])


if __name__ == "__main__":
    sys.exit(main())
