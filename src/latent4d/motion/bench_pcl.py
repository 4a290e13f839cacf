"""``latent4d bench motion_oflow``, last step: ``latent4d reconstruct motion input=<seq>/pcl_seq`` as a user runs
it on an O-Flow capture (issue 18 item 3), measured.

Three reconstructions through the command itself (:func:`latent4d.motion.reconstruct.reconstruct`), each in a
fresh spawned process so that its time and peak memory are its own:

- ``plain``: the first ``test.lst`` sequence of the bench's dataset with the evaluation's settings (plain
  samples: ``guidance=0 fuse=false``, the evaluation's steps and resolution): the same clip, models and
  solver as the ``test / sparse`` row of ``latent4d evaluate``, so the two figures can be set side by side
  (they differ by the sparse draw and by the input's normalisation: the command maps the capture's
  bounding box into [-0.5, 0.5]^3, the evaluation uses the dataset's stored ``loc`` / ``scale``);
- ``recipe``: the same folder with the command's defaults (observation guidance, fusion, final fit);
- ``100k``: the D-FAUST-size sequence (100,000 float16 points per frame) with the defaults: time and
  peak memory of a real-size capture (``max_points`` subsampling, one shared index set per frame).

Each output (``sample_00/trajectories.npz``, world units) is scored with the official protocol against the
sequence's stored truth (``points_seq`` labels, every ``pcl_seq`` point), in the dataset's units of its
first frame, as the evaluation rows.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from latent4d.bench import BenchReport, in_fresh_process, proc_status_kb


def _reconstruct_child(options: list[str]) -> dict:
    """In a fresh spawned process: ``reconstruct motion`` with ``options`` -> seconds and peak RSS (KB,
    VmHWM of this process: imports, models and the solver)."""
    import torch

    from latent4d.motion.commands import reconstruct

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    reconstruct(options)
    return {"seconds": time.perf_counter() - t0, "rss_peak": proc_status_kb("VmHWM")}


def _score(root: Path, category: str, split: str, out: Path, n_iou: int, n_chamfer: int) -> dict:
    """Official metrics of ``out/sample_00`` against the first sequence of ``split`` (its first window of
    the output's length), in the dataset's units of that window's first frame."""
    from latent4d.motion.evaluate import official_clip_metrics, read_official_targets
    from latent4d.motion.io import load_tracked_sequence
    from latent4d.motion.oflow import OFlowIndex

    tr = load_tracked_sequence(out / "sample_00")
    verts = np.asarray(tr["vertices"], np.float64)
    index = OFlowIndex(root, split, len(verts), None, 0, [category], tail=False)
    k = next(k for k, (si, start) in enumerate(index.clips) if si == 0 and start == 0)
    pcl, pts, occ, tf = read_official_targets(index, k, n_iou or None, 0)
    v = (verts - tf[:3]) / tf[3]
    m = official_clip_metrics(v, np.asarray(tr["faces"]), pcl, pts, occ, n_chamfer, 0)
    m["sequence"] = index.names[0]
    return m


def reconstruct_rows(
    report: BenchReport, runs: dict, root: Path, root_100k: Path, size: dict, category: str, work: Path
) -> dict:
    """The three reconstructions of the module docstring, their rows and a note -> {label: metrics}."""
    from latent4d.motion.oflow import read_split_list

    ev = size["evaluate"]
    base = [
        f"shape_run={runs['shape_diffusion'].resolve()}",
        f"deform_run={runs['deform_diffusion'].resolve()}",
        "render=false",
        "mode=sparse",
        "seed=0",
    ]
    plain = ["guidance=0", "fuse=false", f"steps={ev['steps']}", f"resolution={ev['resolution']}"]
    test_seq = read_split_list(root, "test", [category])[0]
    big_seq = read_split_list(root_100k, "test", [category])[0]
    cases = {
        "plain": (root, test_seq, plain, "the evaluation's settings (plain samples)"),
        "recipe": (root, test_seq, [], "the command's defaults (guided recipe)"),
        "100k": (root_100k, big_seq, [], "100,000 points per frame, the command's defaults"),
    }
    results: dict[str, dict] = {}
    for label, (r, seq, extra, what) in cases.items():
        out = work / f"reconstruct_{label}"
        try:
            got = in_fresh_process(
                _reconstruct_child, [f"input={seq / 'pcl_seq'}", f"out={out}", *base, *extra]
            )
        except Exception as e:  # noqa: BLE001 - a briefly trained model may find no surface: say so, go on
            report.note(f"reconstruct from pcl_seq ({label}, {seq.name}): failed: {type(e).__name__}: {e}")
            continue
        m = _score(r, category, "test", out, ev["n_iou"], ev["n_chamfer"])
        results[label] = {**got, **m}
        key = f"reconstruct motion input=<{seq.name}>/pcl_seq, {what}"
        report.add(f"{key}: IoU", m["iou_mean"], "", sequence=m["sequence"])
        report.add(f"{key}: Chamfer-L1", m["chamfer_l1_mean"], "dataset units")
        report.add(f"{key}: correspondence L2", m["corr_l2_mean"], "dataset units")
        report.add(f"{key}: time (whole command, one thread)", got["seconds"], "s")
        if got["rss_peak"]:
            report.add(f"{key}: peak RSS of the command's process", got["rss_peak"] / 1024, "MB")
    report.note(
        "reconstruct from pcl_seq: `latent4d reconstruct motion input=<seq>/pcl_seq shape_run= deform_run= "
        "render=false` in a fresh spawned process each (one torch thread; time = the whole command incl. "
        "loading the runs and writing the outputs; peak RSS = VmHWM of that process), outputs in the "
        "capture's world units scored with the official protocol against the sequence's stored truth in the "
        "dataset units of its first frame (the evaluation rows' units). 'plain' uses the evaluation's "
        "settings on the first test.lst sequence: compare with the 'test / sparse, frame 0 from the shape "
        "diffusion' rows (that figure is a mean over the test clips; the command normalises the capture's "
        "bounding box instead of using the stored loc / scale, and draws its own sparse subset)"
    )
    return results
