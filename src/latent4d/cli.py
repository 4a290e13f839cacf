"""``latent4d`` console script: train | sample | evaluate | reconstruct | export | import-weights | convert | align | demo | bench | list | view | render.

Family-specific commands live in ``latent4d.<family>.commands`` (functions ``sample``, ``evaluate``,
``reconstruct``, ``convert``, ``demo``...); this module parses arguments and dispatches.
``key=value`` arguments after the subcommand are Hydra overrides (train) or OmegaConf dot-list
options (everything else).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from latent4d.config import FAMILIES
from latent4d.errors import ConfigError, Latent4DError
from latent4d.options import opt, parse_options

COMMANDS = ("train", "sample", "evaluate", "reconstruct", "export", "import-weights", "convert", "align", "demo",
            "bench", "list", "view", "render")
#: ``latent4d import-weights <kind>``: the family whose ``official`` module converts each published checkpoint
IMPORT_KINDS = {k: "motion" for k in ("m2v-shape-ae", "m2v-deform-ae", "m2v-shape-diffusion", "m2v-deform-diffusion", "m2v-deform-diffusion-partial")}


def _family_module(family: str):
    if family not in FAMILIES:
        raise ConfigError(f"unknown family '{family}'. Families: {', '.join(FAMILIES)}.")
    try:
        return importlib.import_module(f"latent4d.{family}.commands")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith(f"latent4d.{family}"):
            raise ConfigError(f"the {family} family is not available in this version of latent4d") from e
        raise


def _family_command(family: str, command: str):
    mod = _family_module(family)
    fn = getattr(mod, command, None)
    if fn is None:
        have = [c for c in COMMANDS if hasattr(mod, c)]
        raise ConfigError(f"the {family} family has no '{command}' command (it offers: {', '.join(have)}).")
    return fn


def _dotlist(items: list[str]):
    from omegaconf import OmegaConf

    bad = [i for i in items if "=" not in i]
    if bad:
        raise ConfigError(f"expected key=value options, got: {' '.join(bad)}")
    try:
        return OmegaConf.from_dotlist(items)
    except Exception as e:  # noqa: BLE001 - OmegaConf grammar errors for keys such as 'a..b' or '=1'
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot parse the options {' '.join(items)!r}: {first}") from None


def _run_command(command: str, items: list[str]) -> None:
    """sample / evaluate: need run=<dir>; dispatch on the run's family. ``evaluate <family> ...``
    (no run: a folder of results) goes to the family's ``evaluate_folder(args)``."""
    from latent4d.config import find_run_dir, load_run_config

    if command == "evaluate" and items and items[0] in FAMILIES:
        _family_command(items[0], "evaluate_folder")(_dotlist(items[1:]))
        return
    args = _dotlist(items)
    run_dir = find_run_dir(args.get("run"))
    run_cfg = load_run_config(run_dir)
    _family_command(str(run_cfg.family), command)(run_dir, run_cfg, args)


@dataclass
class ExportOptions:
    """``latent4d export`` options."""

    run: str | None = None
    ckpt: str = opt("best", help="best | last | a checkpoint file")
    out: str | None = opt(None, help="folder for the networks (default <run>/models)")


def _export(items: list[str]) -> None:
    """Re-export the networks of a run from a checkpoint: run=<dir> [ckpt=best|last|<file>] [out=<dir>].

    The checkpoint is read with ``weights_only=True`` and the run's model config is instantiated only
    when every ``_target_`` in it is a latent4d class of the run's family (:mod:`latent4d.trust`).
    """
    from latent4d.config import find_run_dir, load_run_config
    from latent4d.options import check_output_dir
    from latent4d.train import check_checkpoint
    from latent4d.trust import instantiate_from_run, load_state_checked

    o = parse_options(ExportOptions, _dotlist(items), "export")
    run_dir = find_run_dir(o.run)
    cfg = load_run_config(run_dir)
    out = check_output_dir(o.out or run_dir / "models", "out")
    if o.ckpt in ("best", "last"):
        cands = sorted((run_dir / "checkpoints").glob("best-*.ckpt" if o.ckpt == "best" else "last*.ckpt"))
        if not cands:
            raise ConfigError(f"no {o.ckpt} checkpoint in {run_dir / 'checkpoints'}")
        ckpt = cands[-1]
    else:
        ckpt = Path(o.ckpt)
    model = instantiate_from_run(cfg.model, str(cfg.family), f"{run_dir}/config.yaml: model")
    checkpoint = check_checkpoint(ckpt, cfg)
    from latent4d.ema import EMAMixin

    if isinstance(model, EMAMixin):  # checkpoints from before EMA copies: each copy starts from the raw weights
        model.on_load_checkpoint(checkpoint)
    load_state_checked(model, checkpoint["state_dict"], ckpt)
    if not hasattr(model, "export"):
        raise ConfigError(f"{type(model).__name__} has no networks to export")
    for name, path in model.export(out).items():
        print(f"[latent4d] exported {name} from {ckpt.name} -> {path}")


def _list() -> None:
    from latent4d.bench import registry
    from latent4d.config import list_experiments

    exps = list_experiments()
    width = max((len(n) for n, _ in exps), default=10)
    print("Experiments (latent4d train experiment=<name>):")
    for name, desc in exps:
        print(f"  {name.ljust(width)}  {desc}")
    try:
        names = sorted(registry())
        print("\nBenchmarks (latent4d bench <name> [--quick]):\n  " + ", ".join(names))
    except Exception as e:  # noqa: BLE001 - listing must not fail on one broken family
        print(f"\n(benchmarks unavailable: {e})")


def _demo(ns) -> None:
    from latent4d.demo import main as demo_main

    demo_main(ns.only, ns.quick, ns.out, full=ns.full, make_weights=ns.make_weights)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="latent4d", description="Latent generative models of 3D and 4D content.")
    sub = p.add_subparsers(dest="command", metavar="command")
    sub.add_parser("train", help="train an experiment: latent4d train experiment=<family>/<name> [overrides]",
                   add_help=False)
    for c, h in (("sample", "sample from a trained run: run=<dir> ..."),
                 ("evaluate", "evaluate a trained run: run=<dir> ...; results: evaluate objects frames=<dir> ..."),
                 ("export", "export networks (save_pretrained) from a checkpoint: run=<dir> [ckpt=best|last|file]")):
        sp = sub.add_parser(c, help=h)
        sp.add_argument("options", nargs="*")
    sp = sub.add_parser("reconstruct", help="reconstruct from observations: latent4d reconstruct <family> ...")
    sp.add_argument("family")
    sp.add_argument("options", nargs="*")
    sp = sub.add_parser("import-weights", help="convert a published checkpoint into a latent4d network folder: "
                        "latent4d import-weights <kind> CHECKPOINT OUT (docs/motion.md)")
    sp.add_argument("kind", choices=sorted(IMPORT_KINDS))
    sp.add_argument("checkpoint")
    sp.add_argument("out")
    sp.add_argument("--num-latents", type=int, default=512, help="latent queries M (512 in the published models)")
    sp = sub.add_parser("convert", help="convert between file formats (by extension): latent4d convert IN OUT")
    sp.add_argument("inp")
    sp.add_argument("out")
    sp.add_argument("--resample", type=int, default=None, help="resample hair strands to this many points")
    sp = sub.add_parser("align", help="put a hair file's roots on the scalp: latent4d align IN OUT [units=auto|m|cm|mm] "
                        "[scalp=<mesh>] [inverse=<transform.json>]")
    sp.add_argument("inp")
    sp.add_argument("out")
    sp.add_argument("options", nargs="*")
    sp = sub.add_parser("demo", help="run the demo on the built-in procedural data")
    sp.add_argument("--only", nargs="*", default=None, help=f"stages to run ({', '.join(FAMILIES)})")
    sp.add_argument("--quick", action="store_true", help="shorter training (for tests)")
    sp.add_argument("--full", action="store_true", help="train every family from scratch (about 1.5 h on 2 cores)")
    sp.add_argument("--make-weights", action="store_true", help="train the shipped demo weights (weights/demo)")
    sp.add_argument("--out", default="outputs/demo")
    sp = sub.add_parser("bench", help="run a benchmark: latent4d bench <name> [--quick]; `bench readme` updates README")
    sp.add_argument("name")
    sp.add_argument("--quick", action="store_true")
    sp.add_argument("--out", default="outputs/bench")
    sub.add_parser("list", help="list experiments and benchmarks")
    sp = sub.add_parser("view", help="open the interactive viewer", add_help=False)
    sp = sub.add_parser("render", help="render files to PNG turntables", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    cmd = argv[0]
    if cmd not in COMMANDS:
        parser.print_usage(sys.stderr)
        print(f"latent4d: error: unknown command '{cmd}'. Commands: {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    try:
        if cmd == "train":
            from latent4d.train import hydra_train

            hydra_train(argv[1:])
        elif cmd in ("view", "render"):
            from latent4d.viewer_entry import main as viewer_main

            return viewer_main(cmd, argv[1:])
        else:
            try:
                ns = parser.parse_args(argv)
            except SystemExit as e:  # argparse already printed the usage and the reason
                return int(e.code or 0)
            if cmd in ("sample", "evaluate"):
                _run_command(cmd, ns.options)
            elif cmd == "export":
                _export(ns.options)
            elif cmd == "reconstruct":
                _family_command(ns.family, "reconstruct")(list(ns.options))
            elif cmd == "import-weights":
                official = importlib.import_module(f"latent4d.{IMPORT_KINDS[ns.kind]}.official")
                official.import_weights(ns.kind, ns.checkpoint, ns.out, num_latents=ns.num_latents)
            elif cmd == "convert":
                _family_command("hair", "convert")(ns.inp, ns.out, resample=ns.resample)
            elif cmd == "align":
                _family_command("hair", "align")(ns.inp, ns.out, list(ns.options))
            elif cmd == "demo":
                _demo(ns)
            elif cmd == "bench":
                from latent4d.bench import run_bench, update_readme

                if ns.name == "readme":
                    print(f"[latent4d] updated {update_readme(src=ns.out)}")
                else:
                    run_bench(ns.name, ns.quick, ns.out)
            elif cmd == "list":
                _list()
    except Latent4DError as e:
        print(f"latent4d {cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"latent4d {cmd}: interrupted; outputs already written are complete, partial ones were removed",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
