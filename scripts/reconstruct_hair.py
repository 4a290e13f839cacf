#!/usr/bin/env python
"""Reconstruct a complete hairstyle from a partial observation with a trained hairstyle-VAE.

Same as ``latent4d reconstruct hair run=... input=...``:

    python scripts/reconstruct_hair.py --run outputs/hair/style_vae/<time> --input scan.ply \
        [--scalp scalp.obj] [--out out_dir] [--format data|hair|ply|npz] [--strands 20000] \
        [--inits 4] [--retrieve 2] [--steps 200] [--refine-steps 0] [--seed 0] [--no-render] [--view front]

Input: a point cloud of the visible hair surface (``.ply`` with x y z [dx dy dz | nx ny nz], or
``.npz`` with ``points`` [+ ``directions``]), or a hair file with partial strands
(``.data``/``.hair``/``.ply``/``.npz``); metres in the USC-HairSalon head frame. Output under
``--out``: ``<stem>_hair.<fmt>`` (dense), ``<stem>_guides.<fmt>``, ``<stem>_latent.npz``,
``<stem>.png`` (hair + observation) and ``<stem>_fit.json``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="hairstyle-VAE run directory (or saved pipeline folder)")
    p.add_argument("--input", required=True, help="observation: .ply/.npz point cloud or a partial hair file")
    p.add_argument("--scalp", default=None, help="optional scalp mesh (.obj/.ply) in the head frame")
    p.add_argument("--out", default=None, help="output folder (default: <input>_reconstruction)")
    p.add_argument("--format", default="data", choices=["data", "hair", "ply", "npz"])
    p.add_argument("--strands", type=int, default=20000, help="dense strands of the result")
    p.add_argument("--inits", type=int, default=4, help="initial style latents tried")
    p.add_argument("--retrieve", type=int, default=2, help="nearest training styles of the run's latent bank "
                   "used as extra starts (0: none)")
    p.add_argument("--steps", type=int, default=200, help="Adam steps per initial latent")
    p.add_argument("--refine-steps", type=int, default=0, help="guide-latent refinement steps (default none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-render", action="store_true", help="skip the PNG render")
    p.add_argument("--view", default=None, help="direction towards the camera that saw the hair (front, back, left, "
                   "right, top or x,y,z): adds the free-space term")
    a = p.parse_args(argv)

    from latent4d.errors import Latent4DError
    from latent4d.hair.commands import run_reconstruction

    try:
        run_reconstruction(a.run, a.input, a.out, a.scalp, a.format, a.strands, a.inits, a.steps, a.refine_steps,
                           a.seed, not a.no_render, a.view, a.retrieve)
    except Latent4DError as e:
        print(f"reconstruct_hair: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
