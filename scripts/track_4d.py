#!/usr/bin/env python
"""Reconstruct and track a deforming surface from a point-cloud sequence (Motion2VecSets).

    python scripts/track_4d.py INPUT OUT --shape-run RUN --deform-run RUN [--mode sparse|partial]
        [--num-samples N] [--steps N] [--sampler dpmsolver|euler|heun] [--resolution N]
        [--mesh octree|mise|dense] [--n-obs N] [--noise STD] [--window N] [--no-normalize] [--no-render]
        [--template MESH] [--gt GT.npz] [--seed N] [--guidance W] [--no-fuse] [--set KEY=VALUE ...]

INPUT: a folder of per-frame clouds (PLY / NPZ / NPY / XYZ, ordered by name) or one (T, N, 3)
.npz / .npy. OUT receives sample_XX/ folders (mesh_%04d.ply with one topology for all frames,
input_%04d.ply, trajectories.npz, reconstruction.json, renders/) and summary.json; see
docs/motion.md. Same as ``latent4d reconstruct motion input=... out=... shape_run=... deform_run=...``:
every option left out takes its default from conf/reconstruct/motion.yaml, and ``--set`` passes any
other setting of that file (e.g. ``--set deform_guidance.final_iters=0``).
"""

from __future__ import annotations

import argparse
import sys

#: command-line option -> setting of conf/reconstruct/motion.yaml
OPTIONS = {
    "shape_run": str,
    "deform_run": str,
    "mode": str,
    "num_samples": int,
    "steps": int,
    "sampler": str,
    "resolution": int,
    "mesh": str,
    "n_obs": int,
    "noise": float,
    "window": int,
    "template": str,
    "gt": str,
    "seed": int,
    "method": str,
    "shape_ae": str,
    "deform_ae": str,
    "guidance": float,
}
#: switches that turn a setting off
SWITCHES = {"no_normalize": "normalize", "no_render": "render", "no_fuse": "fuse"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Defaults: conf/reconstruct/motion.yaml (latent4d reconstruct motion).",
    )
    p.add_argument("input", help="folder of per-frame clouds or a (T, N, 3) .npz / .npy")
    p.add_argument("out", help="output folder (replaced whole when complete)")
    for name, kind in OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"sets {name}=")
    for flag, key in SWITCHES.items():
        p.add_argument("--" + flag.replace("_", "-"), action="store_true", help=f"sets {key}=false")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting of conf/reconstruct/motion.yaml",
    )
    return p


def overrides(a: argparse.Namespace) -> list[str]:
    """The ``key=value`` settings the command line gives (everything else: the YAML defaults)."""
    out = [f"input={a.input}", f"out={a.out}"]
    out += [f"{k}={getattr(a, k)}" for k in OPTIONS if getattr(a, k) is not None]
    out += [f"{key}=false" for flag, key in SWITCHES.items() if getattr(a, flag)]
    return out + list(a.set)


def main(argv: list[str] | None = None) -> int:
    from latent4d.errors import Latent4DError
    from latent4d.motion.commands import reconstruct

    a = parser().parse_args(argv)
    try:
        summary = reconstruct(overrides(a))
    except Latent4DError as e:
        print(f"track_4d: error: {e}", file=sys.stderr)
        return 2
    print(
        f"[track_4d] {len(summary['samples'])} sample(s), {summary['frames']} frames, {summary['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
