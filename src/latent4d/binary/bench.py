"""``latent4d bench binary``: Bernoulli latent diffusion vs a continuous-latent DDIM baseline on the digits,
plus the voxel autoencoder's IoU and a gallery of voxel samples.

Digits protocol (all seeded): train the Bernoulli AE (``binary/ae_digits``) and the class-conditional
Bernoulli diffusion on its bits (``binary/diffusion_digits``); train the same AE made continuous
(``binary/ae_digits_continuous``) and the same-size denoiser as Gaussian diffusion
(``binary/diffusion_digits_continuous``, DDPM training, DDIM sampling). A small CNN trained on the
real training split (:class:`latent4d.binary.metrics.DigitsEvaluator`) scores ``n`` class-conditional
samples (``n / 10`` per digit) at S = 4, 8, 16, 32, 64 steps: Fréchet distance of its features to the
held-out real digits, mean confidence, accuracy of the requested class; and the wall time per 1,000
samples (sampling + decoding, batch 500, this machine).

Runs are trained (or reused, :func:`latent4d.bench.train_or_reuse`) with the default experiment
configs; ``--quick`` adds the presets ``binary_ae_quick`` / ``binary_ae_voxels_quick`` /
``binary_diffusion_quick`` (conf/preset/).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from latent4d.bench import BenchReport

STEPS = (4, 8, 16, 32, 64)
QUIET = ["callbacks=minimal", "logger=csv"]
GUIDANCE, TEMPERATURE = 1.0, 0.9
DIGITS = {"ae": "binary/ae_digits", "diffusion": "binary/diffusion_digits",
          "ae_continuous": "binary/ae_digits_continuous", "diffusion_continuous": "binary/diffusion_digits_continuous"}


def _weights_key(run: Path) -> dict[str, str]:
    """Hashes of a run's exported autoencoder weights: a diffusion run trained on them is reused only
    while they are the same."""
    import hashlib

    folder = run / "models" / "autoencoder"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.safetensors"))}


def _train(experiment: str, run: Path, quick: bool, preset: str, ae_run: Path | None = None) -> tuple[dict, bool]:
    """Train ``experiment`` into ``run`` (with ``preset`` when quick; on ``ae_run``'s autoencoder for a
    diffusion experiment), or reuse a finished run there: ``(test metrics, reused)``."""
    from latent4d.bench import train_or_reuse

    overrides = [f"experiment={experiment}", *QUIET, *([f"preset={preset}"] if quick else [])]
    if ae_run is None:
        return train_or_reuse(overrides, run)
    return train_or_reuse([*overrides, f"autoencoder_path={ae_run}"], run, key=_weights_key(ae_run))


def _score(pipe, ev, n: int, steps: int, guidance: float, temperature: float, seed: int = 0):
    """Scores of ``n`` class-conditional samples (``n / 10`` per digit) and the wall time per 1,000."""
    labels = torch.arange(n) % 10
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    res = pipe(n, steps=steps, class_labels=labels, guidance=guidance, temperature=temperature, generator=g,
               batch_size=500)
    dt = time.perf_counter() - t0
    m = ev.evaluate(res.samples, res.labels)
    m["seconds_per_1000"] = dt * 1000.0 / n
    return m, res.samples


def _train_digits(report: BenchReport, quick: bool, work: Path) -> dict[str, Path]:
    """The two autoencoders and the two diffusion models; their AE rows and a note."""
    t0 = time.time()
    runs = {k: work / k for k in DIGITS}
    metrics, reused = {}, []
    for k in ("ae", "ae_continuous"):
        metrics[k], again = _train(DIGITS[k], runs[k], quick, "binary_ae_quick")
        reused += [k] if again else []
        d = k.replace("ae", "diffusion")
        _, again = _train(DIGITS[d], runs[d], quick, "binary_diffusion_quick", ae_run=runs[k])
        reused += [d] if again else []
    report.note(f"digits: 2 autoencoders + 2 diffusion models (default experiment configs"
                f"{', quick: 3 / 10 epochs' if quick else ''}; same denoiser size) ready in {time.time() - t0:.0f} s"
                + (f"; finished runs with the same settings reused from {work}: {', '.join(reused)}" if reused else ""))
    report.add("digits AE test PSNR (binary, 256 bits)", metrics["ae"].get("test/psnr"), "dB")
    report.add("digits AE test PSNR (continuous, 256 floats)", metrics["ae_continuous"].get("test/psnr"), "dB")
    report.add("digits AE bit usage (fraction of bits not constant)", metrics["ae"].get("test/bit_usage"), "",
               target=">= 0.9")
    return runs


def _sample_digits(report: BenchReport, pipes: dict, ev, n: int, work: Path) -> dict[str, dict[int, dict]]:
    """Scores of every pipeline at every step count, without and with guidance; 16-step sample grids."""
    from latent4d.binary.io import save_image_grid

    results: dict[str, dict[int, dict]] = {k: {} for k in pipes}
    for name, pipe in pipes.items():
        for s in STEPS:
            m0, samples = _score(pipe, ev, n, s, 0.0, TEMPERATURE)
            mg, samples_g = _score(pipe, ev, n, s, GUIDANCE, TEMPERATURE)
            results[name][s] = {"plain": m0, "guided": mg}
            if s != 16:
                continue
            for tag, x in (("w0", samples), (f"w{GUIDANCE:g}", samples_g)):
                p = save_image_grid(x[:100], work / f"digits_{name.split()[0]}_16steps_{tag}.png", nrow=10, scale=3)
                report.artifact(f"digits samples, {name}, 16 steps, guidance {tag[1:]}", p)
    return results


def _report_digits(report: BenchReport, results: dict[str, dict[int, dict]], n: int) -> None:
    w = f"{GUIDANCE:g}"
    for name, by_steps in results.items():
        for s in STEPS:
            m0, mg = by_steps[s]["plain"], by_steps[s]["guided"]
            report.add(f"{name} S={s}: FD", m0["fd"], "")
            report.add(f"{name} S={s}: confidence", m0["confidence"], "")
            report.add(f"{name} S={s}: class accuracy", m0["accuracy"], "")
            report.add(f"{name} S={s}: FD, guidance {w}", mg["fd"], "")
            report.add(f"{name} S={s}: class accuracy, guidance {w}", mg["accuracy"], "",
                       target=">= 0.9" if (name == "binary" and s == 16) else None)
            report.add(f"{name} S={s}: time per 1000 samples", m0["seconds_per_1000"], "s")
    b, c = results["binary"], results["continuous DDIM"]
    report.add("binary FD(16) / FD(64)", b[16]["plain"]["fd"] / max(b[64]["plain"]["fd"], 1e-9), "",
               target="<= 1.1")
    report.add("binary FD(16) / continuous FD(16)", b[16]["plain"]["fd"] / max(c[16]["plain"]["fd"], 1e-9), "",
               target="<= 1.0")
    report.add(f"binary FD(16) / continuous FD(16), guidance {w}",
               b[16]["guided"]["fd"] / max(c[16]["guided"]["fd"], 1e-9), "", target="<= 1.0")
    report.add(f"binary accuracy(16) - continuous accuracy(16), guidance {w}",
               b[16]["guided"]["accuracy"] - c[16]["guided"]["accuracy"], "", target=">= 0")
    report.note(f"digits: n={n} class-conditional samples per setting (n/10 per digit); 'FD', 'confidence', "
                f"'class accuracy' without guidance, ', guidance w' with classifier-free guidance (1+w) cond - w "
                f"uncond; Bernoulli temperature {TEMPERATURE}; DDIM eta=0, trailing spacing. FD depends on n: compare "
                "rows with the same n only. Time per 1000 samples is sampling + decoding without guidance "
                "(guidance doubles the denoiser cost), batch 500, on this machine.")


def bench_digits(report: BenchReport, quick: bool, work: Path) -> None:
    """Bernoulli vs continuous latent diffusion on the digits (see the module docstring)."""
    from latent4d.binary.metrics import DigitsEvaluator
    from latent4d.binary.pipeline import BinaryLatentPipeline, GaussianLatentPipeline

    n = 200 if quick else 1000
    runs = _train_digits(report, quick, work)
    ev = DigitsEvaluator(epochs=5 if quick else 20)
    report.add("judge classifier test accuracy", ev.test_accuracy, "", target=">= 0.95")
    report.add(f"FD real held-out val digits vs test digits (n={len(ev.val_x)}, reference)", ev.real_fd, "")
    pipes = {"binary": BinaryLatentPipeline.from_pretrained(runs["diffusion"]),
             "continuous DDIM": GaussianLatentPipeline.from_pretrained(runs["diffusion_continuous"])}
    _report_digits(report, _sample_digits(report, pipes, ev, n, work), n)


def bench_voxels(report: BenchReport, quick: bool, work: Path) -> None:
    """Voxel autoencoder IoU / bit usage and a gallery of 16-step diffusion samples (one per category)."""
    from latent4d.binary.io import write_voxel_samples
    from latent4d.binary.pipeline import BinaryLatentPipeline

    ae_run, df_run = work / "ae_voxels", work / "diffusion_voxels"
    t0 = time.time()
    ae_m, ae_again = _train("binary/ae_voxels", ae_run, quick, "binary_ae_voxels_quick")
    report.add("voxel AE test IoU (32^3)", ae_m.get("test/iou"), "")
    report.add("voxel AE bit usage", ae_m.get("test/bit_usage"), "")
    _, df_again = _train("binary/diffusion_voxels", df_run, quick, "binary_diffusion_quick", ae_run=ae_run)
    reused = [r.name for r, again in ((ae_run, ae_again), (df_run, df_again)) if again]
    report.note(f"voxels: AE + diffusion ready in {time.time() - t0:.0f} s"
                + (f" (reused: {', '.join(reused)})" if reused else ""))
    pipe = BinaryLatentPipeline.from_pretrained(df_run)
    labels = torch.arange(12) % max(1, pipe.num_classes) if pipe.num_classes else None
    res = pipe(12, steps=16, temperature=TEMPERATURE, guidance=GUIDANCE, class_labels=labels,
               generator=torch.Generator().manual_seed(0))
    try:
        info = write_voxel_samples(res.samples, work / "voxel_samples", ncol=6)
        if "gallery" in info:
            report.artifact("voxel samples (16 steps, one column per category)", info["gallery"])
    except Exception as e:  # noqa: BLE001 - rendering needs Open3D's offscreen renderer
        info = write_voxel_samples(res.samples, work / "voxel_samples", render=False)
        report.note(f"voxel gallery not rendered ({type(e).__name__}: {e}); meshes under {work / 'voxel_samples'}")
    report.add("voxel samples that mesh to a surface (of 12)", 12 - info["empty"], "")


def bench_binary(report: BenchReport, quick: bool) -> None:
    """``latent4d bench binary``: the digits, then the voxels (work folder ``$LATENT4D_BENCH_WORK`` or
    ``<out>/binary_work``, where finished runs with the same settings are reused)."""
    import os

    work = Path(os.environ.get("LATENT4D_BENCH_WORK", report.out_dir / "binary_work"))
    bench_digits(report, quick, work / "digits")
    bench_voxels(report, quick, work / "voxels")


BENCHMARKS = {"binary": bench_binary}
