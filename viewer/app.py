"""``latent4d view`` and ``latent4d render``.

``latent4d view [paths ...]`` opens the viewer window with hair files, meshes, RGB-D frames, mesh
sequences or run directories. ``--screenshot out.png`` draws what the window's 3D view shows and
exits (without a display the same scene is drawn offscreen). ``latent4d render paths ... --out DIR``
writes PNG turntables (and a GIF) with Open3D's OffscreenRenderer (the viewer's own scene); a
sequence becomes one PNG per frame from a fixed camera plus an animated GIF.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def view_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="latent4d view", description="Open3D viewer for hair, objects and motion.")
    p.add_argument("paths", nargs="*", help="hair files, meshes, RGB-D frames, sequence folders or run directories")
    p.add_argument("--screenshot", metavar="PNG", help="draw the 3D view to this PNG and exit")
    p.add_argument("--width", type=int, default=1280, help="window width in pixels")
    p.add_argument("--height", type=int, default=800, help="window height in pixels")
    p.add_argument("--headless", action="store_true", help="no window: draw offscreen (implied without a display)")
    p.add_argument("--azimuth", type=float, default=None, help="camera azimuth in degrees")
    p.add_argument("--elevation", type=float, default=None, help="camera elevation in degrees")
    p.add_argument("--frame", type=int, default=None, help="motion: show this frame")
    p.add_argument("--hair-color", default=None, help="hair: natural | 'root UV' | strand | curvature")
    p.add_argument("--preview-strands", type=int, default=None, help="hair: strands drawn (default 10000)")
    p.add_argument("--no-guides", action="store_true", help="hair: hide the guide strands")
    p.add_argument("--no-head", action="store_true", help="hair: hide the head")
    return p


def render_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="latent4d render",
                                description="Render hair files, meshes or sequences to PNG turntables.")
    p.add_argument("paths", nargs="+", help="hair files, meshes, point clouds, sequence folders, RGB-D frames")
    p.add_argument("--out", default="outputs/render", help="output folder (default outputs/render)")
    p.add_argument("--views", type=int, default=8, help="turntable views (default 8)")
    p.add_argument("--size", type=int, default=512, help="image width and height in pixels")
    p.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees")
    p.add_argument("--no-gif", action="store_true", help="PNGs only")
    p.add_argument("--max-strands", type=int, default=10000, help="hair: strands drawn")
    return p


def main(cmd: str, argv: list[str]) -> int:
    if cmd == "view":
        return run_view(view_parser().parse_args(argv))
    if cmd == "render":
        return run_render(render_parser().parse_args(argv))
    print(f"latent4d: unknown viewer command '{cmd}'", file=sys.stderr)
    return 2


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


def run_view(args) -> int:
    from latent4d.viewer.controller import ViewerApp, display_available

    headless = args.headless or not display_available()
    if headless and not args.screenshot:
        print("latent4d view: no display (DISPLAY is not set). Run it under `xvfb-run -a latent4d view ...`, "
              "on a desktop, or pass --screenshot out.png to draw the view offscreen.", file=sys.stderr)
        return 2
    app = ViewerApp(args.width, args.height, headless=headless)
    try:
        try:
            apply_view_options(app, args)
        except Exception as e:  # noqa: BLE001
            print(f"latent4d view: error: {e}", file=sys.stderr)
            return 2
        ok = all([app.load(p) for p in args.paths])
        if args.frame is not None and app.motion.active:
            app.motion.set_frame(args.frame)
        if args.azimuth is not None or args.elevation is not None:
            app.view.orbit(app.view.azimuth if args.azimuth is None else args.azimuth, args.elevation)
        if args.screenshot:
            if not ok:
                print(f"latent4d view: not writing {args.screenshot}: {len(app.errors)} input(s) failed to load",
                      file=sys.stderr)
                return 1
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
    """
    from latent4d.viewer.controller import ViewerApp

    from latent4d.fileio import atomic_path

    out = Path(args.out)
    failed = 0
    app = ViewerApp(headless=True, view_size=(args.size, args.size))
    app.hair.preview_count = max(1, args.max_strands)
    app.hair.show_guides = False
    try:
        for p in map(Path, args.paths):
            for panel in app.panels:
                panel.reset()
            if not app.load(p):
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
        app.close()
    if failed:
        print(f"latent4d render: {failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
