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
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from latent4d.bench import BenchReport

STEPS = (4, 8, 16, 32, 64)
QUIET = ["callbacks=minimal", "logger=csv"]


REUSED: list[str] = []  # runs reused by _train in this process (named in the report's notes)


def _train(overrides: list[str], out: Path) -> dict:
    """Train ``overrides`` into ``out``, or reuse a finished run there whose training settings are
    the same (:func:`latent4d.bench.finished_run_matches`); returns its test metrics."""
    import json

    from latent4d.bench import finished_run_matches
    from latent4d.train import compose_config, replace_run, run_training

    cfg = compose_config([*overrides, *QUIET], out)
    if finished_run_matches(out, cfg):
        REUSED.append(out.name)
        return json.loads((out / "metrics.json").read_text())
    replace_run(out)
    return run_training(cfg)


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


def digits(report: BenchReport, quick: bool, work: Path) -> None:
    from latent4d.binary.io import save_image_grid
    from latent4d.binary.metrics import DigitsEvaluator
    from latent4d.binary.pipeline import BinaryLatentPipeline, GaussianLatentPipeline

    quick_ep = (["trainer.max_epochs=3"], ["trainer.max_epochs=10"]) if quick else ([], [])
    n = 200 if quick else 1000
    guidance, temperature = 1.0, 0.9
    t0 = time.time()
    runs = {k: work / k for k in ("ae", "diffusion", "ae_continuous", "diffusion_continuous")}
    ae_m = _train(["experiment=binary/ae_digits", *quick_ep[0]], runs["ae"])
    _train(["experiment=binary/diffusion_digits", f"autoencoder_path={runs['ae']}", *quick_ep[1]], runs["diffusion"])
    aec_m = _train(["experiment=binary/ae_digits_continuous", *quick_ep[0]], runs["ae_continuous"])
    _train(["experiment=binary/diffusion_digits_continuous", f"autoencoder_path={runs['ae_continuous']}", *quick_ep[1]],
           runs["diffusion_continuous"])
    reused = [k for k in runs if k in REUSED]
    report.note(f"digits: 2 autoencoders + 2 diffusion models (default experiment configs"
                f"{', quick: 3 / 10 epochs' if quick else ''}; same denoiser size) ready in {time.time() - t0:.0f} s"
                + (f"; finished runs with the same settings reused from {work}: {', '.join(reused)}" if reused else ""))
    report.add("digits AE test PSNR (binary, 256 bits)", ae_m.get("test/psnr"), "dB")
    report.add("digits AE test PSNR (continuous, 256 floats)", aec_m.get("test/psnr"), "dB")
    report.add("digits AE bit usage (fraction of bits not constant)", ae_m.get("test/bit_usage"), "",
               target=">= 0.9")

    ev = DigitsEvaluator(epochs=5 if quick else 20)
    report.add("judge classifier test accuracy", ev.test_accuracy, "", target=">= 0.95")
    report.add(f"FD real held-out val digits vs test digits (n={len(ev.val_x)}, reference)", ev.real_fd, "")

    pipes = {"binary": BinaryLatentPipeline.from_pretrained(runs["diffusion"]),
             "continuous DDIM": GaussianLatentPipeline.from_pretrained(runs["diffusion_continuous"])}
    results: dict[str, dict[int, dict]] = {k: {} for k in pipes}
    for name, pipe in pipes.items():
        for s in STEPS:
            m0, samples = _score(pipe, ev, n, s, 0.0, temperature)
            mg, samples_g = _score(pipe, ev, n, s, guidance, temperature)
            results[name][s] = {"plain": m0, "guided": mg}
            if s == 16:
                for tag, x in (("w0", samples), (f"w{guidance:g}", samples_g)):
                    p = save_image_grid(x[:100], work / f"digits_{name.split()[0]}_16steps_{tag}.png", nrow=10, scale=3)
                    report.artifact(f"digits samples, {name}, 16 steps, guidance {tag[1:]}", p)
    for name in pipes:
        for s in STEPS:
            m0, mg = results[name][s]["plain"], results[name][s]["guided"]
            report.add(f"{name} S={s}: FD", m0["fd"], "")
            report.add(f"{name} S={s}: confidence", m0["confidence"], "")
            report.add(f"{name} S={s}: class accuracy", m0["accuracy"], "")
            report.add(f"{name} S={s}: FD, guidance {guidance:g}", mg["fd"], "")
            report.add(f"{name} S={s}: class accuracy, guidance {guidance:g}", mg["accuracy"], "",
                       target=">= 0.9" if (name == "binary" and s == 16) else None)
            report.add(f"{name} S={s}: time per 1000 samples", m0["seconds_per_1000"], "s")
    b, c = results["binary"], results["continuous DDIM"]
    report.add("binary FD(16) / FD(64)", b[16]["plain"]["fd"] / max(b[64]["plain"]["fd"], 1e-9), "",
               target="<= 1.1")
    report.add("binary FD(16) / continuous FD(16)", b[16]["plain"]["fd"] / max(c[16]["plain"]["fd"], 1e-9), "",
               target="<= 1.0")
    report.add(f"binary FD(16) / continuous FD(16), guidance {guidance:g}",
               b[16]["guided"]["fd"] / max(c[16]["guided"]["fd"], 1e-9), "", target="<= 1.0")
    report.add(f"binary accuracy(16) - continuous accuracy(16), guidance {guidance:g}",
               b[16]["guided"]["accuracy"] - c[16]["guided"]["accuracy"], "", target=">= 0")
    report.note(f"digits: n={n} class-conditional samples per setting (n/10 per digit); 'FD', 'confidence', "
                f"'class accuracy' without guidance, ', guidance w' with classifier-free guidance (1+w) cond - w "
                f"uncond; Bernoulli temperature {temperature}; DDIM eta=0, trailing spacing. FD depends on n: compare "
                "rows with the same n only. Time per 1000 samples is sampling + decoding without guidance "
                "(guidance doubles the denoiser cost), batch 500, on this machine.")


def voxels(report: BenchReport, quick: bool, work: Path) -> None:
    from latent4d.binary.io import write_voxel_samples
    from latent4d.binary.pipeline import BinaryLatentPipeline

    ae_run, df_run = work / "ae_voxels", work / "diffusion_voxels"
    ae_over = ["experiment=binary/ae_voxels"]
    df_over = ["experiment=binary/diffusion_voxels", f"autoencoder_path={ae_run}"]
    if quick:
        ae_over += ["trainer.max_epochs=2", "data.n_per_category=12"]
        df_over += ["trainer.max_epochs=10"]
    t0 = time.time()
    ae_m = _train(ae_over, ae_run)
    report.add("voxel AE test IoU (32^3)", ae_m.get("test/iou"), "")
    report.add("voxel AE bit usage", ae_m.get("test/bit_usage"), "")
    _train(df_over, df_run)
    reused = [r.name for r in (ae_run, df_run) if r.name in REUSED]
    report.note(f"voxels: AE + diffusion ready in {time.time() - t0:.0f} s"
                + (f" (reused: {', '.join(reused)})" if reused else ""))
    pipe = BinaryLatentPipeline.from_pretrained(df_run)
    labels = torch.arange(12) % max(1, pipe.num_classes) if pipe.num_classes else None
    res = pipe(12, steps=16, temperature=0.9, guidance=1.0, class_labels=labels,
               generator=torch.Generator().manual_seed(0))
    try:
        info = write_voxel_samples(res.samples, work / "voxel_samples", ncol=6)
        if "gallery" in info:
            report.artifact("voxel samples (16 steps, one column per category)", info["gallery"])
    except Exception as e:  # noqa: BLE001 - rendering needs Open3D's offscreen renderer
        info = write_voxel_samples(res.samples, work / "voxel_samples", render=False)
        report.note(f"voxel gallery not rendered ({type(e).__name__}: {e}); meshes under {work / 'voxel_samples'}")
    report.add("voxel samples that mesh to a surface (of 12)", 12 - info["empty"], "")


def binary(report: BenchReport, quick: bool) -> None:
    import os

    work = Path(os.environ.get("LATENT4D_BENCH_WORK", report.out_dir / "binary_work"))
    digits(report, quick, work / "digits")
    voxels(report, quick, work / "voxels")


BENCHMARKS = {"binary": binary}
