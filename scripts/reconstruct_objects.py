#!/usr/bin/env python
"""Reconstruct textured objects (shape, appearance, 6D pose, size) from one RGB-D frame.

Same as ``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=...``:

    python scripts/reconstruct_objects.py --rgb rgb.png --depth depth.png --mask mask.png \
        --intrinsics intrinsics.json [--run outputs/objects/latent_db/<run>] [--categories 1:mug,2:camera] \
        [--iterations 100] [--out outputs/objects/reconstruct]

Depth: 16-bit PNG in millimetres (``--depth-scale`` units per metre); mask: instance ids (0 =
background); intrinsics: JSON {fx, fy, cx, cy}. Writes per object a coloured mesh in the camera
frame and a JSON with pose, size and codes, plus overlay.png and summary.json.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from omegaconf import OmegaConf

    from latent4d.errors import Latent4DError
    from latent4d.objects.commands import reconstruct

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k in ("rgb", "depth", "mask", "intrinsics"):
        p.add_argument(f"--{k}", required=True)
    p.add_argument("--run", default=None, help="objects/latent_db run directory (default: the latest)")
    p.add_argument("--categories", default=None, help="one category for all, or id:name,id:name")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--rotation", default="6d", choices=["6d", "so3"])
    p.add_argument("--level", type=int, default=7, help="octree level of the output meshes")
    p.add_argument("--depth-scale", type=float, default=1000.0)
    p.add_argument("--out", default="outputs/objects/reconstruct")
    a = p.parse_args(argv)
    args = OmegaConf.create({"rgb": a.rgb, "depth": a.depth, "mask": a.mask, "intrinsics": a.intrinsics,
                             "run": a.run, "categories": a.categories, "iterations": a.iterations,
                             "rotation": a.rotation, "level": a.level, "depth_scale": a.depth_scale, "out": a.out})
    try:
        reconstruct(args)
    except Latent4DError as e:
        print(f"reconstruct_objects: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
