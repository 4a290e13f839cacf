#!/usr/bin/env python
"""Turn folders of per-frame meshes with shared topology into the O-Flow / Motion2VecSets layout.

    python scripts/prepare_motion_dataset.py INPUT OUTPUT_ROOT [--category NAME] [--surface 100000]
        [--uniform 100000] [--near 100000] [--val 0.1] [--test 0.1] [--identity REGEX]
        [--new-individuals 0.1] [--partial/--no-partial] [--seed 0]

INPUT is either one sequence (a folder of OBJ / PLY / OFF frames, sorted by file name) or a folder
of such sequence folders. OUTPUT_ROOT/<category>/<sequence>/{pcl_seq,points_seq,points_near_seq,
depth_rotate45}/%08d.npz and OUTPUT_ROOT/<category>/{train,val,test[,test_new_individual]}.lst are
written (see latent4d.motion.oflow): exactly what ``data.source=oflow data.root=OUTPUT_ROOT
data.category=NAME`` reads.

Splits are made by sequence and never overlap: a sequence is in exactly one list. With
``--identity REGEX`` (its first group names the individual, e.g. ``'^(\\d+)_'`` for D-FAUST's
``50002_jumping_jacks``), every sequence of a held-out individual goes to test_new_individual.lst
(unseen individuals) and the other sequences are split into train / val / test (unseen motions).
Too few sequences for the requested lists is an error naming the counts (nothing is written).

Real exported animation: vertices duplicated along UV / normal seams are welded for the occupancy
test; a mesh of several parts is inside where any closed part is (their union); meshes with holes
are reported (open edges): their occupancy comes from a ray majority vote, right for small holes,
wrong near large openings; the report goes to OUTPUT_ROOT/<category>/prepare_report.json.
A sequence whose frames do not share one topology is reported and stops the run before anything is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--category", default="sequences")
    p.add_argument("--surface", type=int, default=100_000, help="corresponding surface samples per frame")
    p.add_argument("--uniform", type=int, default=100_000, help="uniform occupancy samples per frame")
    p.add_argument("--near", type=int, default=100_000, help="near-surface occupancy samples per frame")
    p.add_argument("--val", type=float, default=0.1, help="fraction of the seen individuals' sequences for val.lst")
    p.add_argument("--test", type=float, default=0.1, help="fraction of them for test.lst (unseen motions)")
    p.add_argument("--identity", default=None, help="regex whose first group names a sequence's individual")
    p.add_argument("--new-individuals", type=float, default=0.1,
                   help="with --identity: fraction of individuals held out for test_new_individual.lst")
    p.add_argument("--partial", action=argparse.BooleanOptionalAction, default=True,
                   help="write depth_rotate45/ partial depth clouds (the official partial inputs)")
    p.add_argument("--partial-resolution", type=int, default=200, help="depth image side in pixels")
    p.add_argument("--z-up", action="store_true", help="meshes are z-up (DeformingThings4D): camera as the official DT4D data")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _count(frac: float, n: int) -> int:
    return max(1, int(round(frac * n))) if frac > 0 else 0


def split_sequences(names: list[str], val: float, test: float, identity: str | None, new_individuals: float,
                    seed: int = 0) -> dict[str, list[str]]:
    """Disjoint split lists (by sequence; by individual for test_new_individual). ValueError when there
    are too few sequences / individuals for the lists asked for."""
    from latent4d.errors import ConfigError

    rng = np.random.default_rng(seed)
    lists: dict[str, list[str]] = {}
    seen = list(names)
    if identity:
        who = {}
        for n in names:
            m = re.search(identity, n)
            if not m or not m.groups():
                raise ConfigError(f"--identity {identity!r} finds no individual (first group) in sequence name '{n}'")
            who[n] = m.group(1)
        people = sorted(set(who.values()))
        k = _count(new_individuals, len(people))
        if k >= len(people):
            raise ConfigError(f"{len(people)} individual(s) cannot give {k} held-out individual(s) and keep one for "
                              "training: add individuals or pass --new-individuals 0")
        held = {people[i] for i in rng.permutation(len(people))[:k]}
        lists["test_new_individual"] = sorted(n for n in names if who[n] in held)
        seen = [n for n in names if who[n] not in held]
    n_test, n_val = _count(test, len(seen)), _count(val, len(seen))
    if n_test + n_val + 1 > len(seen):
        raise ConfigError(
            f"{len(seen)} sequence(s) cannot fill train, val ({n_val}) and test ({n_test}) without sharing a "
            "sequence: add sequences (a long animation can be cut into several folders), or pass --val 0 "
            "--test 0 to write train.lst only"
        )
    order = [seen[i] for i in rng.permutation(len(seen))]
    lists.update(test=sorted(order[:n_test]), val=sorted(order[n_test : n_test + n_val]),
                 train=sorted(order[n_test + n_val :]))
    return {k: v for k, v in lists.items() if v}


def _report_line(name: str, rep: dict) -> str:
    line = f"[prepare] {name}: {rep['frames']} frames, {rep['n_parts']} part(s)"
    if rep["open_edges"] or rep["bad_edges"]:
        line += (f"\n[prepare] WARNING {name}: not watertight after welding seams ({rep['open_edges']} open "
                 f"edges, {rep['bad_edges']} edges shared by 3+ faces): occupancy is a ray majority vote, "
                 "right for small holes, wrong near large openings: check points_seq or close the mesh")
    return line


def main(argv: list[str] | None = None) -> int:
    from latent4d.errors import Latent4DError
    from latent4d.fileio import write_json_atomic
    from latent4d.motion.oflow import read_mesh_sequence, write_oflow_sequence, write_split_lists

    a = _args(argv)
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
        # split and read (validate) everything first: nothing is written for a bad input
        seqs = [(d.name, *read_mesh_sequence(d)[:2]) for d in seq_dirs]
        lists = split_sequences([d.name for d in seq_dirs], a.val, a.test, a.identity, a.new_individuals, a.seed)
        cat = a.output / a.category
        partial = dict(resolution=a.partial_resolution, distance=1.0 if a.z_up else 1.25, z_up=a.z_up) if a.partial else None
        report = {}
        for k, (name, verts, faces) in enumerate(seqs):
            report[name] = write_oflow_sequence(cat / name, verts, faces, a.surface, a.uniform, a.near,
                                                seed=a.seed + k, partial=partial)
            print(_report_line(name, report[name]))
        write_split_lists(cat, lists)
        write_json_atomic(cat / "prepare_report.json", {"splits": lists, "sequences": report})
        print(f"[prepare] wrote {len(seqs)} sequences to {cat} (" + ", ".join(f"{k} {len(v)}" for k, v in lists.items()) + ")")
    except (Latent4DError, OSError) as e:
        print(f"prepare_motion_dataset: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
