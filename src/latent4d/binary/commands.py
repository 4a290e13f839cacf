"""CLI commands of the binary family (``latent4d sample|evaluate|demo`` dispatch here).

``latent4d sample run=<diffusion run> steps=16 [temperature=<default: the model's calibrated one>]
guidance=1.0 [n=64] [class=3|all|none] [seed=0] [out=<dir>]`` writes a PNG grid (images) or meshes + renders (occupancy grids).
``latent4d evaluate run=<run>``: autoencoder runs -> reconstruction metrics, bit usage and a
reconstruction grid; diffusion runs on digits -> Fréchet distance / confidence / class accuracy of ``n``
class-conditional samples at ``steps`` (one value or a list), without and with ``guidance``
(``unconditional=true`` adds label-free samples); diffusion runs on grids -> occupied fraction and
the IoU of each sample with its nearest test shape.

Options are typed and range-checked (:class:`SampleOptions`, :class:`EvaluateOptions`; unknown keys,
``steps=0``, ``n=0``, ``temperature<=0``, negative seeds are errors) before any network loads. A
run folder is data: its config's ``_target_`` values are checked against the binary allow-list
(:mod:`latent4d.trust`) before anything is built from it, and its networks load as safetensors only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from latent4d import progress
from latent4d.binary.io import save_image_grid, write_voxel_samples
from latent4d.errors import ConfigError, Latent4DError
from latent4d.fileio import write_json_atomic
from latent4d.options import check_output_dir, opt, parse_options

_AE = "BernoulliAEModule"
_BINARY = "BinaryDiffusionModule"
_GAUSS = "GaussianDiffusionModule"
SPLITS = ("train", "val", "test")  # = latent4d.binary.data.SPLITS (not imported: it pulls in Lightning)
_SEED_MAX = 2**63 - 1


# ----------------------------------------------------------------------------------------------
# options (one spec per command; defaults are those of the commands before the specs)


@dataclass
class SampleOptions:
    """``latent4d sample run=<binary diffusion run>`` (``class=`` is the ``class_`` field)."""

    run: str | None = None
    steps: int = opt(16, min=1, max=100_000, help="denoising steps (at most the model's T)")
    temperature: float | None = opt(None, gt=0.0, max=100.0, help="default: the model's calibrated temperature")
    guidance: float | None = opt(None, min=0.0, max=100.0, help="default: 1 (class-conditional models) or 0")
    n: int | None = opt(None, min=1, max=100_000, help="default: 16 grids, 8 per class, or 64 images")
    class_: str | None = opt("all", help="a class index, all (one row per class) or none")
    seed: int = opt(0, min=0, max=_SEED_MAX)
    out: str | None = opt(None, help="output folder (default <run>/samples)")
    render: bool = True
    scale: int | None = opt(None, min=1, max=64, help="image grid upscaling (default: to ~64 px)")

    def validate(self) -> None:
        c = self.class_
        if c is not None and c.lower() not in ("all", "none") and not (c.isdigit() and int(c) < 100_000):
            raise ConfigError(f"sample: class={c} is not valid: give a class index (0, 1, ...), all or none")


@dataclass
class EvaluateOptions:
    """``latent4d evaluate run=<binary run>`` (``steps`` may be a list: ``steps=[2,4,16]``)."""

    run: str | None = None
    split: str = opt("test", choices=SPLITS, help="autoencoder runs: the split to reconstruct")
    render: bool = True
    steps: Any = opt(16, help="one step count or a list of them")
    temperature: float | None = opt(None, gt=0.0, max=100.0, help="default: the model's calibrated temperature")
    guidance: float = opt(1.0, min=0.0, max=100.0)
    n: int = opt(1000, min=1, max=100_000)
    seed: int = opt(0, min=0, max=_SEED_MAX)
    classifier_epochs: int = opt(20, min=1, max=1000)
    unconditional: bool = False

    def validate(self) -> None:
        self.steps = _steps_list(self.steps)


def _parse(spec, args, command: str):
    """:func:`parse_options` with ``class=`` (a Python keyword) mapped onto the ``class_`` field."""
    given = OmegaConf.to_container(args, resolve=False) if isinstance(args, DictConfig) else dict(args or {})
    if "class" in given:
        given["class_"] = given.pop("class")
    try:
        return parse_options(spec, given, command)
    except ConfigError as e:
        raise ConfigError(str(e).replace("class_", "class")) from None


def _kind(run_cfg: DictConfig) -> str:
    target = str(OmegaConf.select(run_cfg, "model._target_") or "")
    for k in (_AE, _BINARY, _GAUSS):
        if target.endswith(k):
            return k
    raise ConfigError(f"not a binary-family run: model target '{target}'")


def _pipeline(run_dir: Path, run_cfg: DictConfig):
    from latent4d.binary.pipeline import BinaryLatentPipeline, GaussianLatentPipeline

    kind = _kind(run_cfg)
    if kind == _AE:
        raise ConfigError(f"'{run_dir}' is an autoencoder run: sample from a diffusion run "
                          "(`latent4d train experiment=binary/diffusion_digits autoencoder_path=<this run>`), "
                          "or use `latent4d evaluate run=<this run>` for reconstructions")
    cls = BinaryLatentPipeline if kind == _BINARY else GaussianLatentPipeline
    return cls.from_pretrained(run_dir, device="cuda" if torch.cuda.is_available() else "cpu")


def _run_data(run_cfg: DictConfig, run_dir: Path):
    """The run's data module, built from its config.yaml through the binary allow-list
    (:func:`latent4d.trust.instantiate_from_run`: no other ``_target_`` is ever called)."""
    from latent4d.trust import instantiate_from_run

    if run_cfg.get("data") is None:
        raise ConfigError(f"run '{run_dir}': config.yaml has no data section; the run folder is damaged")
    return instantiate_from_run(run_cfg.data, "binary", f"run '{run_dir}' config.yaml: data")


def _class_arg(value, pipe, n: int) -> torch.Tensor | None:
    """class=<int>|all|none -> labels for n samples (all: cycle through the classes, row per class)."""
    if pipe.num_classes == 0 or value is None or str(value).lower() == "none":
        return None
    if str(value).lower() == "all":
        return torch.arange(n) // max(1, n // pipe.num_classes) % pipe.num_classes
    return torch.full((n,), int(value), dtype=torch.long)


def _is_volume(pipe) -> bool:
    return pipe.autoencoder.config.dims == 3


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Sample a diffusion run: PNG grid for images, meshes + a rendered gallery for occupancy grids.

    Options: :class:`SampleOptions` (checked, with ``out=``, before the networks load)."""
    o = _parse(SampleOptions, args, "sample")
    out = check_output_dir(o.out or run_dir / "samples", "out")
    pipe = _pipeline(run_dir, run_cfg)
    steps, temperature = o.steps, _temperature(o.temperature, pipe)
    guidance = o.guidance if o.guidance is not None else (1.0 if pipe.num_classes else 0.0)
    vol = _is_volume(pipe)
    n = o.n if o.n is not None else (16 if vol else (8 * pipe.num_classes if pipe.num_classes else 64))
    if o.class_ is not None and o.class_.isdigit() and pipe.num_classes and int(o.class_) >= pipe.num_classes:
        raise ConfigError(f"sample: class={o.class_} is not a class of this model: it has {pipe.num_classes} "
                          f"classes (0..{pipe.num_classes - 1}); or use class=all / class=none")
    labels = _class_arg(o.class_, pipe, n)
    g = torch.Generator().manual_seed(o.seed)
    res = pipe(n, steps=steps, class_labels=labels, guidance=guidance, generator=g, temperature=temperature)
    tag = f"s{steps}_t{temperature:g}_g{guidance:g}"
    info = {"steps": steps, "temperature": temperature, "guidance": guidance, "n": n,
            "labels": res.labels.tolist()}
    if vol:
        info.update(write_voxel_samples(res.samples, out / tag, render=o.render))
        print(f"[latent4d] wrote {len(info['meshes'])} meshes under {out / tag}"
              + (f" and {info['gallery']}" if "gallery" in info else ""))
    else:
        nrow = max(1, n // pipe.num_classes) if labels is not None and str(o.class_) == "all" else None
        scale = o.scale if o.scale is not None else max(1, 64 // res.samples.shape[-1])
        png = save_image_grid(res.samples, out / f"samples_{tag}.png", nrow=nrow, scale=scale)
        info["grid"] = str(png)
        print(f"[latent4d] wrote {png}")
    write_json_atomic(out / f"samples_{tag}.json", info)
    return info


def _steps_list(value) -> list[int]:
    """``steps=`` as a list of step counts (``16``, ``[2,4]`` or ``"2,4"``); ConfigError unless each is >= 1."""
    if isinstance(value, ListConfig | list | tuple):
        items = list(value)
    else:
        items = [v for v in str(value).strip("[]").split(",") if v.strip()]
    try:
        steps = [int(str(v).strip()) for v in items]
    except ValueError:
        raise ConfigError(f"evaluate: steps={value} is not valid: expected a step count or a list of them "
                          "(e.g. steps=16 or steps=[2,4,16])") from None
    if not steps or any(s < 1 or s > 100_000 for s in steps):
        raise ConfigError(f"evaluate: steps={value}: every step count must be in [1, 100000]")
    return steps


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Reconstruction metrics (AE runs) or sample quality (diffusion runs); writes ``<run>/evaluation.json``.

    Options: :class:`EvaluateOptions`. The run's data config is checked against the binary allow-list
    (:func:`latent4d.trust.check_targets`) before anything loads; nothing else from it is ever called."""
    from latent4d.trust import check_targets

    o = _parse(EvaluateOptions, args, "evaluate")
    kind = _kind(run_cfg)
    if run_cfg.get("data") is not None:
        check_targets(run_cfg.data, "binary", f"run '{run_dir}' config.yaml: data")
    res = evaluate_autoencoder(run_dir, run_cfg, o) if kind == _AE else evaluate_diffusion(run_dir, run_cfg, o)
    write_json_atomic(run_dir / "evaluation.json", res)
    print({k: v for k, v in res.items() if not isinstance(v, list | dict)})
    return res


@torch.no_grad()
def evaluate_autoencoder(run_dir: Path, run_cfg: DictConfig, o: EvaluateOptions) -> dict:
    from latent4d.binary.autoencoder import load_autoencoder
    from latent4d.binary.metrics import BitUsage, iou, psnr
    dm = _run_data(run_cfg, run_dir)
    ae, _ = load_autoencoder(run_dir)
    x, _ = dm.arrays(o.split)
    usage = BitUsage()
    recs = []
    for i in progress.track(range(0, len(x), 128), f"evaluate {o.split}: {len(x)} reconstructions", min_total=4):
        z = ae.encode_latents(x[i:i + 128])
        usage.update(z)
        recs.append(ae.decode(z))
    rec = torch.cat(recs)
    u = usage.compute()
    res = {"split": o.split, "n": len(x), "bits_per_sample": ae.num_bits,
           "bit_usage": u["fraction_active"], "bit_entropy": u["mean_entropy"]}
    if ae.config.dims == 3:
        res["iou"] = float(iou(rec, x).mean())
        if o.render:
            k = min(8, len(x))
            out = run_dir / "evaluation"
            res["inputs"] = write_voxel_samples(x[:k], out, "input")
            res["reconstructions"] = write_voxel_samples(rec[:k], out, "recon")
    else:
        res["psnr"] = float(psnr(rec, x).mean())
        res["l1"] = float((rec - x).abs().mean())
        k = min(32, len(x))
        pairs = torch.stack([x[:k], rec[:k]], 1).flatten(0, 1)
        res["grid"] = str(save_image_grid(pairs, run_dir / "evaluation" / "reconstructions.png", nrow=16,
                                          scale=max(1, 48 // x.shape[-1])))
    return res


@torch.no_grad()
def evaluate_diffusion(run_dir: Path, run_cfg: DictConfig, o: EvaluateOptions) -> dict:
    pipe = _pipeline(run_dir, run_cfg)
    steps, guidance, n, seed = o.steps, o.guidance, o.n, o.seed
    temperature = _temperature(o.temperature, pipe)
    res: dict = {"temperature": temperature, "guidance": guidance, "n": n, "by_steps": {}}
    if _is_volume(pipe):
        from latent4d.binary.metrics import iou

        dm = _run_data(run_cfg, run_dir)  # the latents' data module; its source holds the grids
        dm.setup()
        test_x, _ = dm.source.arrays("test")
        for s in progress.track(steps, "evaluate: sampling at each step count"):
            out = pipe(min(n, 64), steps=s, temperature=temperature, generator=torch.Generator().manual_seed(seed))
            occ = out.samples > 0.5
            best = torch.stack([iou(o_[None].float().expand_as(test_x), test_x).max() for o_ in occ])
            res["by_steps"][s] = {"occupied_fraction": float(occ.float().mean()),
                                  "nearest_test_iou": float(best.mean())}
        return res
    if OmegaConf.select(run_cfg, "data.source", default=None) is None and _digits_run(run_cfg):
        from latent4d.binary.metrics import DigitsEvaluator

        ev = DigitsEvaluator(image_size=pipe.autoencoder.config.sample_size, epochs=o.classifier_epochs)
        res["real_fd"] = ev.real_fd
        res["real_fd_n"] = len(ev.val_x)
        for s in progress.track(steps, "evaluate: sampling at each step count"):
            m: dict = {}
            if pipe.num_classes:  # class-conditional samples, n / 10 per class, without and with guidance
                labels = torch.arange(n) % pipe.num_classes
                for key, w in (("", 0.0), ("_guided", guidance)):
                    if key and w == 0:
                        continue
                    out = pipe(n, steps=s, class_labels=labels, guidance=w, temperature=temperature,
                               generator=torch.Generator().manual_seed(seed))
                    m.update({f"{k}{key}": v for k, v in ev.evaluate(out.samples, out.labels).items()})
            if not pipe.num_classes or o.unconditional:
                out = pipe(n, steps=s, temperature=temperature, generator=torch.Generator().manual_seed(seed))
                m.update({f"{k}_unconditional": v for k, v in ev.evaluate(out.samples).items()})
            res["by_steps"][s] = m
        return res
    raise ConfigError("evaluate for diffusion runs supports digits (Fréchet distance, accuracy) and occupancy grids")


def _temperature(asked: float | None, pipe) -> float:
    """``temperature=`` when given, else the model's calibrated one (0.9 for the continuous baseline, which
    has none and ignores it)."""
    return float(asked) if asked is not None else float(getattr(pipe, "default_temperature", 0.9))


def _digits_run(run_cfg: DictConfig) -> bool:
    """Whether a diffusion run's autoencoder was trained on the digits (read from the AE run's config)."""
    from latent4d.binary.autoencoder import load_autoencoder

    path = OmegaConf.select(run_cfg, "autoencoder_path", default=None)
    if not path:
        return False
    try:
        _, cfg = load_autoencoder(path)
    except (Latent4DError, OSError):  # the AE run may have moved; the exported AE alone does not say
        return False
    return cfg is not None and OmegaConf.select(cfg, "data.source", default=None) == "digits"


def demo(out_dir: Path, quick: bool = False) -> dict:
    """Train the digits autoencoder, then the class-conditional Bernoulli diffusion on its bits, sample
    with 16 steps (one row per digit), and score the samples with the benchmark's classifier
    (``quick``: the presets ``binary_ae_demo_quick`` / ``binary_diffusion_demo_quick``)."""
    import time

    from latent4d.binary.metrics import DigitsEvaluator
    from latent4d.binary.pipeline import BinaryLatentPipeline
    from latent4d.train import compose_config, replace_run, run_training

    t0 = time.time()
    out_dir = Path(out_dir)
    ae_run, dm_run = out_dir / "ae_digits", out_dir / "diffusion_digits"
    quiet = ["callbacks=minimal", "logger=csv"]
    ae_over = ["experiment=binary/ae_digits", *quiet] + (["preset=binary_ae_demo_quick"] if quick else [])
    ae_metrics = run_training(compose_config(ae_over, replace_run(ae_run)))
    df_over = ["experiment=binary/diffusion_digits", f"autoencoder_path={ae_run}", *quiet]
    df_over += ["preset=binary_diffusion_demo_quick"] if quick else []
    df_metrics = run_training(compose_config(df_over, replace_run(dm_run)))
    pipe = BinaryLatentPipeline.from_pretrained(dm_run)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(80) // 8
    res = pipe(80, steps=16, guidance=1.0, class_labels=labels, generator=g)  # at the calibrated temperature
    png = save_image_grid(res.samples, out_dir / "digits_16steps.png", nrow=8, scale=4)
    ev = DigitsEvaluator(epochs=3 if quick else 20)
    scores = ev.evaluate(res.samples, res.labels)
    result = {"ae_test_psnr": ae_metrics.get("test/psnr"), "ae_bit_usage": ae_metrics.get("test/bit_usage"),
              "diffusion_test_loss": df_metrics.get("test/loss"), "steps": 16, "temperature": pipe.default_temperature,
              "guidance": 1.0, "class_accuracy": scores["accuracy"], "fd": scores["fd"],
              "real_fd": ev.real_fd, "grid": str(png), "seconds": round(time.time() - t0, 1),
              "runs": {"autoencoder": str(ae_run), "diffusion": str(dm_run)}}
    write_json_atomic(out_dir / "metrics.json", result)
    return result
