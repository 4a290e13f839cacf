"""``latent4d view`` and ``latent4d render``.

``latent4d view [paths ...]`` opens the viewer window with hair files, meshes, RGB-D frames, mesh
sequences or run directories. ``--screenshot out.png`` draws what the window's 3D view shows and
exits (without a display the same scene is drawn offscreen). ``latent4d render paths ... --out DIR``
writes PNG turntables (and a GIF) with Open3D's OffscreenRenderer (the viewer's own scene); a
sequence becomes one PNG per frame from a fixed camera plus an animated GIF.

Bad input never opens a window. Every option (sizes, angles, ``--screenshot`` / ``--out`` paths,
unknown flags) and every input path (exists, not empty, a kind some panel opens, a readable run
config) is checked before Open3D starts; ``view`` then reads every input before the window opens.
Each problem is one line on stderr, ``latent4d view: error: <file or option>: <reason>``.
Exit status: 0 done; 1 an input could not be read or drawn (``render`` still renders the others);
2 bad options or input paths (nothing read or drawn).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from latent4d.errors import ConfigError, Latent4DError

#: (min, max) of the numeric options
MAX_SIDE = 16384  # pixels
MAX_STRANDS = 10_000_000
MAX_VIEWS = 360


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`ConfigError` (one line, no usage dump) instead of exiting."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def view_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="latent4d view", description="Open3D viewer for hair, objects and motion.")
    p.add_argument(
        "paths", nargs="*", help="hair files, meshes, RGB-D frames, sequence folders or run directories"
    )
    p.add_argument("--screenshot", metavar="PNG", help="draw the 3D view to this PNG and exit")
    p.add_argument("--width", type=int, default=1280, help="window width in pixels")
    p.add_argument("--height", type=int, default=800, help="window height in pixels")
    p.add_argument(
        "--headless", action="store_true", help="no window: draw offscreen (implied without a display)"
    )
    p.add_argument("--azimuth", type=float, default=None, help="camera azimuth in degrees")
    p.add_argument("--elevation", type=float, default=None, help="camera elevation in degrees")
    p.add_argument("--frame", type=int, default=None, help="motion: show this frame")
    p.add_argument("--hair-color", default=None, help="hair: natural | 'root UV' | strand | curvature")
    p.add_argument("--preview-strands", type=int, default=None, help="hair: strands drawn (default 10000)")
    p.add_argument("--no-guides", action="store_true", help="hair: hide the guide strands")
    p.add_argument("--no-head", action="store_true", help="hair: hide the head")
    return p


def render_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="latent4d render", description="Render hair files, meshes or sequences to PNG turntables."
    )
    p.add_argument(
        "paths", nargs="+", help="hair files, meshes, point clouds, sequence folders, RGB-D frames"
    )
    p.add_argument("--out", default="outputs/render", help="output folder (default outputs/render)")
    p.add_argument("--views", type=int, default=8, help="turntable views (default 8)")
    p.add_argument("--size", type=int, default=512, help="image width and height in pixels")
    p.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees")
    p.add_argument("--no-gif", action="store_true", help="PNGs only")
    p.add_argument("--max-strands", type=int, default=10000, help="hair: strands drawn")
    return p


def main(cmd: str, argv: list[str]) -> int:
    """``latent4d view`` / ``latent4d render`` (``argv`` without the command); the exit status."""
    try:
        if cmd == "view":
            args = view_parser().parse_args(argv)
            check_view_args(args)
            return run_view(args)
        if cmd == "render":
            args = render_parser().parse_args(argv)
            check_render_args(args)
            return run_render(args)
    except Latent4DError as e:
        from latent4d.viewer.messages import one_line

        print(f"latent4d {cmd}: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    print(f"latent4d: unknown viewer command '{cmd}'", file=sys.stderr)
    return 2


# --------------------------------------------------------------------------------- checks
def _check_int(option: str, value: int | None, lo: int, hi: int) -> None:
    if value is not None and not lo <= value <= hi:
        raise ConfigError(f"{option} {value}: expected a whole number from {lo} to {hi}")


def _check_angle(option: str, value: float | None, limit: float | None = None) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise ConfigError(f"{option} {value}: expected a finite angle in degrees")
    if limit is not None and abs(value) > limit:
        raise ConfigError(f"{option} {value}: expected degrees from {-limit:g} to {limit:g}")


def check_inputs(paths: list[str]) -> None:
    """Every input path exists, is not empty and is something a panel opens (cheap checks; no
    window). Raises :class:`InputError` naming the first bad path and why."""
    from latent4d.viewer.registry import panel_name_for

    for p in paths:
        panel_name_for(Path(p))


def check_view_args(args) -> None:
    """Options and inputs of ``latent4d view`` (before Open3D starts); ConfigError / InputError."""
    from latent4d.options import check_output_file

    _check_int("--width", args.width, 64, MAX_SIDE)
    _check_int("--height", args.height, 64, MAX_SIDE)
    _check_int("--frame", args.frame, 0, 10**9)
    _check_int("--preview-strands", args.preview_strands, 1, MAX_STRANDS)
    _check_angle("--azimuth", args.azimuth)
    _check_angle("--elevation", args.elevation, 90.0)
    if args.hair_color is not None:
        from latent4d.viewer.hair_panel import COLOR_MODES

        if args.hair_color not in COLOR_MODES:
            raise ConfigError(
                f"--hair-color {args.hair_color!r}: expected one of {', '.join(repr(m) for m in COLOR_MODES)}"
            )
    if args.screenshot is not None:
        args.screenshot = str(check_output_file(args.screenshot, "--screenshot", (".png",)))
    check_inputs(args.paths)


def check_render_args(args) -> None:
    """Options and inputs of ``latent4d render`` (before Open3D starts); ConfigError / InputError."""
    from latent4d.options import check_output_dir

    _check_int("--views", args.views, 1, MAX_VIEWS)
    _check_int("--size", args.size, 16, MAX_SIDE)
    _check_int("--max-strands", args.max_strands, 1, MAX_STRANDS)
    _check_angle("--elevation", args.elevation, 90.0)
    check_output_dir(args.out, "--out")
    check_inputs(args.paths)


# --------------------------------------------------------------------------------- view
def apply_view_options(app, args) -> None:
    """Command-line display options (shared by the window and --screenshot)."""
    if args.preview_strands is not None:
        app.hair.preview_count = max(1, args.preview_strands)
    if args.no_guides:
        app.hair.show_guides = False
    if args.no_head:
        app.hair.show_head = False
    if args.hair_color is not None:
        app.hair.set_color_mode(args.hair_color)


def read_inputs(cmd: str, paths: list[str]) -> list[tuple[str, object, Path]] | None:
    """Read every input (no window); None after printing one error line for the first that fails."""
    from latent4d.viewer.messages import error_line
    from latent4d.viewer.registry import read_input

    out = []
    for p in paths:
        try:
            name, data = read_input(p)
        except Exception as e:  # noqa: BLE001 - any reader failure is reported as one line naming the file
            print(f"latent4d {cmd}: error: {error_line(e, p)}", file=sys.stderr)
            return None
        out.append((name, data, Path(p)))
    return out


def run_view(args) -> int:
    from latent4d.viewer.controller import ViewerApp, display_available

    headless = args.headless or not display_available()
    if headless and not args.screenshot:
        print(
            "latent4d view: no display (DISPLAY is not set). Run it under `xvfb-run -a latent4d view ...`, "
            "on a desktop, or pass --screenshot out.png to draw the view offscreen.",
            file=sys.stderr,
        )
        return 2
    inputs = read_inputs("view", args.paths)
    if inputs is None:
        return 1
    if args.frame is not None:
        seqs = [(p, d) for name, d, p in inputs if name == "motion"]
        if not seqs:
            raise ConfigError("--frame needs a motion sequence among the inputs")
        for p, seq in seqs:
            if args.frame >= seq.num_frames:
                raise ConfigError(
                    f"--frame {args.frame}: {p} has {seq.num_frames} frames (0 to {seq.num_frames - 1})"
                )
    app = ViewerApp(args.width, args.height, headless=headless)
    app.command = "view"
    try:
        try:
            apply_view_options(app, args)
        except Exception as e:  # noqa: BLE001
            print(f"latent4d view: error: {e}", file=sys.stderr)
            return 2
        ok = all([app.show_input(name, data, p) for name, data, p in inputs])
        if args.frame is not None and app.motion.active:
            app.motion.set_frame(args.frame)
        if args.azimuth is not None or args.elevation is not None:
            app.view.orbit(app.view.azimuth if args.azimuth is None else args.azimuth, args.elevation)
        if args.screenshot:
            if not ok:
                return 1  # the failed input is named on stderr; no screenshot
            app.pump(ticks=2)
            app.screenshot(args.screenshot)
            print(f"[latent4d] wrote {args.screenshot}")
            return 0
        app.run()
        return 0
    finally:
        app.close()


# --------------------------------------------------------------------------------- render
def run_render(args) -> int:
    """Turntables (hair, meshes, point clouds, RGB-D frames) or per-frame images (sequences).

    One headless viewer draws every input exactly as ``latent4d view`` does (same panels, same
    styles; guides hidden), through a single ``OffscreenRenderer`` whose camera orbits the scene.
    Each input is read before it is drawn; one that cannot be read is named on stderr (one line)
    and skipped, and the others are still rendered (exit status 1). The renderer starts only once
    an input has been read.
    """
    from latent4d.viewer.controller import ViewerApp
    from latent4d.viewer.messages import error_line
    from latent4d.viewer.registry import read_input

    from latent4d.fileio import atomic_path

    out = Path(args.out)
    failed = 0
    app = None
    try:
        for p in map(Path, args.paths):
            try:
                name, data = read_input(p)
            except Exception as e:  # noqa: BLE001 - reported as one line naming the file
                print(f"latent4d render: error: {error_line(e, p)}", file=sys.stderr)
                failed += 1
                continue
            if app is None:
                app = ViewerApp(headless=True, view_size=(args.size, args.size))
                app.command = "render"
                app.hair.preview_count = max(1, args.max_strands)
                app.hair.show_guides = False
            for panel in app.panels:
                panel.reset()
            if not app.show_input(name, data, p):
                failed += 1
                continue
            stem = out / (p.stem if p.is_file() else p.name)
            frames, paths = [], []
            c, r = app.view.bounds()
            if app.motion.active and app.motion.num_frames > 1:
                hint = app.motion.camera_hint()
                app.view.reset_camera(hint.get("center"), hint.get("radius"), 20.0, args.elevation)
                for t in range(app.motion.num_frames):
                    app.motion.set_frame(t)
                    frames.append(app.screenshot(stem.with_name(f"{stem.name}_f{t:03d}.png")))
                    paths.append(stem.with_name(f"{stem.name}_f{t:03d}.png"))
                duration = 1.0 / app.motion.fps
            else:
                for i in range(args.views):
                    app.view.reset_camera(c, r, 360.0 * i / args.views, args.elevation)
                    frames.append(app.screenshot(stem.with_name(f"{stem.name}_{i:02d}.png")))
                    paths.append(stem.with_name(f"{stem.name}_{i:02d}.png"))
                duration = 0.25
            if not args.no_gif:
                import imageio.v2 as imageio

                gif = stem.with_suffix(".gif")
                with atomic_path(gif) as tmp:
                    imageio.mimsave(tmp, frames, format="GIF", duration=duration, loop=0)
                paths.append(gif)
            print(f"[latent4d] {p} -> {paths[-1]} ({len(paths)} files)")
    finally:
        if app is not None:
            app.close()
    if failed and len(args.paths) > 1:
        print(f"latent4d render: {failed} of {len(args.paths)} inputs failed (named above)", file=sys.stderr)
    return 1 if failed else 0
