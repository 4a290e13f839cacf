"""``latent4d bench binary_scale`` (issue 21): binary vs continuous latent diffusion on the digits as the
denoiser grows, to test whether the gap of ``bench binary`` (binary FD(16) behind the continuous DDIM at the
CPU default's 0.65 M-parameter denoiser) closes with denoiser size.

Same autoencoders as ``bench binary`` (``binary/ae_digits`` and ``binary/ae_digits_continuous``, trained or
reused in the same work folder), same recipe (epochs, batch, loss, schedule, EMA, label dropout), only the
transformer's width / depth / heads (and the learning rate, lower for the larger ones) change per scale, the
same at each scale for both models (:data:`SCALES`). Each model is scored as in ``bench binary``: ``n`` =
1,000 class-conditional samples at 16 steps (binary also at 64), without and with classifier-free guidance,
by the same judge (:class:`latent4d.binary.metrics.DigitsEvaluator`, 20 epochs, same seed).

Scales: every scale of :data:`SCALES` on a CUDA machine (``trainer=gpu`` in fp32 as on the CPU, TF32
matmuls; the independent runs train concurrently, one process each), the CPU default ``s`` alone on a CPU (the others
need hours there), ``LATENT4D_BINARY_SCALES=s,m`` to choose. ``--quick``: the quick presets, scale ``s``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from latent4d.bench import BenchReport

#: denoiser sizes (``model.denoiser.*``) and learning rates; ``s`` is the CPU default (conf/model/binary_diffusion.yaml)
SCALES: dict[str, dict] = {
    "s": {"dim": 96, "depth": 4, "heads": 4, "dim_head": 24, "mlp_mult": 2, "lr": 1.0e-3},
    "m": {"dim": 256, "depth": 6, "heads": 8, "dim_head": 32, "mlp_mult": 4, "lr": 5.0e-4},
    "l": {"dim": 512, "depth": 8, "heads": 8, "dim_head": 64, "mlp_mult": 4, "lr": 3.0e-4},
}
KINDS = {"binary": ("diffusion", "ae"), "continuous": ("diffusion_continuous", "ae_continuous")}


def scale_overrides(label: str) -> list[str]:
    """The overrides of scale ``label`` (:data:`SCALES`); none for the CPU default ``s``."""
    if label == "s":
        return []
    s = SCALES[label]
    return [f"model.denoiser.{k}={v}" for k, v in s.items() if k != "lr"] + [f"model.lr={s['lr']}"]


def chosen_scales(quick: bool, cuda: bool) -> list[str]:
    """Scales to run: ``LATENT4D_BINARY_SCALES`` (comma-separated), else all on CUDA, ``s`` on a CPU or quick."""
    env = os.environ.get("LATENT4D_BINARY_SCALES", "").strip()
    if env:
        picked = [s.strip() for s in env.split(",") if s.strip()]
        unknown = [s for s in picked if s not in SCALES]
        if unknown:
            from latent4d.errors import ConfigError

            raise ConfigError(
                f"LATENT4D_BINARY_SCALES: unknown scale(s) {unknown}; choose from {list(SCALES)}"
            )
        return picked
    return list(SCALES) if cuda and not quick else ["s"]


def _train_job(
    parts, kind: str, label: str, work: str, quick: bool, trainer: list[str], threads: int
) -> dict:
    """One diffusion run (own process on CUDA): trained or reused -> {seconds, reused}."""
    torch.set_num_threads(threads)
    exp_key, ae_key = KINDS[kind]
    t0 = time.perf_counter()
    run = Path(work) / (exp_key if label == "s" else f"scale_{label}_{kind}")
    _, reused = parts.train(
        parts.digits[exp_key],
        run,
        quick,
        "binary_diffusion_quick",
        ae_run=Path(work) / ae_key,
        extra=[*scale_overrides(label), *trainer],
    )
    return {"run": str(run), "seconds": time.perf_counter() - t0, "reused": reused}


def _train_all(report: BenchReport, parts, quick: bool, work: Path, scales: list[str], cuda: bool) -> dict:
    """The two autoencoders (as ``bench binary``), then every (kind, scale) diffusion run -> {(kind, scale): job}."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    trainer = ["trainer=gpu", "trainer.precision=32-true"] if cuda else []  # fp32 (TF32) as the CPU runs
    for key in ("ae", "ae_continuous"):
        parts.train(parts.digits[key], work / key, quick, "binary_ae_quick", extra=trainer)
    jobs = [(kind, label) for label in scales for kind in KINDS]
    n = len(jobs) if cuda else 1
    threads = max(1, (os.cpu_count() or 1) // n)
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
        futs = {j: pool.submit(_train_job, parts, *j, str(work), quick, trainer, threads) for j in jobs}
        done = {j: f.result() for j, f in futs.items()}
    for (kind, label), r in done.items():
        report.add(
            f"scale {label}, {kind}: training time", r["seconds"], "s", reused=r["reused"], concurrent=n
        )
    return done


def _evaluate(report: BenchReport, parts, done: dict, scales: list[str], n: int, device: str) -> None:
    """FD / class accuracy of every run at 16 steps (binary also 64) without and with guidance; the
    binary / continuous comparisons per scale with the issue's targets."""
    from latent4d.binary.metrics import DigitsEvaluator
    from latent4d.binary.pipeline import BinaryLatentPipeline, GaussianLatentPipeline

    ev = DigitsEvaluator(epochs=20)
    report.add("judge classifier test accuracy", ev.test_accuracy, "")
    w = f"{parts.guidance:g}"
    for label in scales:
        got = {}
        for kind, cls in (("binary", BinaryLatentPipeline), ("continuous", GaussianLatentPipeline)):
            pipe = cls.from_pretrained(done[(kind, label)]["run"]).to(device)
            params = sum(p.numel() for p in pipe.denoiser.parameters())
            report.add(f"scale {label}, {kind}: denoiser parameters", params, "")
            for steps in (16, 64) if kind == "binary" else (16,):
                for g in (0.0, parts.guidance):
                    m, _ = parts.score(pipe, ev, n, steps, g, parts.temperature)
                    got[(kind, steps, g)] = m
                    tag = f", guidance {w}" if g else ""
                    report.add(f"scale {label}, {kind} S={steps}: FD{tag}", m["fd"], "")
                    report.add(f"scale {label}, {kind} S={steps}: class accuracy{tag}", m["accuracy"], "")
        _compare(report, label, got, parts.guidance)


def _compare(report: BenchReport, label: str, got: dict, guidance: float) -> None:
    """The issue's targets at one scale from ``got[(kind, steps, guidance)]`` (scores)."""
    w = f"{guidance:g}"
    b0, bg, b64 = got[("binary", 16, 0.0)], got[("binary", 16, guidance)], got[("binary", 64, 0.0)]
    c0, cg = got[("continuous", 16, 0.0)], got[("continuous", 16, guidance)]
    report.add(f"scale {label}: binary FD(16) / continuous FD(16)", b0["fd"] / c0["fd"], "", target="<= 1.0")
    report.add(
        f"scale {label}: binary FD(16) / continuous FD(16), guidance {w}",
        bg["fd"] / cg["fd"],
        "",
        target="<= 1.0",
    )
    report.add(
        f"scale {label}: binary - continuous class accuracy(16), guidance {w}",
        bg["accuracy"] - cg["accuracy"],
        "",
        target=">= 0",
    )
    report.add(f"scale {label}: binary FD(16) / FD(64)", b0["fd"] / b64["fd"], "", target="<= 1.1")


def bench_binary_scale(report: BenchReport, quick: bool, parts) -> None:
    """``latent4d bench binary_scale`` (module docstring); work folder as ``bench binary``'s (its runs reused).
    ``parts``: ``bench binary``'s pieces (``train``, ``score``, ``digits``, ``guidance``, ``temperature``),
    passed in by :mod:`latent4d.binary.bench`, which registers this bench (this module does not import it)."""
    cuda = torch.cuda.is_available()
    work = Path(os.environ.get("LATENT4D_BENCH_WORK", report.out_dir / "binary_work")) / "digits"
    scales = chosen_scales(quick, cuda)
    t0 = time.time()
    done = _train_all(report, parts, quick, work, scales, cuda)
    n = 200 if quick else 1000
    _evaluate(report, parts, done, scales, n, "cuda" if cuda else "cpu")
    where = "CUDA, trainer=gpu in fp32, the runs trained concurrently" if cuda else "CPU"
    report.note(
        f"scales {', '.join(f'{k}: {SCALES[k]}' for k in scales)}; same autoencoders, recipe and epochs as "
        f"bench binary (its runs are the s rows and are reused when present); {where}; runs ready in "
        f"{time.time() - t0:.0f} s; n={n} samples per setting, the bench binary judge and sampler settings "
        "(temperature, guidance, seeds)"
    )
