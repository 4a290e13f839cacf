#!/usr/bin/env python
"""Reconstruct textured objects (shape, appearance, 6D pose, size) from one RGB-D frame.

Same as ``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=... [key=value ...]``, with
the same defaults (``conf/reconstruct/objects.yaml``):

    python scripts/reconstruct_objects.py --rgb rgb.png --depth depth.png --mask mask.png \
        --intrinsics intrinsics.json [--run outputs/objects/latent_db/<run>] [--categories 1:mug,2:camera] \
        [--iterations 100] [--out outputs/objects/reconstruct] [key=value ...]

Depth: 16-bit PNG in millimetres (``--depth-scale`` units per metre); mask: instance ids (0 =
background); intrinsics: JSON {fx, fy, cx, cy}. Writes per object a coloured mesh in the camera
frame and a JSON with pose, size and codes, plus overlay.png and summary.json. Any other setting of
``conf/reconstruct/objects.yaml`` can follow as ``key=value``.
"""

from __future__ import annotations

import argparse
import sys

#: flag -> setting of conf/reconstruct/objects.yaml (flags left out keep the YAML's defaults)
FLAGS = {"run": "run", "categories": "categories", "iterations": "iterations", "rotation": "rotation",
         "level": "level", "depth_scale": "depth_scale", "out": "out"}


def main(argv: list[str] | None = None) -> int:
    from latent4d.errors import Latent4DError
    from latent4d.objects.commands import reconstruct

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k in ("rgb", "depth", "mask", "intrinsics"):
        p.add_argument(f"--{k}", required=True)
    p.add_argument("--run", help="objects/latent_db run directory (default: the latest)")
    p.add_argument("--categories", help="one category for all, or id:name,id:name")
    p.add_argument("--iterations", type=int, help="optimisation iterations per object")
    p.add_argument("--rotation", choices=["6d", "so3"])
    p.add_argument("--level", type=int, help="octree level of the output meshes")
    p.add_argument("--depth-scale", type=float, help="raw depth PNG units per metre")
    p.add_argument("--out", help="output folder")
    p.add_argument("settings", nargs="*", help="further key=value settings (conf/reconstruct/objects.yaml)")
    a = p.parse_args(argv)
    options = [f"{k}={getattr(a, k)}" for k in ("rgb", "depth", "mask", "intrinsics")]
    options += [f"{key}={getattr(a, flag)}" for flag, key in FLAGS.items() if getattr(a, flag) is not None]
    try:
        reconstruct(options + list(a.settings))
    except Latent4DError as e:
        print(f"reconstruct_objects: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
