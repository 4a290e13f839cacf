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


def _train(overrides: list[str], out: Path) -> dict:
    from latent4d.train import compose_config, run_training

    return run_training(compose_config([*overrides, *QUIET], out))


def _score(pipe, ev, n: int, steps: int, guidance: float, temperature: float, seed: int = 0) -> dict:
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
    from latent4d.binary.metrics import DigitsEvaluator
    from latent4d.binary.pipeline import BinaryLatentPipeline, GaussianLatentPipeline, save_image_grid

    ae_ep, df_ep = ("3", "20") if quick else ("40", "300")
    n = 200 if quick else 1000
    guidance, temperature = 1.0, 0.9
    t0 = time.time()
    runs = {k: work / k for k in ("ae", "diffusion", "ae_continuous", "diffusion_continuous")}
    ae_m = _train(["experiment=binary/ae_digits", f"trainer.max_epochs={ae_ep}"], runs["ae"])
    _train(["experiment=binary/diffusion_digits", f"autoencoder_path={runs['ae']}", f"trainer.max_epochs={df_ep}"],
           runs["diffusion"])
    aec_m = _train(["experiment=binary/ae_digits_continuous", f"trainer.max_epochs={ae_ep}"], runs["ae_continuous"])
    _train(["experiment=binary/diffusion_digits_continuous", f"autoencoder_path={runs['ae_continuous']}",
            f"trainer.max_epochs={df_ep}"], runs["diffusion_continuous"])
    report.note(f"digits: trained 2 autoencoders + 2 diffusion models in {time.time() - t0:.0f} s "
                f"(AE {ae_ep} epochs, diffusion {df_ep} epochs)")
    report.add("digits AE test PSNR (binary)", ae_m.get("test/psnr"), "dB")
    report.add("digits AE test PSNR (continuous)", aec_m.get("test/psnr"), "dB")
    report.add("digits AE bit usage (fraction of bits not constant)", ae_m.get("test/bit_usage"), "",
               target=">= 0.9")

    ev = DigitsEvaluator(epochs=5 if quick else 20)
    report.add("judge classifier test accuracy", ev.test_accuracy, "", target=">= 0.95")
    ref = ev.evaluate(ev.train_x[:n] if len(ev.train_x) >= n else ev.train_x)
    report.add(f"FD real train digits vs held-out (n={min(n, len(ev.train_x))}, reference floor)", ref["fd"], "")

    pipes = {"binary": BinaryLatentPipeline.from_pretrained(runs["diffusion"]),
             "continuous DDIM": GaussianLatentPipeline.from_pretrained(runs["diffusion_continuous"])}
    results: dict[str, dict[int, dict]] = {k: {} for k in pipes}
    for name, pipe in pipes.items():
        for s in STEPS:
            m, samples = _score(pipe, ev, n, s, guidance, temperature)
            results[name][s] = m
            if s == 16:
                p = save_image_grid(samples[:100], work / f"digits_{name.split()[0]}_16steps.png", nrow=10, scale=3)
                report.artifact(f"digits samples, {name}, 16 steps", p)
    for name in pipes:
        for s in STEPS:
            m = results[name][s]
            report.add(f"{name} S={s}: FD", m["fd"], "")
            report.add(f"{name} S={s}: confidence", m["confidence"], "")
            report.add(f"{name} S={s}: class accuracy", m["accuracy"], "",
                       target=">= 0.9" if (name == "binary" and s == 16) else None)
            report.add(f"{name} S={s}: time per 1000 samples", m["seconds_per_1000"], "s")
    b, c = results["binary"], results["continuous DDIM"]
    report.add("binary FD(16) / FD(64)", b[16]["fd"] / max(b[64]["fd"], 1e-9), "", target="<= 1.1")
    report.add("binary FD(16) / continuous FD(16)", b[16]["fd"] / max(c[16]["fd"], 1e-9), "", target="<= 1.0")
    report.add("binary accuracy(16) - continuous accuracy(16)", b[16]["accuracy"] - c[16]["accuracy"], "",
               target=">= 0")
    report.note(f"digits: n={n} class-conditional samples per setting (n/10 per digit), guidance w={guidance} "
                f"((1+w) cond - w uncond), Bernoulli temperature {temperature}; DDIM eta=0, trailing spacing; "
                "FD depends on n, compare rows with the same n only")


def voxels(report: BenchReport, quick: bool, work: Path) -> None:
    from latent4d.binary.commands import write_voxel_samples
    from latent4d.binary.pipeline import BinaryLatentPipeline

    ae_run, df_run = work / "ae_voxels", work / "diffusion_voxels"
    ae_over = ["experiment=binary/ae_voxels"]
    df_over = ["experiment=binary/diffusion_voxels", f"autoencoder_path={ae_run}"]
    if quick:
        ae_over += ["trainer.max_epochs=2", "data.n_per_category=12"]
        df_over += ["trainer.max_epochs=10"]
    t0 = time.time()
    ae_m = _train(ae_over, ae_run)
    report.add("voxel AE test IoU (32^3)", ae_m.get("test/iou"), "", target=">= 0.8")
    report.add("voxel AE bit usage", ae_m.get("test/bit_usage"), "")
    _train(df_over, df_run)
    report.note(f"voxels: AE + diffusion trained in {time.time() - t0:.0f} s")
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
