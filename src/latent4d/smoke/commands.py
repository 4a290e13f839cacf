"""CLI commands of the smoke family (``latent4d sample|evaluate|demo`` dispatch here).

Options are typed and range-checked (:class:`SampleOptions`, :class:`EvaluateOptions`) and ``out=``
checked before the network loads; the network loads through :func:`latent4d.trust.load_network`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from latent4d.errors import ConfigError
from latent4d.fileio import atomic_path, write_json_atomic
from latent4d.options import check_output_dir, opt, parse_options


@dataclass
class SampleOptions:
    """``latent4d sample run=<smoke run> [out=<dir>] [resolution=128]``."""

    run: str | None = None
    out: str | None = opt(None, help="output folder (default <run>/samples)")
    resolution: int = opt(128, min=8, max=1024, help="meshing resolution (octree)")


@dataclass
class EvaluateOptions:
    """``latent4d evaluate run=<smoke run> [resolution=128]``."""

    run: str | None = None
    resolution: int = opt(128, min=8, max=1024, help="meshing resolution (octree)")


def _gt_mesh(run_cfg: DictConfig | None):
    """The procedural ground truth of a run (its ``data.scene_seed``; scene 0 without a run config)."""
    from latent4d.smoke.synthetic import sphere_and_box

    if run_cfg is None:
        return sphere_and_box(0)
    seed = OmegaConf.select(run_cfg, "data.scene_seed", default=0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"run config.yaml: data.scene_seed={seed!r} is not a seed (an integer >= 0); "
                          "the run folder is damaged")
    return sphere_and_box(seed)


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Extract the trained SDF's surface: ``<out>/mesh.ply`` and ``<out>/mesh.png``."""
    from latent4d.render import render_png
    from latent4d.smoke.pipeline import SDFPipeline

    o = parse_options(SampleOptions, args, "sample")
    out = check_output_dir(o.out or run_dir / "samples", "out")
    mesh = SDFPipeline.from_pretrained(run_dir).mesh(o.resolution)
    with atomic_path(out / "mesh.ply") as tmp:
        mesh.export(tmp)
    render_png([mesh], out / "mesh.png")
    print(f"[latent4d] wrote {out / 'mesh.ply'} and {out / 'mesh.png'}")
    return {"mesh": str(out / "mesh.ply")}


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Chamfer-L1 between the extracted surface and the procedural ground truth."""
    from latent4d.smoke.metrics import mesh_chamfer_l1
    from latent4d.smoke.pipeline import SDFPipeline

    o = parse_options(EvaluateOptions, args, "evaluate")
    gt = _gt_mesh(run_cfg)
    mesh = SDFPipeline.from_pretrained(run_dir).mesh(o.resolution)
    res = {"chamfer_l1": mesh_chamfer_l1(mesh, gt), "faces": len(mesh.faces)}
    write_json_atomic(run_dir / "evaluation.json", res)
    print(res)
    return res


def demo(out_dir: Path, quick: bool = False) -> dict:
    """Train the smoke experiment (``quick``: preset ``smoke_demo_quick``), reload the exported network,
    mesh it, render a PNG."""
    from latent4d.render import render_png
    from latent4d.smoke.metrics import mesh_chamfer_l1
    from latent4d.smoke.pipeline import SDFPipeline
    from latent4d.train import compose_config, replace_run, run_training

    run = out_dir / "run"
    overrides = ["experiment=smoke/sdf_sphere", "callbacks=minimal", "logger=csv"]
    overrides += ["preset=smoke_demo_quick"] if quick else []
    metrics = run_training(compose_config(overrides, replace_run(run)))
    mesh = SDFPipeline.from_pretrained(run).mesh(128)
    with atomic_path(out_dir / "sdf_sphere.ply") as tmp:
        mesh.export(tmp)
    png = render_png([mesh], out_dir / "sdf_sphere.png")
    result = {"test_l1_sdf": metrics.get("test/l1_sdf"),
              "chamfer_l1": mesh_chamfer_l1(mesh, _gt_mesh(None)),
              "mesh": str(out_dir / "sdf_sphere.ply"), "render": str(png), "run": str(run)}
    write_json_atomic(out_dir / "metrics.json", result)
    return result
