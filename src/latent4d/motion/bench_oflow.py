"""``latent4d bench motion_oflow`` (issue 18): the O-Flow path end to end on procedural data.

Registered in :mod:`latent4d.motion.bench` (which passes its run folder and training helpers in: this module
does not import it). Steps: procedural sequences written in the O-Flow layout whose ``test.lst`` /
``test_new_individual.lst`` hold ``bench motion``'s held-out clips (:func:`_oflow_dataset`); the four
``experiment=motion/dfaust/<exp>`` runs trained at ``preset=motion_oflow_<exp>_cpu`` or reused
(:func:`_train_oflow`); ``latent4d evaluate ... data.source=oflow mode=all`` with the official protocol
(:func:`_oflow_evaluate`); the same runs on the same clips through ``bench motion``'s own evaluation path,
side by side with the O-Flow path (:func:`_side_by_side`); the loading time of one training item against
the training step (:func:`_oflow_loading`); and data-loading throughput and peak memory of the four
training loaders on one sequence at D-FAUST size (100,000 points per frame, :func:`_loading_100k`); and
``latent4d reconstruct motion`` from ``pcl_seq`` folders as a user runs it (:mod:`latent4d.motion.bench_pcl`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from latent4d.bench import BenchReport, in_fresh_process, proc_status_kb

#: sizes of ``bench motion_oflow``: sequences (procedural train / val pairs; the held-out lists are the
#: held-out clips of ``bench motion`` at the same size), samples per frame written, training overrides
#: (all experiments / per experiment) on top of ``preset=motion_oflow_<exp>_cpu``, evaluation options,
#: items timed per loader, points per frame of the D-FAUST-size sequence (:func:`_loading_100k`)
OFLOW_SIZES: dict[str, dict] = {
    "quick": {
        "frames": 9,
        "kinds": ("blob", "tube"),
        "train": 8,
        "val": 2,
        "held_out": 1,
        "samples": 4000,
        "partial_resolution": 64,
        "common": [],
        # 6 shape-AE epochs (54 steps at lr 1e-3) found no surface on the held-out clips: 12 at 3e-3
        "extra": {
            "shape_ae": ["trainer.max_epochs=12", "model.lr=3e-3"],
            "deform_ae": ["trainer.max_epochs=8"],
            "shape_diffusion": ["trainer.max_epochs=24", "data.noise=0.002"],
            "deform_diffusion": ["trainer.max_epochs=24", "data.noise=0.002"],
        },
        "evaluate": {"steps": 6, "resolution": 64, "n_iou": 20_000, "n_chamfer": 10_000},
        "loading_items": 16,
        "loading_points": 100_000,
    },
    "full": {
        "frames": 17,
        "kinds": None,
        "train": 32,
        "val": 4,
        "held_out": 3,
        "samples": 20_000,
        "partial_resolution": 128,
        "common": ["data.num_frames=17", "data.clip_stride=16"],
        "extra": {"shape_diffusion": ["data.noise=0.002"], "deform_diffusion": ["data.noise=0.002"]},
        "evaluate": {"steps": 18, "resolution": 128, "n_iou": 100_000, "n_chamfer": 50_000},
        "loading_items": 64,
        "loading_points": 100_000,
    },
}
OFLOW_EXPERIMENTS = ("shape_ae", "deform_ae", "shape_diffusion", "deform_diffusion")
OFLOW_CATEGORY = "procedural"


def _oflow_sequences(size: dict) -> dict[str, dict]:
    """{list name: {sequence name: Sequence}}: train / val pairs of the procedural splits, and as
    ``test`` / ``test_new_individual`` the held-out clips of ``bench motion`` (unseen motions /
    identities; :func:`latent4d.motion.evaluate.held_out`) at the same clip length and kinds."""
    from latent4d.motion.data import split_pairs
    from latent4d.motion.evaluate import held_out
    from latent4d.motion.synthetic import KINDS, procedural_sequence

    T, kinds = size["frames"], tuple(size["kinds"] or KINDS)
    lists: dict[str, dict] = {"train": {}, "val": {}, "test": {}, "test_new_individual": {}}
    for split in ("train", "val"):
        for i, m in split_pairs(split, size[split]):
            lists[split][f"{split}_{i}_{m}"] = procedural_sequence(i, m, T, kinds)
    for c in held_out(size["held_out"], T, kinds=kinds):
        target = "test" if c.split == "test_motion" else "test_new_individual"
        lists[target][f"{c.split}_{c.index:02d}"] = c.sequence
    return lists


def _oflow_dataset(report: BenchReport, runs_dir: Path, quick: bool, size: dict) -> Path:
    """The bench's O-Flow dataset ``<runs_dir>/[quick_]oflow_data/<category>`` (written with the functions of
    scripts/prepare_motion_dataset.py, ``latent4d.motion.oflow``), reused when it was written with the
    same settings; returns the dataset root."""
    from latent4d.fileio import atomic_dir, write_json_atomic
    from latent4d.motion.oflow import write_oflow_sequence, write_split_lists

    root = runs_dir / f"{'quick_' if quick else ''}oflow_data"
    stamp = {
        k: size[k] for k in ("frames", "kinds", "train", "val", "held_out", "samples", "partial_resolution")
    }
    stamp = json.loads(json.dumps(stamp))  # tuples as lists, as read back
    done = root / "bench_dataset.json"
    if done.is_file() and json.loads(done.read_text()) == stamp:
        report.note(f"O-Flow dataset reused: {root}")
        return root
    t0 = time.perf_counter()
    lists = _oflow_sequences(size)
    n, partial = size["samples"], {"resolution": size["partial_resolution"], "distance": 1.25, "z_up": False}
    with atomic_dir(root, marker="bench_dataset.json") as tmp:
        cat = Path(tmp) / OFLOW_CATEGORY
        for k, (name, seq) in enumerate(s for names in lists.values() for s in names.items()):
            write_oflow_sequence(cat / name, seq.vertices, seq.faces, n, n, n, seed=k, partial=partial)
        write_split_lists(cat, {split: sorted(names) for split, names in lists.items()})
        write_json_atomic(Path(tmp) / "bench_dataset.json", stamp)
    report.add("O-Flow dataset: writing", time.perf_counter() - t0, "s")
    report.note(
        "O-Flow dataset: "
        + ", ".join(f"{split} {len(names)}" for split, names in lists.items())
        + f" sequences of {size['frames']} frames, {n} surface / uniform / near points per frame, depth "
        f"images {size['partial_resolution']} px; test = bench motion's unseen-motion clips, "
        "test_new_individual = its unseen-identity clips"
    )
    return root


def _train_oflow(
    report: BenchReport, quick: bool, size: dict, root: Path, train: Callable, report_training: Callable
) -> tuple[dict, dict]:
    """The four experiments ``motion/dfaust/<exp>`` with ``preset=motion_oflow_<exp>_cpu`` on the bench's
    dataset (trained or reused with ``train``, reported with ``report_training``: ``bench._train`` /
    ``_report_training``) -> ({exp: run dir}, {exp: training stats})."""
    data = [f"data.root={root.resolve()}", f"data.category={OFLOW_CATEGORY}", *size["common"]]
    runs: dict[str, Path] = {}
    stats: dict[str, dict] = {}
    for exp in OFLOW_EXPERIMENTS:
        links = (
            ()
            if exp.endswith("_ae")
            else tuple(f"{k}_run={runs[k].resolve()}" for k in ("shape_ae", "deform_ae"))
        )
        runs[exp], stats[exp] = train(
            exp,
            quick,
            links,
            (*data, *size["extra"].get(exp, ())),
            name=f"oflow_{exp}",
            experiment=f"motion/dfaust/{exp}",
            preset=f"motion_oflow_{exp}_cpu",
        )
        report_training(report, f"O-Flow {exp}", stats[exp], quick=True)
    return runs, stats


def _oflow_evaluate(report: BenchReport, runs: dict, root: Path, size: dict) -> dict:
    """``latent4d evaluate`` with the official protocol on both held-out lists and both input modes: frame 0
    from the shape diffusion (as ``bench motion``) and from the shape AE's encoding of the true frame-0
    points (an upper bound on the shape step) -> {frame-0 source: the command's result}."""
    from omegaconf import OmegaConf

    from latent4d.config import load_run_config
    from latent4d.errors import InputError
    from latent4d.motion import commands

    run, results = runs["deform_diffusion"], {}
    base = {"data": {"source": "oflow", "root": str(root), "category": OFLOW_CATEGORY}, "mode": "all"}
    for frame0, extra in (("shape diffusion", {"shape_run": str(runs["shape_diffusion"])}), ("shape AE", {})):
        args = OmegaConf.create({**base, **size["evaluate"], **extra})
        t0 = time.perf_counter()
        try:
            res = commands.evaluate(run, load_run_config(run), args)
        except InputError as e:  # a briefly trained model may find no surface
            report.note(f"evaluate (frame 0 from the {frame0}): {e}")
            continue
        results[frame0] = res
        report.add(f"evaluate, frame 0 from the {frame0}: time", time.perf_counter() - t0, "s")
        for split, per_mode in res["splits"].items():
            for mode, r in per_mode.items():
                key = f"{split} / {mode}, frame 0 from the {frame0}"
                report.add(f"{key}: IoU", r["iou"], "", clips=r["clips"])
                report.add(f"{key}: Chamfer-L1", r["chamfer_l1"], "dataset units")
                report.add(f"{key}: correspondence L2", r["corr_l2"], "dataset units")
                lu = r["latent4d_units"]
                report.add(
                    f"{key}: correspondence L2 / bbox diagonal (bench motion's)",
                    100 * lu["corr_rel_mean"],
                    "%",
                )
    report.artifact("evaluation_oflow", run / "evaluation_oflow.json")
    return results


def _oflow_loading(report: BenchReport, runs: dict, stats: dict, n_items: int) -> None:
    """Loading time of one training item (shape-AE frame, deformation-AE pair, diffusion window with its
    inputs; one process, after a warm-up item) against the training step (fit seconds / steps)."""
    from latent4d.config import load_run_config
    from latent4d.trust import instantiate_from_run

    what = {
        "shape_ae": "frame",
        "deform_ae": "frame pair",
        "shape_diffusion": "frame (latents + observation)",
        "deform_diffusion": "window (latents + observations)",
    }
    for exp, run in runs.items():
        cfg = load_run_config(run)
        ds = instantiate_from_run(cfg.data, "motion", f"{run}/config.yaml data").dataset("train")
        n = min(n_items, len(ds))
        ds[0]  # warm-up: file handles, caches
        t0 = time.perf_counter()
        for i in range(n):
            ds[i % len(ds)]
        item = (time.perf_counter() - t0) / max(n, 1)
        st = stats[exp]
        step = (st.get("fit_seconds") or st["seconds"]) / max(st["steps"], 1)
        batch = int(cfg.data.batch_size)
        report.add(f"O-Flow {exp}: loading per {what[exp]}", 1e3 * item, "ms", items=n)
        report.add(f"O-Flow {exp}: time per training step (batch {batch})", 1e3 * step, "ms")
        report.add(f"O-Flow {exp}: loading a batch / training step", item * batch / step, "", target="<= 1")
    report.note(
        "loading vs step: one loader process (num_workers=0, so the measured step includes loading its "
        "batch); loading a batch = per-item time x batch size, target: no slower than the step it feeds"
    )


# ----------------------------------------------------------------------------------------------
# side by side with bench motion's evaluation path

#: (label, O-Flow-path key, bench-motion-path key, a distance: the O-Flow value x the dataset's scale)
SIDE_BY_SIDE = (
    ("IoU", "iou_mean", "iou_mean", False),
    ("Chamfer-L1", "chamfer_l1_mean", "chamfer_l1_mean", True),
    ("correspondence L2", "corr_l2_moving_mean", "corr_l2_mean", True),
)


def _held_out_windows(root: Path, size: dict, run_cfg) -> list[tuple]:
    """``bench motion``'s held-out clips as written into the bench's lists, each with its window in the
    O-Flow index: [(clip, list name, index, k)]; empty when the run's windows are not the whole clips."""
    from omegaconf import OmegaConf

    from latent4d.motion.evaluate import held_out
    from latent4d.motion.oflow import OFlowIndex
    from latent4d.motion.synthetic import KINDS

    T = size["frames"]
    hp = lambda key, default: OmegaConf.select(run_cfg, f"data.{key}", default=default)  # noqa: E731
    if int(hp("num_frames", T)) != T or int(hp("clip_offset", 0) or 0) != 0:
        return []
    out, indices = [], {}
    for c in held_out(size["held_out"], T, kinds=tuple(size["kinds"] or KINDS)):
        name = "test" if c.split == "test_motion" else "test_new_individual"
        if name not in indices:
            indices[name] = OFlowIndex(root, name, T, hp("clip_stride", None), 0, [OFLOW_CATEGORY])
        index = indices[name]
        seq = f"{OFLOW_CATEGORY}/{c.split}_{c.index:02d}"
        k = next(k for k, (si, start) in enumerate(index.clips) if index.names[si] == seq and start == 0)
        out.append((c, name, index, k))
    return out


def _bench_motion_clip(solver, clip, tf: np.ndarray, k: int, mode: str, run_cfg, ev: dict, shape_points):
    """One held-out clip through ``bench motion``'s path with an O-Flow-trained model: the procedural
    observation (:func:`~latent4d.motion.evaluate.observe_clip`, the run's ``n_obs`` / ``noise``) mapped into
    the model's frame ``tf`` (loc x y z, scale), frame 0 sampled or (``shape_points``) the shape AE's
    encoding of that many true frame-0 points, the tracked vertices mapped back to procedural units and
    measured by :func:`~latent4d.motion.evaluate.sequence_metrics` (true meshes)."""
    from latent4d.motion.evaluate import observe_clip, sequence_metrics

    n_obs, noise = int(run_cfg.data.get("n_obs", 300)), float(run_cfg.data.get("noise", 0.002))
    loc, scale = tf[:3], float(tf[3])
    obs = (observe_clip(clip, mode, n_obs=n_obs, noise=noise) - loc) / scale
    sl = None
    if shape_points:
        surf = clip.surface[0]
        idx = np.random.default_rng([0, k, 5]).choice(len(surf), min(len(surf), shape_points), replace=False)
        sl = solver.pipe.encode_shape(((surf[idx] - loc) / scale).astype(np.float32))
    rec = solver.reconstruct(obs.astype(np.float32), shape_latents=sl)[0]
    return sequence_metrics(loc + scale * rec.vertices, rec.faces, clip, ev["n_iou"], ev["n_chamfer"])


def _side_by_side_pairs(report: BenchReport, runs: dict, root: Path, size: dict, results: dict) -> dict:
    """{(frame-0 source, mode): [(O-Flow-path row, bench-motion-path metrics, dataset scale)]} per clip."""
    from latent4d.config import load_run_config
    from latent4d.errors import InputError
    from latent4d.motion.commands import plain_config
    from latent4d.motion.observe import OBSERVATIONS
    from latent4d.motion.oflow import clip_transforms
    from latent4d.motion.pipeline import MotionPipeline
    from latent4d.motion.reconstruct import MotionSolver

    run = runs["deform_diffusion"]
    cfg, ev = load_run_config(run), size["evaluate"]
    windows = _held_out_windows(root, size, cfg)
    if not windows:
        report.note("side by side: the run's windows are not the whole held-out clips: not compared")
        return {}
    pairs: dict[tuple[str, str], list] = {}
    for frame0, res in results.items():
        sd = runs["shape_diffusion"] if frame0 == "shape diffusion" else None
        pipe = MotionPipeline.from_runs(shape_diffusion=sd, deform_diffusion=run)
        shape_points = None if sd else int(cfg.data.get("n_points", 2048))
        for mode in OBSERVATIONS:
            opts = (f"mode={mode}", f"steps={ev['steps']}", f"resolution={ev['resolution']}", "seed=0")
            solver = MotionSolver(pipe, plain_config(*opts))
            for c, name, index, k in windows:
                seq = index.names[index.clips[k][0]]
                row = next(r for r in res["splits"][name][mode]["rows"] if r["sequence"] == seq)
                tf = clip_transforms(index, str(cfg.data.get("normalize", "clip")))[k]
                try:
                    m = _bench_motion_clip(solver, c, tf, k, mode, cfg, ev, shape_points)
                except InputError as e:  # no surface in frame 0
                    report.note(f"side by side, bench motion path, {seq} {mode} ({frame0}): {e}")
                    continue
                pairs.setdefault((frame0, mode), []).append((row, m, index.transform(k, "dataset")[1]))
    return pairs


def _side_by_side(report: BenchReport, runs: dict, root: Path, size: dict, results: dict) -> None:
    """Per frame-0 source, input mode and metric: the O-Flow path (official protocol, O-Flow inputs) and
    ``bench motion``'s path (procedural inputs and metrics) on the same clips with the same models,
    in procedural units; value = mean paired difference, noise = 2 x its standard error over clips."""
    pairs = _side_by_side_pairs(report, runs, root, size, results)
    for (frame0, mode), rows in pairs.items():
        for label, ka, kb, dist in SIDE_BY_SIDE:
            a = np.array([r[ka] * (s if dist else 1.0) for r, _, s in rows], np.float64)
            b = np.array([m[kb] for _, m, _ in rows], np.float64)
            d = a - b
            noise = 2 * float(d.std(ddof=1)) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            ok = bool(abs(d.mean()) <= noise) if np.isfinite(noise) and np.isfinite(d.mean()) else None
            report.add(
                f"side by side, {mode}, frame 0 from the {frame0}: {label}, O-Flow path - bench motion path",
                float(d.mean()),
                "" if label == "IoU" else "procedural units",
                target=f"|d| <= {noise:.3g} (2 s.e.m.)" if ok is not None else None,
                met=ok,
                oflow_path=float(a.mean()),
                bench_motion_path=float(b.mean()),
                noise_2sem=noise if np.isfinite(noise) else None,
                clips=len(d),
                per_clip=[[round(float(x), 5), round(float(y), 5)] for x, y in zip(a, b, strict=True)],
            )
    if pairs:
        report.note(
            "side by side: the O-Flow-trained runs on the same held-out clips through both paths, same "
            "models, solver (plain samples, same steps, resolution, seed), frame-0 source and point counts "
            f"(n_iou {size['evaluate']['n_iou']}, n_chamfer {size['evaluate']['n_chamfer']}); O-Flow path = "
            "`evaluate data.source=oflow` (inputs from pcl_seq / depth_rotate45, IoU on the stored points_seq "
            "labels, Chamfer-L1 against pcl_seq, correspondence to the nearest frame-0 pcl_seq point); bench "
            "motion path = observe_clip (corresponding surface points / a depth view from bench motion's "
            "fixed camera, the run's n_obs and noise) and sequence_metrics (uniform points in [-0.55, 0.55]^3 "
            "against the true mesh, Chamfer-L1 against true-mesh samples, correspondence to the closest "
            "true-mesh point). Like with like: distances in procedural units (the O-Flow figures x the "
            "dataset's stored scale), IoU and Chamfer over all frames, correspondence over frames 1..T-1 "
            "(the official figure also averages frame 0, reported above). Differences by design: the partial "
            "inputs come from different cameras (depth_rotate45: the mesh turned 45 degrees; bench motion: "
            "its fixed camera) and the sparse inputs are different point draws. per_clip = [O-Flow, bench "
            "motion]; noise = 2 x s.e.m. of the paired per-clip differences (none with one clip)"
        )


# ----------------------------------------------------------------------------------------------
# loading a sequence at D-FAUST size

#: the official preprocessing of the D-FAUST deformation data (Motion2VecSets
#: dataset_generate/sparse_generate/preprocessing_dfaust_deform.py): 100,000 points per frame in pcl_seq,
#: points_seq and points_near_seq, float16 (``--float16``), packed occupancies, uncompressed ``np.savez``
LOAD_NAME = "seq_100k"
LOAD_DEPTH_PX = 200
#: what one item of each training loader holds in frames
ITEM = {
    "shape_ae": "frame",
    "deform_ae": "frame pair",
    "shape_diffusion": "frame",
    "deform_diffusion": "window",
}


def _float16_surface(seq: Path) -> None:
    """Rewrite ``seq/pcl_seq/*.npz`` with float16 ``points`` (D-FAUST's files; the writer keeps float32)."""
    for f in sorted((seq / "pcl_seq").glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["points"] = arrays["points"].astype(np.float16)
        np.savez(f, **arrays)


def _dataset_100k(report: BenchReport, runs_dir: Path, quick: bool, size: dict) -> Path:
    """One procedural sequence of ``size["frames"]`` frames written at D-FAUST size
    (``size["loading_points"]`` points per frame in every folder, depth clouds at 200 px) under
    ``<runs_dir>/[quick_]oflow_100k`` (every list file names it); reused when written with the same settings."""
    from latent4d.fileio import atomic_dir, write_json_atomic
    from latent4d.motion.oflow import write_oflow_sequence, write_split_lists
    from latent4d.motion.synthetic import KINDS, procedural_sequence

    root = runs_dir / f"{'quick_' if quick else ''}oflow_100k"
    n, T = int(size["loading_points"]), int(size["frames"])
    stamp = {
        "frames": T,
        "points": n,
        "depth_px": LOAD_DEPTH_PX,
        "kinds": list(size["kinds"] or KINDS),
        "v": 2,
    }
    done = root / "bench_dataset.json"
    if not (done.is_file() and json.loads(done.read_text()) == stamp):
        t0 = time.perf_counter()
        seq = procedural_sequence(0, 0, T, tuple(stamp["kinds"]))
        partial = {"resolution": LOAD_DEPTH_PX, "distance": 1.25, "z_up": False}
        with atomic_dir(root, marker="bench_dataset.json") as tmp:
            cat = Path(tmp) / OFLOW_CATEGORY
            write_oflow_sequence(cat / LOAD_NAME, seq.vertices, seq.faces, n, n, n, seed=0, partial=partial)
            _float16_surface(cat / LOAD_NAME)
            # every list names it: the data modules index val / test too (only train is streamed)
            write_split_lists(cat, {s: [LOAD_NAME] for s in ("train", "val", "test", "test_new_individual")})
            write_json_atomic(Path(tmp) / "bench_dataset.json", stamp)
        report.add(f"{n:,}-point sequence: writing", time.perf_counter() - t0, "s")
    return root


def _reset_peak() -> None:
    """Start ``VmHWM`` again from the current RSS (Linux: ``5`` to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _stream(data_cfgs: dict, n_items: int) -> dict:
    """Run in a fresh spawned process: per experiment, its training loader (``dataset("train")`` of the
    data module ``data_cfgs[exp]``) streamed over ``n_items`` items (cycling) after one warm-up item ->
    {exp: seconds, items, frames per item, rss_before / rss_peak (KB: before and peak while streaming),
    traced (tracemalloc peak bytes of a second, untimed pass)}, plus ``rss_start`` (KB, peak after the
    imports) and ``rss_peak`` (KB, peak of the whole process). RSS from /proc/self/status (VmRSS, VmHWM:
    per process image, so unlike ru_maxrss not inherited from the parent across exec)."""
    import tracemalloc

    import torch
    from omegaconf import OmegaConf

    from latent4d.trust import instantiate_from_run

    torch.set_num_threads(1)
    out = {"rss_start": proc_status_kb("VmHWM")}
    peak = out["rss_start"] or 0
    for exp, node in data_cfgs.items():
        ds = instantiate_from_run(OmegaConf.create(node), "motion", f"{exp} data").dataset("train")
        ds[0]  # warm-up: file handles
        peak = max(peak, proc_status_kb("VmHWM") or 0)
        _reset_peak()
        r = {"items": n_items, "rss_before": proc_status_kb("VmRSS")}
        t0 = time.perf_counter()
        for i in range(n_items):
            ds[i % len(ds)]
        r["seconds"] = time.perf_counter() - t0
        r["rss_peak"] = (
            max(proc_status_kb("VmHWM") or 0, proc_status_kb("VmRSS") or 0) or None
        )  # VmHWM may lag
        tracemalloc.start()
        for i in range(min(n_items, len(ds))):
            ds[i]
        r["traced"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        frames = {"shape_ae": 1, "deform_ae": 2, "shape_diffusion": 1}.get(exp)
        if frames is None:
            k = getattr(ds, "train_frames", None)  # the source frame + k of the window's T - 1 later frames
            frames = min(int(k), int(ds.T) - 1) + 1 if k else int(ds.T)
        out[exp] = dict(r, frames=frames)
    out["rss_peak"] = max(peak, proc_status_kb("VmHWM") or 0) or None
    return out


def _data_configs(runs: dict, root: Path) -> dict:
    """{exp: the run's ``data`` config as a plain dict, reading ``root`` (the 100k-point sequence)}."""
    from omegaconf import OmegaConf

    from latent4d.config import load_run_config

    out = {}
    for exp, run in runs.items():
        node = OmegaConf.to_container(load_run_config(run).data, resolve=True)
        node.update(root=str(root.resolve()), category=OFLOW_CATEGORY, oflow_max_sequences=None)
        out[exp] = node
    return out


def _loading_100k(
    report: BenchReport, runs: dict, stats: dict, runs_dir: Path, quick: bool, size: dict
) -> None:
    """Data-loading throughput and peak memory of the four training loaders on one sequence at D-FAUST
    size (:func:`_dataset_100k`), measured in a fresh spawned process (:func:`_stream`) after the
    diffusion loaders' latents were encoded here once (cached, as in training)."""
    from omegaconf import OmegaConf

    from latent4d.trust import instantiate_from_run

    root = _dataset_100k(report, runs_dir, quick, size)
    n = int(size["loading_points"])
    cfgs = _data_configs(runs, root)
    for exp in ("shape_diffusion", "deform_diffusion"):
        t0 = time.perf_counter()
        instantiate_from_run(OmegaConf.create(cfgs[exp]), "motion", f"{exp} data").dataset("train")
        report.add(
            f"{n:,}-point sequence, {exp}: encoding the latents (once, cached)", time.perf_counter() - t0, "s"
        )
    got = in_fresh_process(_stream, cfgs, int(size["loading_items"]))
    for exp, r in ((k, v) for k, v in got.items() if k in cfgs):
        item = r["seconds"] / max(r["items"], 1)
        st, batch = stats[exp], int(cfgs[exp]["batch_size"])
        step = (st.get("fit_seconds") or st["seconds"]) / max(st["steps"], 1)
        key = f"{n:,}-point sequence, {exp}"
        report.add(f"{key}: loading throughput", r["frames"] * r["items"] / r["seconds"], "frames/s",
                   items=r["items"], frames_per_item=r["frames"], ms_per_item=1e3 * item)  # fmt: skip
        report.add(f"{key}: loading a batch / training step", item * batch / step, "", target="<= 1")
        report.add(f"{key}: numpy / Python peak while streaming (tracemalloc)", r["traced"] / 2**20, "MB")
        if r["rss_peak"] and r["rss_before"]:
            grow = (r["rss_peak"] - r["rss_before"]) / 1024
            report.add(f"{key}: RSS growth while streaming", grow, "MB", rss_before=r["rss_before"] / 1024)
    if got["rss_peak"]:
        report.add(f"{n:,}-point sequence: peak RSS of the loading process", got["rss_peak"] / 1024, "MB",
                   after_imports=(got["rss_start"] or 0) / 1024)  # fmt: skip
    on_disk = sum(f.stat().st_size for f in root.rglob("*.npz")) / 2**20
    report.add(f"{n:,}-point sequence: size on disk", on_disk, "MB")
    report.note(
        f"{n:,}-point sequence: one procedural sequence of {size['frames']} frames written at D-FAUST size "
        f"(the official preprocessing of the deformation data: {n:,} pcl_seq points per frame as float16 + loc "
        f"+ scale, {n:,} points_seq and {n:,} points_near_seq points per frame, float16 with packed "
        f"occupancies, uncompressed np.savez; depth_rotate45 clouds at {LOAD_DEPTH_PX} px), streamed through "
        "the four runs' own training loaders (data.source=oflow, their data.* settings: each item reads only "
        "the rows it samples: shape AE n_points surface + n_uniform + n_near query points, deformation AE "
        "n_points + n_queries of a frame pair, diffusion n_obs points per frame plus the memory-mapped "
        "latents) in one fresh spawned process, num_workers=0; frames/s = frames per item x items / "
        "seconds (timed without tracemalloc); memory: peak RSS of that process (VmHWM: Python, torch and "
        "the autoencoders the diffusion loaders load included; after_imports = before any loader), per "
        "loader the RSS growth while streaming (VmHWM reset before it, minus VmRSS then: page-cache pages "
        "of the memory-mapped files it touches count) and the tracemalloc peak of numpy / Python "
        "allocations of a second, untimed pass"
    )


def run(report: BenchReport, quick: bool, runs_dir: Path, train: Callable, report_training: Callable) -> None:
    """``latent4d bench motion_oflow`` (module docstring); ``runs_dir``, ``train`` and ``report_training``:
    :data:`latent4d.motion.bench.RUNS`, ``_train`` and ``_report_training`` (passed in: this module is
    imported by ``bench.py``)."""
    size = OFLOW_SIZES["quick" if quick else "full"]
    root = _oflow_dataset(report, runs_dir, quick, size)
    runs, stats = _train_oflow(report, quick, size, root, train, report_training)
    results = _oflow_evaluate(report, runs, root, size)
    _side_by_side(report, runs, root, size, results)
    _oflow_loading(report, runs, stats, size["loading_items"])
    _loading_100k(report, runs, stats, runs_dir, quick, size)
    from latent4d.motion.bench_pcl import reconstruct_rows

    work = runs_dir / f"{'quick_' if quick else ''}oflow_reconstruct"
    root_100k = _dataset_100k(report, runs_dir, quick, size)
    reconstruct_rows(report, runs, root, root_100k, size, OFLOW_CATEGORY, work)
    for exp, run_dir in runs.items():
        report.artifact(f"{exp}_run", run_dir)
