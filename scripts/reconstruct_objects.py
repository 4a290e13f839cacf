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

#: options that set the same-named setting of conf/reconstruct/objects.yaml (left out: the YAML's default)
SETTINGS = ("run", "categories", "iterations", "rotation", "level", "depth_scale", "out")


def overrides(argv: list[str] | None = None) -> list[str]:
    """The ``key=value`` overrides of ``conf/reconstruct/objects.yaml`` given on the command line."""
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
    options += [f"{k}={getattr(a, k)}" for k in SETTINGS if getattr(a, k) is not None]
    return options + list(a.settings)


def main(argv: list[str] | None = None) -> int:
    """Runs ``latent4d reconstruct objects <overrides>`` (the CLI's checks, errors and exit codes)."""
    given = overrides(argv)

    from latent4d.cli import main as latent4d

    return latent4d(["reconstruct", "objects", *given])


if __name__ == "__main__":
    sys.exit(main())
