"""CLI commands of the hair family (``latent4d convert|sample|evaluate|reconstruct|demo`` dispatch here).

- ``latent4d convert IN OUT [--resample N]``: between .data / .hair / .ply / .npz / .usd / .usda / .usdc.
- ``latent4d align IN OUT [scalp=<mesh>] [units=auto|m|cm|mm] [inverse=<transform.json>]``: roots onto
  the scalp (:mod:`latent4d.hair.align`), the transform as JSON; ``inverse=`` moves results back.
- ``latent4d sample run=<style run> n=4 strands=20000 format=data|hair|ply|npz|usd|usda|usdc [seed temperature
  mode out]`` (USD files also hold the head mesh).
- ``latent4d evaluate run=<strand or style run> [data.root=<folder of hair files>] [n=8 out=...]``.
- ``latent4d reconstruct hair run=<style run> input=<obs.ply|.npz|.data|.hair> [key=value ...]``: Hydra
  overrides of ``conf/reconstruct/hair.yaml`` (:class:`~latent4d.hair.reconstruct.HairReconstructConfig`).
- ``latent4d demo --only hair``: sizes from ``conf/preset/hair_{strand,style}_demo[_quick].yaml``.

Sample / evaluate options are dataclass specs (:class:`SampleOptions`, :class:`EvaluateOptions`) parsed
with :func:`latent4d.options.parse_options`; reconstruct options are composed by Hydra
(:func:`latent4d.hair.reconstruct.reconstruct_settings`). Either way unknown keys, wrong types and
out-of-range values are one ConfigError naming the option, and every input / ``out=`` path is checked
before any network is loaded or any compute starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from latent4d.errors import ConfigError
from latent4d.fileio import write_json_atomic
from latent4d.hair.densify import MODES
from latent4d.hair.formats import FORMATS, MAX_DENSE_STRANDS, OBSERVATION_EXTENSIONS, check_format
from latent4d.hair.reconstruct import MAX_SEED, HairReconstructConfig, reconstruct_settings
from latent4d.options import check_input_file, check_output_dir, check_output_file, opt, parse_options


# ------------------------------------------------------------------------------- options
@dataclass
class SampleOptions:
    """``latent4d sample run=<hairstyle-VAE run> ...`` (defaults as documented in the README)."""

    run: str | None = None
    n: int = opt(4, min=1, max=1000, help="number of hairstyles")
    strands: int = opt(20000, min=0, max=MAX_DENSE_STRANDS, help="dense strands per hairstyle (0: guides only)")
    seed: int = opt(0, min=0, max=MAX_SEED)
    temperature: float = opt(1.0, min=0.0, max=100.0, help="prior standard deviation scale")
    mode: str = opt("hybrid", choices=MODES, help="densification mode")
    format: str = opt("data", help=f"output hair format ({', '.join(FORMATS)})")
    out: str | None = opt(None, help="output folder (default <run>/samples)")

    def validate(self) -> None:
        self.format = check_format(self.format, "sample")


@dataclass
class EvaluateDataOptions:
    root: str | None = opt(None, help="folder of hair files (default: procedural test styles)")


@dataclass
class EvaluateOptions:
    """``latent4d evaluate run=<strand or hairstyle-VAE run> [data.root=<folder>] ...``."""

    run: str | None = None
    data: EvaluateDataOptions = opt(default_factory=EvaluateDataOptions)
    n: int = opt(8, min=1, max=1000, help="procedural test styles (without data.root)")
    strands: int = opt(10000, min=100, max=MAX_DENSE_STRANDS, help="strands per procedural style")
    strands_per_file: int = opt(2000, min=1, max=1_000_000, help="strands per file for the strand errors")
    out: str | None = opt(None, help="output JSON (default <run>/evaluation.json)")


@dataclass
class AlignOptions:
    """``latent4d align IN OUT [scalp=<mesh>] [units=auto|m|cm|mm] [transform=<json>] [inverse=<json>]``."""

    scalp: str | None = opt(None, help="scalp mesh (.obj / .ply) in the head frame (default: the ellipsoid head)")
    units: str = opt("auto", choices=("auto", "m", "cm", "mm"), help="the file's units (auto: estimated)")
    transform: str | None = opt(None, help="transform JSON to write (default <OUT stem>_transform.json)")
    inverse: str | None = opt(None, help="a transform JSON to undo: OUT = IN moved back into the user's frame")


#: the option spec of ``latent4d reconstruct hair`` (defaults: conf/reconstruct/hair.yaml)
ReconstructOptions = HairReconstructConfig


# ------------------------------------------------------------------------------- convert
def convert(inp: str, out: str, resample: int | None = None) -> dict:
    """``latent4d convert IN OUT [--resample N]``: between .data / .hair / .ply / .npz / .usd* (by extension).

    Checked before anything is read: ``N`` in [2, :data:`~latent4d.hair.formats.MAX_RESAMPLE`]
    (10000) points per strand, IN an existing hair file, OUT a writable file path with a hair
    extension (not a folder). The resampled output holds at most
    :data:`~latent4d.hair.formats.MAX_POINTS` points (checked after reading, before resampling).
    """
    from latent4d.hair.formats import HAIR_EXTENSIONS, check_resample, convert_hair

    check_resample(resample, "--resample")
    src, dst = Path(str(inp)).expanduser(), Path(str(out)).expanduser()
    if not src.exists():
        raise ConfigError(f"convert: input file '{src}' does not exist")
    if src.is_dir():
        raise ConfigError(f"convert: input '{src}' is a folder; give a hair file ({', '.join(HAIR_EXTENSIONS)})")
    if src.suffix.lower() not in HAIR_EXTENSIONS:
        raise ConfigError(f"convert: input '{src}' has an unknown hair format '{src.suffix or '(no extension)'}'; "
                          f"supported: {', '.join(HAIR_EXTENSIONS)}")
    if dst.is_dir():
        raise ConfigError(f"convert: output '{dst}' is an existing folder; give a file name, e.g. "
                          f"{dst / (src.stem + '.data')}")
    if dst.suffix.lower() not in HAIR_EXTENSIONS:
        raise ConfigError(f"convert: output '{dst}' has an unknown hair format '{dst.suffix or '(no extension)'}'; "
                          f"supported: {', '.join(HAIR_EXTENSIONS)}")
    check_output_file(dst, "OUT", HAIR_EXTENSIONS)
    hs = convert_hair(src, dst, resample)
    print(f"[latent4d] wrote {out}: {hs.num_strands} strands ({int(hs.bald.sum())} bald), {hs.num_points} points")
    return {"strands": hs.num_strands, "points": hs.num_points, "out": str(Path(out))}


# ------------------------------------------------------------------------------- align
def align(inp: str, out: str, options: list[str] | None = None) -> dict:
    """``latent4d align IN OUT [key=value ...]`` (:class:`AlignOptions`): put IN's roots on the scalp
    (:func:`latent4d.hair.align.align_hairstyle`) and write OUT plus the transform JSON; with
    ``inverse=<transform.json>`` move IN back into the user's frame instead. Every path is checked
    before the work; OUT and the JSON are each written atomically, and only once the alignment has
    succeeded (roots within the tolerance of docs/hair.md)."""
    from latent4d.hair.align import SimilarityTransform, align_hairstyle, apply_transform
    from latent4d.hair.formats import HAIR_EXTENSIONS, read_hair, write_hair
    from latent4d.hair.scalp import Scalp

    o = parse_options(AlignOptions, list(options or []), "align")
    src = check_input_file(inp, "IN", HAIR_EXTENSIONS)
    dst = check_output_file(out, "OUT", HAIR_EXTENSIONS)
    if o.inverse:
        tf = SimilarityTransform.load(check_input_file(o.inverse, "inverse", (".json",)))
        hs = apply_transform(read_hair(src).validate(str(src)), tf, inverse=True)
        write_hair(dst, hs)
        print(f"[latent4d] wrote {dst}: {hs.num_strands} strands moved back into the frame of {o.inverse}")
        return {"out": str(dst), "inverse": str(o.inverse)}
    tf_path = check_output_file(o.transform or dst.with_name(f"{dst.stem}_transform.json"), "transform", (".json",))
    scalp = Scalp.from_mesh(check_input_file(o.scalp, "scalp", (".obj", ".ply"))) if o.scalp else Scalp()
    hs, tf = align_hairstyle(read_hair(src).validate(str(src)), scalp, o.units, name=str(src))
    write_hair(dst, hs)
    tf.save(tf_path)
    r = tf.residual
    print(f"[latent4d] wrote {dst} and {tf_path}: scale {tf.scale:.6g}, roots {r['median_m'] * 1000:.2f} mm (median) "
          f"/ {r['p95_m'] * 1000:.2f} mm (95th percentile) from the scalp")
    return {"out": str(dst), "transform": str(tf_path), **tf.to_dict()}


# ------------------------------------------------------------------------------- sample
def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Sample hairstyles from a hairstyle-VAE run: per sample a dense file, a guides file and a PNG.

    The output folder (``out=``, default ``<run>/samples``) is written whole: into a temporary
    sibling, swapped in when complete; an existing non-empty folder must be an earlier sample output
    (it holds ``latents.npz``), which is replaced."""
    from latent4d.fileio import atomic_dir
    from latent4d.hair.formats import write_hair
    from latent4d.hair.pipeline import HairPipeline
    from latent4d.hair.viz import render_hair

    o = parse_options(SampleOptions, args, "sample")
    out = check_output_dir(o.out or run_dir / "samples", "out", marker="latents.npz")
    fmt, n, strands, seed, temp = o.format, o.n, o.strands, o.seed, o.temperature
    pipe = HairPipeline.from_pretrained(run_dir)
    if pipe.style_vae is None:
        raise ConfigError(f"'{run_dir}' is a strand-VAE run; sampling hairstyles needs a hairstyle-VAE run "
                          "(latent4d train experiment=hair/style_vae model.strand_vae_path=<this run>)")
    results = pipe.sample(n, seed=seed, temperature=temp, strands=strands, mode=o.mode)
    written = []
    head = pipe.scalp.mesh()  # USD files hold the head as a mesh prim; the other formats ignore it
    with atomic_dir(out, marker="latents.npz") as tmp:
        for i, r in enumerate(results):
            name = f"sample_{i:02d}"
            if r.dense is not None:
                write_hair(tmp / f"{name}.{fmt}", r.dense, head=head)
            write_hair(tmp / f"{name}_guides.{fmt}", r.guides, head=head)
            render_hair(r.dense if r.dense is not None else r.guides, tmp / f"{name}.png", pipe.scalp)
            written.append(str(out / name))
        lat = np.stack([r.latent.numpy() for r in results])
        with open(tmp / "latents.npz", "wb") as f:
            np.savez(f, latents=lat, seed=seed, temperature=temp)
    print(f"[latent4d] wrote {n} samples ({strands} strands each, .{fmt} + guides + PNG) under {out}")
    return {"samples": written, "out": str(out)}


# ------------------------------------------------------------------------------- evaluate
def _run_scalp(run_cfg):
    """The scalp a run was trained on (its ``data.scalp``; the default head when absent)."""
    from omegaconf import DictConfig, OmegaConf

    from latent4d.hair.scalp import Scalp

    node = OmegaConf.select(run_cfg, "data.scalp", default=None)
    try:
        return Scalp.from_dict(OmegaConf.to_container(node) if isinstance(node, DictConfig) else None)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"the run's config.yaml: data.scalp is damaged ({type(e).__name__}: {e})") from None


def _eval_files(o: EvaluateOptions, run_cfg) -> list:
    """Hairstyles to evaluate: ``data.root`` files, else procedural test styles of the run's split."""
    from omegaconf import OmegaConf

    from latent4d.hair.data import list_hair_files, read_hair_on_scalp, split_seeds
    from latent4d.hair.synthetic import generate_hairstyle

    if o.data.root:
        scalp = _run_scalp(run_cfg)
        return [(p.name, read_hair_on_scalp(p, scalp)) for p in list_hair_files(o.data.root)]
    try:
        seed = int(OmegaConf.select(run_cfg, "seed", default=0) or 0)
    except (TypeError, ValueError):
        raise ConfigError(f"the run's config.yaml: seed={OmegaConf.select(run_cfg, 'seed')!r} is not an integer; "
                          "the run folder is damaged") from None
    return [(f"procedural_{s}", generate_hairstyle(s, o.strands, root_seed=s))
            for s in split_seeds("test", o.n, seed)]


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Reconstruction metrics of a strand- or hairstyle-VAE run on hair files (``data.root``) or on
    held-out procedural styles: strand errors (mm, curvature 1/m); for hairstyle runs also guide
    reconstruction error and densification error (nearest / bilinear / hybrid) at each file's roots."""
    import torch

    from latent4d.hair.data import local_strands
    from latent4d.hair.metrics import curvature_error, position_error, summarize_errors
    from latent4d.hair.pipeline import HairPipeline

    o = parse_options(EvaluateOptions, args, "evaluate")
    out = check_output_file(o.out or run_dir / "evaluation.json", "out", (".json",))
    items = _eval_files(o, run_cfg)
    pipe = HairPipeline.from_pretrained(run_dir)
    per_file, errs, curvs = [], [], []
    dens = {m: [] for m in ("nearest", "bilinear", "hybrid")}
    guide_errs = []
    for name, hs in items:
        local = torch.from_numpy(local_strands(hs, pipe.scalp, o.strands_per_file))
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
    write_json_atomic(out, res)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items() if k != "per_file"})
    print(f"[latent4d] wrote {out}")
    return res


# ------------------------------------------------------------------------------- reconstruct
def _publish(tmp: Path, out: Path) -> None:
    """Move every file of ``tmp`` into ``out`` (each an atomic rename; ``tmp`` is a sibling of ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(tmp.iterdir()):
        os.replace(f, out / f.name)


def _reconstruct_inputs(cfg: HairReconstructConfig) -> tuple[Path, Path | None, Path]:
    """The checked input, scalp and output folder of a reconstruction (ConfigError before any work)."""
    if not cfg.input:
        raise ConfigError("reconstruct hair needs input=<observation .ply/.npz or partial hair file>")
    if not cfg.run:
        raise ConfigError("reconstruct hair needs run=<hairstyle-VAE run directory>")
    if not Path(str(cfg.run)).expanduser().is_dir():
        raise ConfigError(f"reconstruct hair: run={cfg.run} is not a folder (expected a hairstyle-VAE run directory "
                          "or a saved pipeline folder)")
    inp = check_input_file(cfg.input, "input")
    if inp.suffix.lower() not in OBSERVATION_EXTENSIONS:
        raise ConfigError(f"reconstruct hair: input={inp}: unknown observation format '{inp.suffix}'; use "
                          f"{', '.join(OBSERVATION_EXTENSIONS)}")
    scalp = check_input_file(cfg.scalp, "scalp", (".obj", ".ply")) if cfg.scalp else None
    out = check_output_dir(cfg.out or inp.parent / f"{inp.stem}_reconstruction", "out")
    return inp, scalp, out


def _write_reconstruction(res, obs, pipe, inp: Path, out: Path, fmt: str, render: bool) -> dict:
    """Write ``<out>/<stem>_hair.<fmt>``, ``_guides.<fmt>``, ``_latent.npz``, ``.png`` and ``_fit.json``:
    into a temporary folder next to ``out``, moved into ``out`` once all are complete."""
    from latent4d.hair.formats import write_hair
    from latent4d.hair.viz import render_hair

    stem = out / inp.stem
    hair = res.hair.dense if res.hair.dense is not None else res.hair.guides
    summary = {"input": str(inp), "observed_points": len(obs.points), "directions": obs.directions is not None,
               "view": None if obs.view is None else [float(v) for v in obs.view],
               "loss": res.loss, **res.losses, "seconds": res.seconds, "inits": res.inits,
               "retrieved": res.retrieved, "winning_start": res.winner,
               "strands": hair.num_strands, "hair": f"{stem}_hair.{fmt}", "guides": f"{stem}_guides.{fmt}",
               "latent": f"{stem}_latent.npz"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        t = tmp / inp.stem
        head = pipe.scalp.mesh()  # USD files hold the head as a mesh prim; the other formats ignore it
        write_hair(f"{t}_hair.{fmt}", hair, head=head)
        write_hair(f"{t}_guides.{fmt}", res.hair.guides, head=head)
        with open(f"{t}_latent.npz", "wb") as f:
            np.savez(f, latent=res.hair.latent.numpy(), guide_map=res.hair.guide_map.numpy())
        if render:
            import open3d as o3d

            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(obs.points, np.float64)))
            pc.paint_uniform_color([0.1, 0.4, 0.95])
            render_hair(hair, f"{t}.png", pipe.scalp, extra=[pc], azimuth=30.0)
            summary["render"] = f"{stem}.png"
        write_json_atomic(f"{t}_fit.json", summary)
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _check_observation_frame(inp: Path, obs, scalp) -> None:
    """A hair-file observation (``.data`` / ``.hair``) must have its roots on the scalp, a point cloud
    must reach the head (:mod:`latent4d.hair.align`); InputError with the measured offset and the fix."""
    from latent4d.hair.align import check_on_scalp, check_points_near_scalp

    if inp.suffix.lower() in (".data", ".hair"):
        from latent4d.hair.formats import read_hair

        check_on_scalp(read_hair(inp), scalp, str(inp))
    else:
        check_points_near_scalp(obs.points, scalp, str(inp))


def run_reconstruction(cfg: HairReconstructConfig) -> dict:
    """Fit a complete hairstyle to the observation file ``cfg.input`` with the hairstyle-VAE of
    ``cfg.run`` (:func:`latent4d.hair.reconstruct.fit_observation`) and write the files of
    :func:`_write_reconstruction`. ``view`` (``front``/``back``/``left``/``right``/``top`` or ``"x,y,z"``):
    the direction towards the camera that saw the hair (adds the free-space term). Every argument is
    checked before any compute; everything is computed before anything is written; other files in
    ``out`` are kept."""
    from latent4d.hair.pipeline import HairPipeline
    from latent4d.hair.reconstruct import fit_observation
    from latent4d.hair.types import HairObservation, parse_view

    inp, scalp, out = _reconstruct_inputs(cfg)
    obs = HairObservation.from_file(inp)
    if cfg.view:
        obs.view = parse_view(cfg.view, f"{inp}: view")
    pipe = HairPipeline.from_pretrained(cfg.run, scalp=scalp)
    if pipe.style_vae is None:
        raise ConfigError(f"'{cfg.run}' has no hairstyle-VAE; reconstruction needs a run of experiment=hair/style_vae")
    _check_observation_frame(inp, obs, pipe.scalp)
    res = fit_observation(pipe, obs, cfg)
    summary = _write_reconstruction(res, obs, pipe, inp, out, cfg.format, cfg.render)
    stem, fmt = out / inp.stem, cfg.format
    print(f"[latent4d] reconstructed {inp.name} in {res.seconds:.1f} s (obs->hair {res.losses.get('chamfer_mm', 0):.2f}"
          f" mm); wrote {stem}_hair.{fmt}, _guides.{fmt}, _latent.npz, _fit.json" + (", .png" if cfg.render else ""))
    return summary


def reconstruct(options: list[str]) -> dict:
    """``latent4d reconstruct hair run=<style run> input=<file> [key=value ...]``: the ``key=value``
    options are Hydra overrides of ``conf/reconstruct/hair.yaml`` (:class:`HairReconstructConfig`:
    scalp, out, format, render, view, strands, mode, seed, inits, retrieve, steps, lr, loss weights)."""
    return run_reconstruction(reconstruct_settings(list(options)))


# ------------------------------------------------------------------------------- demo
def train_pair(out_dir: Path, quick: bool, strand_overrides: list[str] | None = None,
               style_overrides: list[str] | None = None) -> tuple[Path, Path, dict, dict]:
    """Train a strand-VAE and a hairstyle-VAE on it (in-process; sizes from ``preset=hair_strand_demo`` /
    ``hair_style_demo``, ``_quick`` with ``quick``); returns their run dirs and metrics."""
    from latent4d.train import compose_config, replace_run, run_training

    common = ["callbacks=minimal", "logger=csv"]
    size = "demo_quick" if quick else "demo"
    s_dir, t_dir = out_dir / "strand_vae", out_dir / "style_vae"
    s_ov = ["experiment=hair/strand_vae", *common, f"preset=hair_strand_{size}", *(strand_overrides or [])]
    m1 = run_training(compose_config(s_ov, replace_run(s_dir)))
    t_ov = ["experiment=hair/style_vae", *common, f"model.strand_vae_path={s_dir}", f"preset=hair_style_{size}",
            *(style_overrides or [])]
    m2 = run_training(compose_config(t_ov, replace_run(t_dir)))
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
