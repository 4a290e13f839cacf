#!/usr/bin/env python
"""Turn folders of per-frame meshes with shared topology into the O-Flow / Motion2VecSets layout.

    python scripts/prepare_motion_dataset.py INPUT OUTPUT_ROOT [--category NAME] [--surface 100000]
        [--uniform 100000] [--near 100000] [--val 0.1] [--test 0.1] [--seed 0]

INPUT is either one sequence (a folder of OBJ / PLY / OFF frames, sorted by file name) or a folder
of such sequence folders. OUTPUT_ROOT/<category>/<sequence>/{pcl_seq,points_seq,points_near_seq}/
%08d.npz and OUTPUT_ROOT/<category>/{train,val,test}.lst are written (see latent4d.motion.oflow);
train with ``latent4d train experiment=motion/shape_ae data.source=oflow data.root=OUTPUT_ROOT``.
A sequence whose frames do not share one topology is reported and stops the run before anything of
it is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from latent4d.errors import Latent4DError
    from latent4d.motion.oflow import read_mesh_sequence, write_oflow_sequence, write_split_lists

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--category", default="sequences")
    p.add_argument("--surface", type=int, default=100_000, help="corresponding surface samples per frame")
    p.add_argument("--uniform", type=int, default=100_000, help="uniform occupancy samples per frame")
    p.add_argument("--near", type=int, default=100_000, help="near-surface occupancy samples per frame")
    p.add_argument("--val", type=float, default=0.1, help="fraction of sequences for val.lst")
    p.add_argument("--test", type=float, default=0.1, help="fraction of sequences for test.lst")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        if not a.input.is_dir():
            raise FileNotFoundError(f"input folder '{a.input}' does not exist")
        mesh_ext = (".obj", ".ply", ".off")
        if any(f.suffix.lower() in mesh_ext for f in a.input.iterdir() if f.is_file()):
            seq_dirs = [a.input]
        else:
            seq_dirs = sorted(d for d in a.input.iterdir() if d.is_dir())
        if not seq_dirs:
            raise FileNotFoundError(f"'{a.input}' holds neither mesh frames nor sequence folders")
        # read (and validate) everything first: nothing is written for a bad input
        seqs = [(d.name, *read_mesh_sequence(d)[:2]) for d in seq_dirs]
        cat = a.output / a.category
        names = []
        for k, (name, verts, faces) in enumerate(seqs):
            T = write_oflow_sequence(cat / name, verts, faces, a.surface, a.uniform, a.near, seed=a.seed + k)
            names.append(name)
            print(f"[prepare] {name}: {T} frames, {verts.shape[1]} vertices -> {cat / name}")
        rng = np.random.default_rng(a.seed)
        order = list(rng.permutation(len(names)))
        n_test = max(1, int(round(a.test * len(names)))) if len(names) > 2 and a.test > 0 else 0
        n_val = max(1, int(round(a.val * len(names)))) if len(names) > 2 and a.val > 0 else 0
        test = [names[i] for i in order[:n_test]]
        val = [names[i] for i in order[n_test : n_test + n_val]]
        train = [names[i] for i in order[n_test + n_val :]]
        if len(names) <= 2:  # too few to split: every list holds all sequences
            train = val = test = names
        write_split_lists(cat, {"train": train, "val": val or train, "test": test or train})
        print(
            f"[prepare] wrote {len(names)} sequences to {cat} (train {len(train)}, val {len(val)}, test {len(test)})"
        )
    except (Latent4DError, OSError) as e:
        print(f"prepare_motion_dataset: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
