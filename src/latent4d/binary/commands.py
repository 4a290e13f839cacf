"""CLI commands of the binary family (``latent4d sample|evaluate|demo`` dispatch here).

``latent4d sample run=<diffusion run> steps=16 temperature=0.9 guidance=1.0 [n=64] [class=3|all|none]
[seed=0] [out=<dir>]`` writes a PNG grid (images) or meshes + renders (occupancy grids).
``latent4d evaluate run=<run>``: autoencoder runs -> reconstruction metrics, bit usage and a
reconstruction grid; diffusion runs on digits -> Fréchet distance / confidence / class accuracy of ``n``
class-conditional samples at ``steps`` (one value or a list), without and with ``guidance``
(``unconditional=true`` adds label-free samples); diffusion runs on grids -> occupied fraction and
the IoU of each sample with its nearest test shape.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from latent4d.errors import ConfigError
from latent4d.fileio import atomic_path, write_json_atomic

_AE = "BernoulliAEModule"
_BINARY = "BinaryDiffusionModule"
_GAUSS = "GaussianDiffusionModule"


def _kind(run_cfg: DictConfig) -> str:
    target = str(run_cfg.model.get("_target_", ""))
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
    pipe = cls.from_pretrained(run_dir)
    if torch.cuda.is_available():
        pipe.to("cuda")
    return pipe


def _class_arg(value, pipe, n: int) -> torch.Tensor | None:
    """class=<int>|all|none -> labels for n samples (all: cycle through the classes, row per class)."""
    if pipe.num_classes == 0 or value is None or str(value).lower() == "none":
        return None
    if str(value).lower() == "all":
        return torch.arange(n) // max(1, n // pipe.num_classes) % pipe.num_classes
    return torch.full((n,), int(value), dtype=torch.long)


def _is_volume(pipe) -> bool:
    return pipe.autoencoder.config.dims == 3


def write_voxel_samples(occupancy: torch.Tensor, out: Path, prefix: str = "sample", render: bool = True,
                        ncol: int = 4) -> dict:
    """Meshes (``<prefix>_XX.ply``, marching cubes at 0.5) for (B, 1, R, R, R) occupancies and one gallery PNG."""
    import trimesh

    from latent4d.binary.pipeline import occupancy_mesh

    meshes, paths = [], []
    for i, occ in enumerate(occupancy[:, 0]):
        mesh = occupancy_mesh(occ)
        if len(mesh.faces):
            with atomic_path(out / f"{prefix}_{i:02d}.ply") as tmp:
                mesh.export(tmp)
            paths.append(str(out / f"{prefix}_{i:02d}.ply"))
        meshes.append(mesh)
    result = {"meshes": paths, "empty": sum(len(m.faces) == 0 for m in meshes)}
    if render and any(len(m.faces) for m in meshes):
        from latent4d.render import render_png

        placed = []
        for i, m in enumerate(meshes):
            if len(m.faces) == 0:
                continue
            r, c = divmod(i, ncol)
            mm = m.copy()
            mm.apply_translation([2.4 * c, -2.4 * r, 0.0])
            placed.append(mm)
        gallery = trimesh.util.concatenate(placed)
        render_png([gallery], out / f"{prefix}_gallery.png", width=900, height=900, azimuth=25, elevation=25)
        result["gallery"] = str(out / f"{prefix}_gallery.png")
    return result


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Sample a diffusion run: PNG grid for images, meshes + a rendered gallery for occupancy grids."""
    from latent4d.binary.pipeline import save_image_grid

    pipe = _pipeline(run_dir, run_cfg)
    steps = int(args.get("steps", 16))
    temperature = float(args.get("temperature", 0.9))
    guidance = float(args.get("guidance", 1.0 if pipe.num_classes else 0.0))
    vol = _is_volume(pipe)
    n = int(args.get("n", 16 if vol else (8 * pipe.num_classes if pipe.num_classes else 64)))
    labels = _class_arg(args.get("class", "all"), pipe, n)
    g = torch.Generator().manual_seed(int(args.get("seed", 0)))
    out = Path(args.get("out") or run_dir / "samples")
    res = pipe(n, steps=steps, class_labels=labels, guidance=guidance, generator=g, temperature=temperature)
    tag = f"s{steps}_t{temperature:g}_g{guidance:g}"
    info = {"steps": steps, "temperature": temperature, "guidance": guidance, "n": n,
            "labels": res.labels.tolist()}
    if vol:
        info.update(write_voxel_samples(res.samples, out / tag, render=bool(args.get("render", True))))
        print(f"[latent4d] wrote {len(info['meshes'])} meshes under {out / tag}"
              + (f" and {info['gallery']}" if "gallery" in info else ""))
    else:
        nrow = max(1, n // pipe.num_classes) if labels is not None and str(args.get("class", "all")) == "all" else None
        png = save_image_grid(res.samples, out / f"samples_{tag}.png", nrow=nrow,
                              scale=int(args.get("scale", max(1, 64 // res.samples.shape[-1]))))
        info["grid"] = str(png)
        print(f"[latent4d] wrote {png}")
    write_json_atomic(out / f"samples_{tag}.json", info)
    return info


def _steps_list(value) -> list[int]:
    if isinstance(value, ListConfig | list | tuple):
        return [int(v) for v in value]
    return [int(v) for v in str(value).strip("[]").split(",") if v.strip()]


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Reconstruction metrics (AE runs) or sample quality (diffusion runs); writes ``<run>/evaluation.json``."""
    kind = _kind(run_cfg)
    res = evaluate_autoencoder(run_dir, run_cfg, args) if kind == _AE else evaluate_diffusion(run_dir, run_cfg, args)
    write_json_atomic(run_dir / "evaluation.json", res)
    print({k: v for k, v in res.items() if not isinstance(v, list | dict)})
    return res


@torch.no_grad()
def evaluate_autoencoder(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    from hydra.utils import instantiate

    from latent4d.binary.autoencoder import load_autoencoder
    from latent4d.binary.metrics import BitUsage, iou, psnr
    from latent4d.binary.pipeline import save_image_grid

    ae, _ = load_autoencoder(run_dir)
    dm = instantiate(run_cfg.data)
    x, _ = dm.arrays(str(args.get("split", "test")))
    usage = BitUsage()
    recs = []
    for i in range(0, len(x), 128):
        z = ae.encode_latents(x[i:i + 128])
        usage.update(z)
        recs.append(ae.decode(z))
    rec = torch.cat(recs)
    u = usage.compute()
    res = {"split": str(args.get("split", "test")), "n": len(x), "bits_per_sample": ae.num_bits,
           "bit_usage": u["fraction_active"], "bit_entropy": u["mean_entropy"]}
    if ae.config.dims == 3:
        res["iou"] = float(iou(rec, x).mean())
        if bool(args.get("render", True)):
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
def evaluate_diffusion(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    pipe = _pipeline(run_dir, run_cfg)
    steps = _steps_list(args.get("steps", 16))
    temperature = float(args.get("temperature", 0.9))
    guidance = float(args.get("guidance", 1.0))
    n = int(args.get("n", 1000))
    seed = int(args.get("seed", 0))
    res: dict = {"temperature": temperature, "guidance": guidance, "n": n, "by_steps": {}}
    if _is_volume(pipe):
        from hydra.utils import instantiate

        from latent4d.binary.metrics import iou

        dm = instantiate(run_cfg.data)  # the latents' data module; its source holds the grids
        dm.setup()
        test_x, _ = dm.source.arrays("test")
        for s in steps:
            out = pipe(min(n, 64), steps=s, temperature=temperature, generator=torch.Generator().manual_seed(seed))
            occ = out.samples > 0.5
            best = torch.stack([iou(o[None].float().expand_as(test_x), test_x).max() for o in occ])
            res["by_steps"][s] = {"occupied_fraction": float(occ.float().mean()),
                                  "nearest_test_iou": float(best.mean())}
        return res
    if run_cfg.data.get("source") is None and _digits_run(run_dir):
        from latent4d.binary.metrics import DigitsEvaluator

        ev = DigitsEvaluator(image_size=pipe.autoencoder.config.sample_size,
                             epochs=int(args.get("classifier_epochs", 20)))
        res["real_fd"] = ev.real_fd
        res["real_fd_n"] = len(ev.val_x)
        for s in steps:
            m: dict = {}
            if pipe.num_classes:  # class-conditional samples, n / 10 per class, without and with guidance
                labels = torch.arange(n) % pipe.num_classes
                for key, w in (("", 0.0), ("_guided", guidance)):
                    if key and w == 0:
                        continue
                    out = pipe(n, steps=s, class_labels=labels, guidance=w, temperature=temperature,
                               generator=torch.Generator().manual_seed(seed))
                    m.update({f"{k}{key}": v for k, v in ev.evaluate(out.samples, out.labels).items()})
            if not pipe.num_classes or bool(args.get("unconditional", False)):
                out = pipe(n, steps=s, temperature=temperature, generator=torch.Generator().manual_seed(seed))
                m.update({f"{k}_unconditional": v for k, v in ev.evaluate(out.samples).items()})
            res["by_steps"][s] = m
        return res
    raise ConfigError("evaluate for diffusion runs supports digits (Fréchet distance, accuracy) and occupancy grids")


def _digits_run(run_dir: Path) -> bool:
    """Whether a diffusion run's autoencoder was trained on the digits."""
    from latent4d.binary.autoencoder import load_autoencoder

    try:
        _, cfg = load_autoencoder(OmegaConf.load(run_dir / "config.yaml").autoencoder_path)
    except Exception:  # noqa: BLE001 - the AE run may have moved; the exported AE alone does not say
        return False
    return cfg is not None and cfg.data.get("source") == "digits"


def demo(out_dir: Path, quick: bool = False) -> dict:
    """Train the digits autoencoder, then the class-conditional Bernoulli diffusion on its bits, sample
    with 16 steps (one row per digit), and score the samples with the benchmark's classifier."""
    import time

    from latent4d.binary.metrics import DigitsEvaluator
    from latent4d.binary.pipeline import BinaryLatentPipeline, save_image_grid
    from latent4d.train import compose_config, run_training

    t0 = time.time()
    out_dir = Path(out_dir)
    ae_run, dm_run = out_dir / "ae_digits", out_dir / "diffusion_digits"
    quiet = ["callbacks=minimal", "logger=csv"]
    ae_over = ["experiment=binary/ae_digits", *quiet] + (["trainer.max_epochs=4"] if quick else [])
    ae_metrics = run_training(compose_config(ae_over, ae_run))
    df_over = ["experiment=binary/diffusion_digits", f"autoencoder_path={ae_run}", *quiet]
    if quick:
        df_over += ["trainer.max_epochs=10", "model.warmup_steps=20", "model.denoiser.depth=2"]
    df_metrics = run_training(compose_config(df_over, dm_run))
    pipe = BinaryLatentPipeline.from_pretrained(dm_run)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(80) // 8
    res = pipe(80, steps=16, temperature=0.9, guidance=1.0, class_labels=labels, generator=g)
    png = save_image_grid(res.samples, out_dir / "digits_16steps.png", nrow=8, scale=4)
    ev = DigitsEvaluator(epochs=3 if quick else 20)
    scores = ev.evaluate(res.samples, res.labels)
    result = {"ae_test_psnr": ae_metrics.get("test/psnr"), "ae_bit_usage": ae_metrics.get("test/bit_usage"),
              "diffusion_test_loss": df_metrics.get("test/loss"), "steps": 16, "temperature": 0.9,
              "guidance": 1.0, "class_accuracy": scores["accuracy"], "fd": scores["fd"],
              "real_fd": ev.real_fd, "grid": str(png), "seconds": round(time.time() - t0, 1),
              "runs": {"autoencoder": str(ae_run), "diffusion": str(dm_run)}}
    write_json_atomic(out_dir / "metrics.json", result)
    return result
