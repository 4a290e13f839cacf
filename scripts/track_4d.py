#!/usr/bin/env python
"""Reconstruct and track a deforming surface from a point-cloud sequence (Motion2VecSets).

    python scripts/track_4d.py INPUT OUT --shape-run RUN --deform-run RUN [--mode sparse|partial]
        [--num-samples 1] [--steps 18] [--sampler dpmsolver|euler|heun] [--resolution 128]
        [--mesh octree|dense] [--n-obs 300] [--noise 0] [--window N] [--no-normalize] [--no-render]
        [--template MESH] [--gt GT.npz] [--seed 0]

INPUT: a folder of per-frame clouds (PLY / NPZ / NPY / XYZ, ordered by name) or one (T, N, 3)
.npz / .npy. OUT receives sample_XX/ folders (mesh_%04d.ply with one topology for all frames,
input_%04d.ply, trajectories.npz, reconstruction.json, renders/) and summary.json; see
docs/motion.md. Same as ``latent4d reconstruct motion input=... out=... shape_run=... deform_run=...``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from latent4d.errors import Latent4DError
    from latent4d.motion.commands import track

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input")
    p.add_argument("out")
    p.add_argument("--shape-run", help="run directory of motion/shape_diffusion")
    p.add_argument("--deform-run", help="run directory of motion/deform_diffusion")
    p.add_argument("--mode", default="sparse", choices=("sparse", "partial"))
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--steps", type=int, default=18)
    p.add_argument("--sampler", default="dpmsolver", choices=("dpmsolver", "euler", "heun"))
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--mesh", default="octree", choices=("octree", "mise", "dense"))
    p.add_argument("--n-obs", type=int, default=300)
    p.add_argument("--noise", type=float, default=0.0, help="extra Gaussian noise on the input (normalised units)")
    p.add_argument("--window", type=int, default=None)
    p.add_argument("--no-normalize", action="store_true", help="input is already in [-0.5, 0.5]^3")
    p.add_argument("--no-render", action="store_true")
    p.add_argument("--template", default=None, help="frame-0 mesh to track instead of sampling the shape")
    p.add_argument("--gt", default=None, help="npz with ground-truth vertices (T, V, 3) and faces: adds metrics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="diffusion", choices=("diffusion", "autoencoder"))
    p.add_argument("--shape-ae", default=None, help="method=autoencoder: run directory of motion/shape_ae")
    p.add_argument("--deform-ae", default=None, help="method=autoencoder: run directory of motion/deform_ae")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="weight of the observation guidance of shape and deformation sampling (0: off)")
    p.add_argument("--no-fuse", action="store_true",
                   help="track the frame-0 sample alone (no temporal occupancy fusion over the first window)")
    p.add_argument("--accumulate", type=int, default=0,
                   help="rounds of re-estimating the frame-0 shape from all frames' observations (0: off)")
    a = p.parse_args(argv)
    try:
        summary = track(a.input, a.out, a.shape_run, a.deform_run, a.mode, a.num_samples, a.steps, a.sampler,
                        a.resolution, a.mesh, a.n_obs, a.noise, a.window, not a.no_normalize, not a.no_render, a.seed,
                        a.gt, a.method, a.shape_ae, a.deform_ae, template=a.template,
                        guidance=a.guidance, fuse=not a.no_fuse, accumulate=a.accumulate)
    except Latent4DError as e:
        print(f"track_4d: error: {e}", file=sys.stderr)
        return 2
    print(f"[track_4d] {len(summary['samples'])} sample(s), {summary['frames']} frames, {summary['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
