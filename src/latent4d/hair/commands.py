"""CLI commands of the hair family (``latent4d convert|sample|evaluate|reconstruct|demo`` dispatch here).

- ``latent4d convert IN OUT [--resample N]``: between .data / .hair / .ply / .npz.
- ``latent4d sample run=<style run> n=4 strands=20000 format=data|hair|ply|npz [seed temperature mode out]``.
- ``latent4d evaluate run=<strand or style run> [data.root=<folder of hair files>] [n=8 out=...]``.
- ``latent4d reconstruct hair run=<style run> input=<obs.ply|.npz|.data|.hair> [scalp=<mesh>] [out format
  strands inits retrieve steps refine_steps seed view]``.
- ``latent4d demo --only hair``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from latent4d.errors import ConfigError
from latent4d.fileio import write_json_atomic

FORMATS = ("data", "hair", "ply", "npz")


def _fmt(args, default: str = "data") -> str:
    f = str(args.get("format", default)).lstrip(".").lower()
    if f not in FORMATS:
        raise ConfigError(f"format={f} is not a hair format; use one of {', '.join(FORMATS)}")
    return f


def _int(args, key: str, default: int, lo: int = 0) -> int:
    try:
        v = int(args.get(key, default))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key} must be an integer, got {args.get(key)!r}") from e
    if v < lo:
        raise ConfigError(f"{key} must be >= {lo}, got {v}")
    return v


def convert(inp: str, out: str, resample: int | None = None) -> dict:
    """``latent4d convert IN OUT [--resample N]``: between .data / .hair / .ply / .npz (by extension)."""
    from latent4d.hair.formats import convert_hair

    hs = convert_hair(inp, out, resample)
    print(f"[latent4d] wrote {out}: {hs.num_strands} strands ({int(hs.bald.sum())} bald), {hs.num_points} points")
    return {"strands": hs.num_strands, "points": hs.num_points, "out": str(Path(out))}


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Sample hairstyles from a hairstyle-VAE run: per sample a dense file, a guides file and a PNG."""
    from latent4d.hair.formats import write_hair
    from latent4d.hair.pipeline import HairPipeline
    from latent4d.hair.viz import render_hair

    fmt = _fmt(args)
    n, strands = _int(args, "n", 4, 1), _int(args, "strands", 20000, 0)
    seed, temp = _int(args, "seed", 0), float(args.get("temperature", 1.0))
    mode = str(args.get("mode", "hybrid"))
    pipe = HairPipeline.from_pretrained(run_dir)
    if pipe.style_vae is None:
        raise ConfigError(f"'{run_dir}' is a strand-VAE run; sampling hairstyles needs a hairstyle-VAE run "
                          "(latent4d train experiment=hair/style_vae model.strand_vae_path=<this run>)")
    out = Path(args.get("out") or run_dir / "samples")
    results = pipe.sample(n, seed=seed, temperature=temp, strands=strands, mode=mode)
    written = []
    for i, r in enumerate(results):
        stem = out / f"sample_{i:02d}"
        if r.dense is not None:
            write_hair(f"{stem}.{fmt}", r.dense)
        write_hair(f"{stem}_guides.{fmt}", r.guides)
        render_hair(r.dense if r.dense is not None else r.guides, f"{stem}.png", pipe.scalp)
        written.append(str(stem))
    lat = np.stack([r.latent.numpy() for r in results])
    from latent4d.fileio import atomic_path

    with atomic_path(out / "latents.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, latents=lat, seed=seed, temperature=temp)
    print(f"[latent4d] wrote {n} samples ({strands} strands each, .{fmt} + guides + PNG) under {out}")
    return {"samples": written, "out": str(out)}


# ------------------------------------------------------------------------------- evaluate
def _eval_files(args, run_cfg) -> list:
    """Hairstyles to evaluate: ``data.root`` files, else procedural test styles of the run's split."""
    from latent4d.hair.data import list_hair_files, split_seeds
    from latent4d.hair.formats import read_hair
    from latent4d.hair.synthetic import generate_hairstyle

    root = OmegaConf.select(args, "data.root")
    if root:
        return [(p.name, read_hair(p)) for p in list_hair_files(root)]
    n = _int(args, "n", 8, 1)
    seed = int(OmegaConf.select(run_cfg, "seed", default=0) or 0)
    strands = _int(args, "strands", 10000, 100)
    return [(f"procedural_{s}", generate_hairstyle(s, strands, root_seed=s)) for s in split_seeds("test", n, seed)]


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Reconstruction metrics of a strand- or hairstyle-VAE run on hair files (``data.root``) or on
    held-out procedural styles: strand errors (mm, curvature 1/m); for hairstyle runs also guide
    reconstruction error and densification error (nearest / bilinear / hybrid) at each file's roots."""
    import torch

    from latent4d.hair.data import local_strands
    from latent4d.hair.metrics import curvature_error, position_error, summarize_errors
    from latent4d.hair.pipeline import HairPipeline

    pipe = HairPipeline.from_pretrained(run_dir)
    items = _eval_files(args, run_cfg)
    per_file, errs, curvs = [], [], []
    dens = {m: [] for m in ("nearest", "bilinear", "hybrid")}
    guide_errs = []
    for name, hs in items:
        local = torch.from_numpy(local_strands(hs, pipe.scalp, _int(args, "strands_per_file", 2000, 1)))
        with torch.no_grad():
            rec = pipe.strand_vae(local, sample=False)["recon"]
        e, c = position_error(rec, local), curvature_error(rec, local)
        errs.append(e)
        curvs.append(c)
        row = {"file": name, **summarize_errors(e, c)}
        if pipe.style_vae is not None:
            gmap = pipe.guide_map_of(hs)
            z = pipe.encode(gmap)
            g_true = pipe.guides(gmap, resolve=False)
            g_rec = pipe.guides(pipe.guide_map(z), resolve=False)
            both = ~g_true.bald & ~g_rec.bald
            if both.any():
                ge = position_error(g_rec.subset(both).strands, g_true.subset(both).strands).mean() * 1000
                row["guide_err_mm"] = float(ge)
                guide_errs.append(float(ge))
            strands, idx = hs.hair_strands(pipe.strand_vae.config.num_points)
            sub = np.random.default_rng(0).choice(len(strands), min(len(strands), 5000), replace=False)
            for m in dens:
                d = pipe.densify(gmap, roots=strands[sub, 0], mode=m)
                ok = ~d.bald
                de = position_error(d.subset(ok).strands, strands[sub][ok]).mean() * 1000 if ok.any() else np.nan
                row[f"densify_{m}_mm"] = float(de)
                dens[m].append(float(de))
        per_file.append(row)
    res = {"run": str(run_dir), "files": len(items),
           **summarize_errors(torch.cat(errs), torch.cat(curvs))}
    if guide_errs:
        res["guide_err_mm"] = float(np.mean(guide_errs))
        res.update({f"densify_{m}_mm": float(np.nanmean(v)) for m, v in dens.items()})
    res["per_file"] = per_file
    out = Path(args.get("out") or run_dir / "evaluation.json")
    write_json_atomic(out, res)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items() if k != "per_file"})
    print(f"[latent4d] wrote {out}")
    return res


# ------------------------------------------------------------------------------- reconstruct
def run_reconstruction(run: str | Path, inp: str | Path, out: str | Path | None = None, scalp: str | None = None,
                       fmt: str = "data", strands: int = 20000, inits: int = 4, steps: int = 200,
                       refine_steps: int = 0, seed: int = 0, render: bool = True, view: str | None = None,
                       retrieve: int = 2) -> dict:
    """Fit a complete hairstyle to an observation file and write ``<out>/<stem>_hair.<fmt>``,
    ``_guides.<fmt>``, ``_latent.npz``, ``.png`` (hair + observation) and ``_fit.json``.
    ``view`` (``front``/``back``/``left``/``right``/``top`` or ``"x,y,z"``): the direction towards the
    camera that saw the hair, which adds the free-space term (see :func:`latent4d.hair.fit.fit_observation`).
    ``retrieve``: training styles of the run's latent bank nearest to the observation used as extra starts.
    Everything is computed before anything is written; every file is written atomically."""
    from latent4d.fileio import atomic_path
    from latent4d.hair.fit import Observation, fit_observation
    from latent4d.hair.formats import write_hair
    from latent4d.hair.pipeline import HairPipeline
    from latent4d.hair.viz import render_hair

    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not a hair format; use one of {', '.join(FORMATS)}")
    if not inp:
        raise ConfigError("reconstruct hair needs input=<observation .ply/.npz or partial hair file>")
    if not run:
        raise ConfigError("reconstruct hair needs run=<hairstyle-VAE run directory>")
    inp = Path(inp)
    obs = Observation.from_file(inp)
    if view:
        from latent4d.hair.fit import parse_view

        obs.view = parse_view(view, f"{inp}: view")
    pipe = HairPipeline.from_pretrained(run, scalp=scalp)
    if pipe.style_vae is None:
        raise ConfigError(f"'{run}' has no hairstyle-VAE; reconstruction needs a run of experiment=hair/style_vae")
    res = fit_observation(pipe, obs, inits=inits, steps=steps, refine_steps=refine_steps, strands=strands, seed=seed,
                          retrieve=retrieve)
    out = Path(out or inp.parent / f"{inp.stem}_reconstruction")
    stem = out / inp.stem
    hair = res.hair.dense if res.hair.dense is not None else res.hair.guides
    write_hair(f"{stem}_hair.{fmt}", hair)
    write_hair(f"{stem}_guides.{fmt}", res.hair.guides)
    with atomic_path(f"{stem}_latent.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, latent=res.hair.latent.numpy(), guide_map=res.hair.guide_map.numpy())
    summary = {"input": str(inp), "observed_points": len(obs.points), "directions": obs.directions is not None,
               "view": None if obs.view is None else [float(v) for v in obs.view],
               "loss": res.loss, **res.losses, "seconds": res.seconds, "inits": res.inits,
               "retrieved": res.retrieved, "winning_start": res.winner,
               "strands": hair.num_strands, "hair": f"{stem}_hair.{fmt}", "guides": f"{stem}_guides.{fmt}",
               "latent": f"{stem}_latent.npz"}
    if render:
        import open3d as o3d

        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(obs.points, np.float64)))
        pc.paint_uniform_color([0.1, 0.4, 0.95])
        render_hair(hair, f"{stem}.png", pipe.scalp, extra=[pc], azimuth=30.0)
        summary["render"] = f"{stem}.png"
    write_json_atomic(f"{stem}_fit.json", summary)
    print(f"[latent4d] reconstructed {inp.name} in {res.seconds:.1f} s (obs->hair {res.losses.get('chamfer_mm', 0):.2f}"
          f" mm); wrote {stem}_hair.{fmt}, _guides.{fmt}, _latent.npz, _fit.json" + (", .png" if render else ""))
    return summary


def reconstruct(args: DictConfig) -> dict:
    """``latent4d reconstruct hair run=<style run> input=<file> [scalp=<mesh> out=<dir> format=data strands=20000
    inits=4 retrieve=2 steps=200 refine_steps=0 seed=0 render=true view=<front|back|left|right|top|x,y,z>]``."""
    return run_reconstruction(args.get("run"), args.get("input"), args.get("out"), args.get("scalp"), _fmt(args),
                              _int(args, "strands", 20000, 0), _int(args, "inits", 4, 1), _int(args, "steps", 200, 0),
                              _int(args, "refine_steps", 0, 0), _int(args, "seed", 0),
                              bool(args.get("render", True)), args.get("view"), _int(args, "retrieve", 2, 0))


# ------------------------------------------------------------------------------- demo
DEMO_QUICK_STRAND = ["trainer.max_epochs=2", "data.n_train=10", "data.n_val=2", "data.n_test=2",
                     "data.strands_per_style=128", "data.batch_size=128", "model.strand_vae.channels=[16,32,32,32]",
                     "model.strand_vae.hidden=256", "model.strand_vae.layers=2", "model.kl_warmup_steps=20"]
DEMO_QUICK_STYLE = ["trainer.max_epochs=2", "data.n_train=12", "data.n_val=2", "data.n_test=2", "data.batch_size=8",
                    "model.style_vae.channels=[16,32,48,64]", "model.style_vae.style_dim=32",
                    "model.strand_samples=16", "model.kl_warmup_steps=5"]
DEMO_STRAND = ["trainer.max_epochs=3", "data.n_train=200"]
DEMO_STYLE = ["trainer.max_epochs=20", "data.n_train=300"]


def train_pair(out_dir: Path, quick: bool, strand_overrides: list[str] | None = None,
               style_overrides: list[str] | None = None) -> tuple[Path, Path, dict, dict]:
    """Train a strand-VAE and a hairstyle-VAE on it (in-process); returns their run dirs and metrics."""
    from latent4d.train import compose_config, run_training

    common = ["callbacks=minimal", "logger=csv"]
    s_dir, t_dir = out_dir / "strand_vae", out_dir / "style_vae"
    s_ov = ["experiment=hair/strand_vae", *common, *(DEMO_QUICK_STRAND if quick else DEMO_STRAND),
            *(strand_overrides or [])]
    m1 = run_training(compose_config(s_ov, s_dir))
    t_ov = ["experiment=hair/style_vae", *common, f"model.strand_vae_path={s_dir}",
            *(DEMO_QUICK_STYLE if quick else DEMO_STYLE), *(style_overrides or [])]
    m2 = run_training(compose_config(t_ov, t_dir))
    return s_dir, t_dir, m1, m2


def demo(out_dir: Path, quick: bool = False) -> dict:
    """Train both VAEs (CPU defaults, shortened), sample and interpolate hairstyles, write hair files,
    PNG renders and ``metrics.json``."""
    from latent4d.hair.densify import guide_world
    from latent4d.hair.formats import write_hair
    from latent4d.hair.metrics import diversity, inside_head_fraction, root_on_scalp_error
    from latent4d.hair.pipeline import HairPipeline
    from latent4d.hair.viz import render_grid

    t0 = time.time()
    out_dir = Path(out_dir)
    s_dir, t_dir, m1, m2 = train_pair(out_dir / "runs", quick)
    pipe = HairPipeline.from_pretrained(t_dir)
    n, strands = (2, 2000) if quick else (4, 10000)
    samples = pipe.sample(n, seed=0, temperature=0.8, strands=strands)
    files = []
    for i, r in enumerate(samples):
        files.append(str(write_hair(out_dir / f"sample_{i}.data", r.dense)))
        write_hair(out_dir / f"sample_{i}_guides.ply", r.guides)
    frames = pipe.interpolate(samples[0].latent, samples[1].latent, steps=3 if quick else 5)
    png = render_grid([r.dense for r in samples] + [f.guides for f in frames], out_dir / "hair_samples.png",
                      pipe.scalp, max_strands=600 if quick else 1500, cols=n if quick else 5)
    gw = [guide_world(pipe.strand_vae, r.guide_map, pipe.grid)[0].numpy() for r in samples]
    dense = [r.dense for r in samples]
    hair = [d.subset(~d.bald).strands for d in dense if (~d.bald).any()]
    hair_pts = np.concatenate(hair) if hair else np.zeros((0, 2, 3), np.float32)  # (S, P, 3): roots excluded
    roots = np.concatenate([d.roots for d in dense])
    result = {"strand_test_pos_err_mm": m1.get("test/pos_err_mm"), "guide_test_err_mm": m2.get("test/guide_err_mm"),
              "inside_head_fraction": inside_head_fraction(hair_pts, pipe.head),
              "root_on_scalp_mm": root_on_scalp_error(roots, pipe.scalp),
              "sample_diversity_mm": diversity(gw),
              "render": str(png), "samples": files, "strand_run": str(s_dir), "style_run": str(t_dir),
              "seconds": round(time.time() - t0, 1)}
    write_json_atomic(out_dir / "metrics.json", result)
    return result
