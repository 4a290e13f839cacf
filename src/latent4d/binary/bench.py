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
BIT_CHANNELS = (8, 16, 32, 64)  # bits per token of the bits sweep (4 x 4 tokens: 128 ... 1024 bits)
QUIET = ["callbacks=minimal", "logger=csv"]
#: None: each binary model samples at its own calibrated temperature (latent4d.binary.calibrate)
GUIDANCE, TEMPERATURE = 1.0, None
TEMPERATURES = (0.6, 0.9, 1.0, 1.5, 2.0)  # the binary model's temperature rows (16 steps); 0.9: the official release's
#: diffusion losses compared with the default (``model.loss=focal``, the official release) at 16 steps,
#: same autoencoder, seed and epochs: ``bce`` was latent4d's default before (docs/binary.md)
LOSS_VARIANTS = ("bce",)
DIGITS = {"ae": "binary/ae_digits", "diffusion": "binary/diffusion_digits",
          "ae_continuous": "binary/ae_digits_continuous", "diffusion_continuous": "binary/diffusion_digits_continuous"}


def _weights_key(run: Path) -> dict[str, str]:
    """Hashes of a run's exported autoencoder weights: a diffusion run trained on them is reused only
    while they are the same."""
    import hashlib

    folder = run / "models" / "autoencoder"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.safetensors"))}


def _train(experiment: str, run: Path, quick: bool, preset: str, ae_run: Path | None = None,
           extra: list[str] | None = None) -> tuple[dict, bool]:
    """Train ``experiment`` (+ ``extra`` overrides) into ``run`` (with ``preset`` when quick; on ``ae_run``'s
    autoencoder for a diffusion experiment), or reuse a finished run there: ``(test metrics, reused)``."""
    from latent4d.bench import train_or_reuse

    overrides = [f"experiment={experiment}", *QUIET, *([f"preset={preset}"] if quick else []), *(extra or [])]
    if ae_run is None:
        return train_or_reuse(overrides, run)
    return train_or_reuse([*overrides, f"autoencoder_path={ae_run}"], run, key=_weights_key(ae_run))


def _score(pipe, ev, n: int, steps: int, guidance: float, temperature: float | None, seed: int = 0,
           num_classes: int = 10):
    """Scores of ``n`` class-conditional samples (``n / num_classes`` per class) and the wall time per 1,000."""
    labels = torch.arange(n) % num_classes
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
    from latent4d.binary.autoencoder import load_autoencoder

    bits, floats = (load_autoencoder(runs[k])[0].num_bits for k in ("ae", "ae_continuous"))
    report.add(f"digits AE test PSNR (binary, {bits} bits)", metrics["ae"].get("test/psnr"), "dB")
    report.add(f"digits AE test PSNR (continuous, {floats} floats)", metrics["ae_continuous"].get("test/psnr"), "dB")
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
                f"uncond; Bernoulli temperature {_temperature_note(TEMPERATURE)}; DDIM eta=0, trailing spacing. "
                "FD depends on n: compare rows with the same n only. Time per 1000 samples is sampling + decoding without guidance "
                "(guidance doubles the denoiser cost), batch 500, on this machine.")


def recon_floor(ae_run: Path, ev) -> dict[str, float]:
    """The autoencoder of ``ae_run`` on the judge's held-out val split (encode, threshold / keep the
    latents, decode): ``fd`` of the reconstructions to the test split (the floor a diffusion model on
    these latents cannot beat, to compare with ``ev.real_fd``), ``psnr`` (images) or ``iou`` (grids)."""
    from latent4d.binary.autoencoder import load_autoencoder
    from latent4d.binary.metrics import iou, psnr

    ae, _ = load_autoencoder(ae_run)
    with torch.no_grad():
        rec = torch.cat([ae.decode(ae.encode_latents_batched(ev.val_x[i:i + 256]))
                         for i in range(0, len(ev.val_x), 256)])
    out = {"fd": ev.evaluate(rec)["fd"], "bits": ae.num_bits}
    key, fn = ("iou", iou) if ae.config.dims == 3 else ("psnr", psnr)
    out[key] = float(fn(rec, ev.val_x).mean())
    return out


def _floor_rows(report: BenchReport, family: str, floors: dict[str, dict], ev) -> None:
    n = len(ev.val_x)
    report.add(f"{family} FD real held-out val vs test (n={n}, reference)", ev.real_fd, "")
    for name, f in floors.items():
        report.add(f"{family} reconstruction floor, {name}: FD of AE reconstructions of val vs test (n={n})",
                   f["fd"], "")


def bench_digits(report: BenchReport, quick: bool, work: Path) -> None:
    """Bernoulli vs continuous latent diffusion on the digits (see the module docstring)."""
    from latent4d.binary.metrics import DigitsEvaluator
    from latent4d.binary.pipeline import BinaryLatentPipeline, GaussianLatentPipeline

    n = 200 if quick else 1000
    runs = _train_digits(report, quick, work)
    ev = DigitsEvaluator(epochs=5 if quick else 20)
    report.add("judge classifier test accuracy", ev.test_accuracy, "", target=">= 0.95")
    floors = {"binary": recon_floor(runs["ae"], ev), "continuous": recon_floor(runs["ae_continuous"], ev)}
    _floor_rows(report, "digits", floors, ev)
    pipes = {"binary": BinaryLatentPipeline.from_pretrained(runs["diffusion"]),
             "continuous DDIM": GaussianLatentPipeline.from_pretrained(runs["diffusion_continuous"])}
    _param_rows(report, pipes, floors)
    results = _sample_digits(report, pipes, ev, n, work)
    _report_digits(report, results, n)
    _plot_steps(report, "digits", {k: {s: r[s]["plain"]["fd"] for s in STEPS} for k, r in results.items()}
                | {f"{k}, guidance {GUIDANCE:g}": {s: r[s]["guided"]["fd"] for s in STEPS} for k, r in results.items()},
                floors, ev.real_fd, work)
    _temperature_rows(report, pipes["binary"], ev, n)
    _loss_rows(report, quick, work, runs, results["binary"][16], ev, n)
    _bits_sweep(report, quick, work, runs["ae"], floors, ev)


def _temperature_note(temperature: float | None, pipe=None) -> str:
    if temperature is not None:
        return f"{temperature:g}"
    return "the model's calibrated one" + (f" ({pipe.default_temperature:g})" if pipe is not None else "")


def _temperature_rows(report: BenchReport, pipe, ev, n: int) -> None:
    """Binary model at 16 steps: its calibrated temperature, then FD / class accuracy at other sampling
    temperatures."""
    report.add("binary sampling temperature (calibrated on the training codes)", pipe.default_temperature, "")
    for temp in TEMPERATURES:
        for w in (0.0, GUIDANCE):
            m, _ = _score(pipe, ev, n, 16, w, temp)
            tag = f", guidance {w:g}" if w else ""
            report.add(f"binary S=16, temperature {temp:g}: FD{tag}", m["fd"], "")
            report.add(f"binary S=16, temperature {temp:g}: class accuracy{tag}", m["accuracy"], "")


def _loss_rows(report: BenchReport, quick: bool, work: Path, runs: dict[str, Path], default: dict, ev, n: int) -> None:
    """The binary diffusion trained with each of ``LOSS_VARIANTS`` instead of the loss of ``runs["diffusion"]``
    (same AE ``runs["ae"]``, seed, epochs and sampler): FD / class accuracy at 16 steps without and with
    guidance, and the difference to the default model's ``default`` (negative = the variant is better)."""
    from latent4d.binary.pipeline import BinaryLatentPipeline
    from latent4d.config import load_run_config

    default_loss = load_run_config(runs["diffusion"]).model.loss
    for loss in LOSS_VARIANTS:
        if loss == default_loss:
            continue
        run = work / f"diffusion_loss_{loss}"
        _train(DIGITS["diffusion"], run, quick, "binary_diffusion_quick", ae_run=runs["ae"],
               extra=[f"model.loss={loss}"])
        pipe = BinaryLatentPipeline.from_pretrained(run)
        for w in (0.0, GUIDANCE):
            m, _ = _score(pipe, ev, n, 16, w, TEMPERATURE)
            tag = f", guidance {w:g}" if w else ""
            report.add(f"binary S=16, loss={loss}: FD{tag}", m["fd"], "")
            report.add(f"binary S=16, loss={loss}: class accuracy{tag}", m["accuracy"], "")
            report.add(f"binary S=16, loss={loss} - loss={default_loss}: FD{tag}",
                       m["fd"] - default["guided" if w else "plain"]["fd"], "")
    report.note(f"loss rows: the digits diffusion retrained with model.loss in {LOSS_VARIANTS} instead of the "
                f"configured '{default_loss}' (same autoencoder, seed, epochs; sampled with the same seeds, each "
                "model at its own calibrated temperature)")


def _param_rows(report: BenchReport, pipes: dict, floors: dict[str, dict]) -> None:
    """Denoiser parameters of both models and the latent sizes (binary bits vs continuous fp16 bits)."""
    for name, pipe in pipes.items():
        report.add(f"{name} denoiser parameters", sum(p.numel() for p in pipe.denoiser.parameters()), "")
    bits, floats = floors["binary"]["bits"], floors["continuous"]["bits"]
    report.add("binary code size / continuous latent size in fp16 bits", bits / (16 * floats), "",
               target="<= 0.25")
    report.note(f"digits latents: binary {bits} bits, continuous {floats} floats ({16 * floats} bits in fp16)")


def _plot_steps(report: BenchReport, family: str, fd: dict[str, dict[int, float]], floors: dict[str, dict],
                real_fd: float, work: Path) -> None:
    """PNG: FD vs sampling steps per model, the reconstruction floors and the real-data reference."""
    from latent4d.binary.plots import line_plot

    steps = sorted(next(iter(fd.values())))
    p = line_plot({k: (steps, [v[s] for s in steps]) for k, v in fd.items()}, work / f"{family}_fd_vs_steps.png",
                  f"{family}: FD of samples vs sampling steps", "sampling steps", "FD",
                  hlines={f"{k} AE floor": f["fd"] for k, f in floors.items()} | {"real val vs test": real_fd})
    report.artifact(f"{family}: FD vs sampling steps (PNG)", p)


def _bits_sweep(report: BenchReport, quick: bool, work: Path, ae_run: Path, floors: dict[str, dict], ev) -> None:
    """Binary digits AEs with 128 / 256 / 512 / 1024 bits (4 x 4 tokens x 8..64 bits; same encoder /
    decoder widths): test PSNR and reconstruction FD; PNG of FD vs bits. The default AE is reused."""
    from latent4d.binary.autoencoder import load_autoencoder
    from latent4d.binary.plots import line_plot

    default_c = load_autoencoder(ae_run)[0].config.latent_channels
    fds, t0 = {}, time.time()
    for c in BIT_CHANNELS:
        if c == default_c:
            f = floors["binary"]
        else:
            run = work / f"ae_{16 * c}bits"
            _train(DIGITS["ae"], run, quick, "binary_ae_quick", extra=[f"model.autoencoder.latent_channels={c}"])
            f = recon_floor(run, ev)
        fds[16 * c] = f["fd"]
        report.add(f"bits sweep: {16 * c} bits, val PSNR", f["psnr"], "dB")
        report.add(f"bits sweep: {16 * c} bits, reconstruction FD (val vs test)", f["fd"], "")
    report.note(f"bits sweep: binary digits AEs at 4 x 4 tokens x {', '.join(map(str, BIT_CHANNELS))} bits "
                f"(experiment binary/ae_digits, only model.autoencoder.latent_channels changed), ready in "
                f"{time.time() - t0:.0f} s")
    bits = sorted(fds)
    p = line_plot({"binary AE": (bits, [fds[b] for b in bits])}, work / "digits_recon_fd_vs_bits.png",
                  "digits: reconstruction FD vs bits (4x4 tokens)", "bits per image", "FD (val recon vs test)",
                  hlines={"continuous AE (256 floats)": floors["continuous"]["fd"], "real val vs test": ev.real_fd})
    report.artifact("digits: reconstruction FD vs bits (PNG)", p)


def bench_voxels(report: BenchReport, quick: bool, work: Path) -> None:
    """Voxel autoencoder IoU / bit usage, its reconstruction floor and FD of class-conditional samples at
    every step count (judge: :class:`latent4d.binary.metrics.VoxelEvaluator`), a gallery at 16 steps."""
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
    ev = _voxel_judge(ae_run, quick)
    report.add("voxel judge classifier test accuracy", ev.test_accuracy, "")
    floors = {"binary": recon_floor(ae_run, ev)}
    _floor_rows(report, "voxels", floors, ev)
    n = 60 if quick else 240
    fd = {}
    for s in STEPS:
        m, samples = _score(pipe, ev, n, s, GUIDANCE, TEMPERATURE, num_classes=pipe.num_classes)
        fd[s] = m["fd"]
        report.add(f"voxels binary S={s}: FD, guidance {GUIDANCE:g}", m["fd"], "")
        report.add(f"voxels binary S={s}: class accuracy, guidance {GUIDANCE:g}", m.get("accuracy"), "")
        if s == 16:
            _voxel_gallery(report, samples[:12], work)
    report.note(f"voxels: n={n} class-conditional samples per step count (n/6 per category, guidance "
                f"{GUIDANCE:g}, temperature {_temperature_note(TEMPERATURE, pipe)}); FD of a 3D judge classifier's features to the real "
                f"test split (n={len(ev.test_x)}); small n: FDs are noisy, compare rows of this bench only")
    _plot_steps(report, "voxels", {f"binary, guidance {GUIDANCE:g}": fd}, floors, ev.real_fd, work)


def _voxel_judge(ae_run: Path, quick: bool):
    """The 3D judge on the voxel AE run's own data (same source, resolution, shapes and split)."""
    from latent4d.binary.data import LatentDataModule
    from latent4d.binary.metrics import VoxelEvaluator

    dm = LatentDataModule(autoencoder_path=str(ae_run))
    dm.arrays("train")  # builds dm.source from the run's config.yaml (binary data modules only)
    src = dm.source
    key = dict(src=src.source, R=src.resolution, n=src.n_per_category, seed=src.seed)
    return VoxelEvaluator(src, key, epochs=4 if quick else 10)


def _voxel_gallery(report: BenchReport, samples: torch.Tensor, work: Path) -> None:
    from latent4d.binary.io import write_voxel_samples

    try:
        info = write_voxel_samples(samples, work / "voxel_samples", ncol=6)
        if "gallery" in info:
            report.artifact("voxel samples (16 steps, one column per category)", info["gallery"])
    except Exception as e:  # noqa: BLE001 - rendering needs Open3D's offscreen renderer
        info = write_voxel_samples(samples, work / "voxel_samples", render=False)
        report.note(f"voxel gallery not rendered ({type(e).__name__}: {e}); meshes under {work / 'voxel_samples'}")
    report.add(f"voxel samples that mesh to a surface (of {len(samples)})", len(samples) - info["empty"], "")


def bench_binary(report: BenchReport, quick: bool) -> None:
    """``latent4d bench binary``: the digits, then the voxels (work folder ``$LATENT4D_BENCH_WORK`` or
    ``<out>/binary_work``, where finished runs with the same settings are reused)."""
    import os

    work = Path(os.environ.get("LATENT4D_BENCH_WORK", report.out_dir / "binary_work"))
    bench_digits(report, quick, work / "digits")
    bench_voxels(report, quick, work / "voxels")


def bench_binary_scale(report: BenchReport, quick: bool) -> None:
    """``latent4d bench binary_scale``: :mod:`latent4d.binary.bench_scale`, given this module's pieces."""
    import types

    from latent4d.binary.bench_scale import bench_binary_scale as run

    parts = types.SimpleNamespace(train=_train, score=_score, digits=DIGITS, guidance=GUIDANCE, temperature=TEMPERATURE)
    run(report, quick, parts)


BENCHMARKS = {"binary": bench_binary, "binary_scale": bench_binary_scale}
