"""Drive the real viewer (a window under Xvfb) through its Python API, as a user would, and record
what the screenshots show. Run by tests/viewer/test_gui.py:

    xvfb-run -a -s "-screen 0 1280x800x24" python gui_driver.py DATA_DIR OUT_DIR [scenario ...]

Writes OUT_DIR/results.json (one dict per scenario; an ``error`` entry with the traceback when a
scenario fails) and the screenshots as PNGs for inspection.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def hair_pixels(img: np.ndarray) -> int:
    """Pixels of the natural hair colours (brown: red well above blue, not saturated orange)."""
    i = img.astype(int)
    return int(((i[..., 0] - i[..., 2] > 20) & (i[..., 0] < 200) & (i[..., 1] < 170)).sum())


def drawn_pixels(img: np.ndarray) -> int:
    """Pixels that are not the white background."""
    return int((img.astype(int).sum(-1) < 740).sum())


def changed(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels whose colour differs noticeably between two screenshots."""
    return int((np.abs(a.astype(int) - b.astype(int)).sum(-1) > 40).sum())


def color_of(img: np.ndarray, rgb, tol: int = 60) -> int:
    return int((np.abs(img.astype(int) - np.asarray(rgb)).sum(-1) < tol).sum())


def saturation(img: np.ndarray) -> float:
    """Mean (max - min) channel spread of the drawn pixels: grey shading ~0, coloured surfaces larger."""
    i = img.astype(int)
    m = i.sum(-1) < 740
    return float((i.max(-1) - i.min(-1))[m].mean()) if m.any() else 0.0


def there_and_back(
    app, out: Path, prefix: str, set_state, there, back
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Screenshot the current state (``out/{prefix}{back}.png``), ``set_state(there)`` and screenshot
    it (``{prefix}{there}.png``), then ``set_state(back)`` and screenshot again (``{prefix}{back}_again.png``).
    Returns the first two screenshots and the changed pixels there and back again."""
    first = app.screenshot(out / f"{prefix}{back}.png")
    set_state(there)
    second = app.screenshot(out / f"{prefix}{there}.png")
    set_state(back)
    again = app.screenshot(out / f"{prefix}{back}_again.png")
    return first, second, changed(first, second), changed(first, again)


def scenario_hair(app, data: Path, out: Path) -> dict:
    r: dict = {}
    h = app.hair
    r["loaded"] = app.load(data / "hair.data")
    r["strands"] = h.editor.num_strands
    r["guides"] = h.editor.num_guides
    h.set_show_guides(False)
    natural = app.screenshot(out / "hair_natural.png")
    r["natural_hair_px"] = hair_pixels(natural)
    h.set_color_mode("strand")
    strand = app.screenshot(out / "hair_strand.png")
    r["strand_mode_hair_px"] = hair_pixels(strand)
    r["strand_mode_saturation"], r["natural_saturation"] = saturation(strand), saturation(natural)
    h.set_color_mode("natural")
    # pick the guide whose middle is nearest the camera, by clicking where it is drawn
    xy, z = h.guide_screen_points()
    mid = xy.shape[1] // 2
    W, H = app.view.view_size()
    inside = (xy[:, mid, 0] > 20) & (xy[:, mid, 0] < W - 20) & (xy[:, mid, 1] > 20) & (xy[:, mid, 1] < H - 20)
    cand = np.flatnonzero(inside)
    target = int(cand[np.argmin(z[cand, mid])])
    r["pick_target"] = target
    r["picked"] = h.pick(float(xy[target, mid, 0]), float(xy[target, mid, 1]))
    r["pick_empty"] = h.pick(1.0, 1.0)  # a corner: no guide there
    h.pick(float(xy[target, mid, 0]), float(xy[target, mid, 1]))
    before = app.screenshot(out / "hair_selected.png")
    r["before_px"] = hair_pixels(before)
    h.brush_radius = 0.04
    h.extend(0.15)
    r["extend_update_s"] = h.last_update_s
    extended = app.screenshot(out / "hair_extended.png")
    r["extended_px"] = hair_pixels(extended)
    h.undo()
    undone = app.screenshot(out / "hair_undone.png")
    r["undo_px"], r["undo_changed"] = hair_pixels(undone), changed(before, undone)
    h.redo()
    redone = app.screenshot(out / "hair_redone.png")
    r["redo_px"], r["redo_changed"] = hair_pixels(redone), changed(extended, redone)
    h.cut(0.3)
    r["cut_px"] = hair_pixels(app.screenshot(out / "hair_cut.png"))
    h.undo()
    h.curl(0.02, 5.0)
    r["curl_changed"] = changed(extended, app.screenshot(out / "hair_curl.png"))
    # drag the selected guide's tip 40 px to the right, as Ctrl+drag does on release
    h.brush_radius = 0.0
    tip_xy, _ = h.guide_screen_points(target)
    tx, ty = float(tip_xy[0, -1, 0]) + 40.0, float(tip_xy[0, -1, 1])
    h.drag_tip(tx, ty)
    new_tip, _ = h.guide_screen_points(target)
    r["drag_target"], r["drag_tip"] = [tx, ty], new_tip[0, -1].tolist()
    r["can_undo"] = h.editor.can_undo
    # full density and saving
    saved = h.save(out / "edited.hair")
    from latent4d.hair.formats import read_hair

    back = read_hair(saved)
    r["saved_strands"] = back.num_strands
    r["saved_mean_length"] = float(back.lengths().mean())
    r["original_mean_length"] = float(h.editor.source.lengths().mean())
    r["leftover_tmp"] = sorted(p.name for p in out.iterdir() if ".tmp" in p.name)
    return r


def scenario_hair_model(app, data: Path, out: Path) -> dict:
    r: dict = {}
    h = app.hair
    h.set_show_guides(False)
    h.preview_count = h.dense_count = 2000
    r["loaded"] = app.load(data / "model")
    r["model_mode"] = h.model_mode
    r["enabled"] = {k: h.is_enabled(k) for k in ("sample", "attr_length", "pc0", "blend", "dense_count")}
    r["blend_reason"] = h.disabled_reasons.get("blend", "")
    s0, s7, r["seed_changed"], r["same_seed_changed"] = there_and_back(app, out, "model_seed", h.sample, 7, 0)
    h.set_style_slot("A")
    h.sample(7)
    h.set_style_slot("B")
    r["blend_enabled"] = h.is_enabled("blend")
    h.set_blend(0.0)
    b0 = app.screenshot(out / "model_blend0.png")
    h.set_blend(0.5)
    h.set_blend(1.0)
    b1 = app.screenshot(out / "model_blend1.png")
    r["blend0_vs_seed0"], r["blend1_vs_seed7"] = changed(b0, s0), changed(b1, s7)
    r["history_after_blend"] = len(h.editor.editor.history)
    h.set_attribute("length", 2.5)
    a = app.screenshot(out / "model_length.png")
    r["attribute_changed"] = changed(b1, a)
    h.set_principal(0, 2.0)
    r["pc_changed"] = changed(a, app.screenshot(out / "model_pc0.png"))
    # a local edit through the model, timed
    xy, z = h.guide_screen_points()
    mid = xy.shape[1] // 2
    g = int(np.argmin(np.where(z[:, mid] > 0, z[:, mid], np.inf)))
    h.select_guide(g)
    before = app.screenshot()
    t0 = time.perf_counter()
    h.extend(0.15)
    r["model_edit_s"] = time.perf_counter() - t0
    r["model_edit_changed"] = changed(before, app.screenshot(out / "model_extend.png"))
    h.undo()
    r["model_undo_changed"] = changed(before, app.screenshot(out / "model_undo.png"))
    h.set_dense_count(2500)
    h.full_density()
    r["drawn_after_full"] = h.drawn_strands
    saved = h.save(out / "model_saved.npz")
    from latent4d.hair.formats import read_hair

    r["saved_strands"] = read_hair(saved).num_strands
    return r


def scenario_motion(app, data: Path, out: Path) -> dict:
    r: dict = {}
    m = app.motion
    r["loaded"] = app.load(data / "seq")
    r["frames"] = m.num_frames
    f0, _, r["frame_changed"], r["same_frame_changed"] = there_and_back(
        app, out, "motion_f", m.set_frame, 2, 0
    )
    r["points_px"] = color_of(f0, (242, 115, 25))
    m.set_show_points(False)
    r["points_hidden_px"] = color_of(app.screenshot(out / "motion_nopoints.png"), (242, 115, 25))
    m.set_show_points(True)
    r["corr_saturation"] = saturation(f0)
    m.set_color_mode("plain")
    m.set_show_points(False)
    r["plain_saturation"] = saturation(app.screenshot(out / "motion_plain.png"))
    m.set_show_points(True)
    m.set_color_mode("correspondence")
    m.set_fps(12)
    m.play()
    app.pump(seconds=1.0)
    r["frames_played"], r["playing"] = m.frames_played, m.playing
    m.pause()
    fr, played = m.frame, m.frames_played
    app.pump(seconds=0.5)
    r["frame_stays_paused"] = m.frame == fr and m.frames_played == played
    return r


def scenario_objects(app, data: Path, out: Path) -> dict:
    r: dict = {}
    o = app.objects
    r["loaded_frame"] = app.load(data / "frame")
    rgb = app.screenshot(out / "objects_frame_rgb.png")
    r["frame_drawn_px"] = drawn_pixels(rgb)
    r["red_px"], r["blue_px"] = color_of(rgb, (220, 40, 40)), color_of(rgb, (40, 90, 220))
    r["boxes"] = sorted(n for n in app.view.names() if "obsbox" in n)
    o.set_color_mode("instance")
    r["instance_changed"] = changed(rgb, app.screenshot(out / "objects_frame_instance.png"))
    o.set_color_mode("rgb")
    r["loaded_mesh"] = app.load(data / "mesh.obj")
    r["meshes"] = len(o.meshes)
    r["mesh_changed"] = changed(rgb, app.screenshot(out / "objects_mesh.png"))
    return r


def scenario_objects_model(app, data: Path, out: Path) -> dict:
    r: dict = {}
    o = app.objects
    r["disabled_before"] = {k: o.disabled_reasons.get(k, "") for k in ("reconstruct", "shape0")}
    app.load(data / "frame")
    r["loaded_run"] = app.load(data / "objmodel")
    r["code_mesh"] = o.code_mesh is not None
    a = app.screenshot(out / "objmodel_code.png")
    o.set_shape_code(0, -1.0)  # a bigger ball
    r["shape_slider_changed"] = changed(a, app.screenshot(out / "objmodel_shape.png"))
    o.select_object(2)
    r["object_changed"] = changed(a, app.screenshot(out / "objmodel_object2.png"))
    r["reconstruct_enabled"] = o.is_enabled("reconstruct")
    # the optimisation runs on a worker thread: the event loop keeps ticking and draws its progress
    t0 = time.perf_counter()
    o.reconstruct(iterations=25)
    r["returned_while_running"] = o.running
    ticks = 0
    while o.running and time.perf_counter() - t0 < 300:
        app.pump(ticks=1)
        ticks += 1
    r["ticks_while_running"], r["live_updates"] = ticks, o.live_updates
    r["iterations_done"] = {str(k): v for k, v in o.iterations_done.items()}
    r["statuses"] = [x.status for x in o.results]
    r["recon_shapes"] = sorted(n for n in app.view.names() if "recon_shape" in n)
    r["recon_changed"] = changed(a, app.screenshot(out / "objmodel_recon.png"))
    # Stop ends a long run early
    o.reconstruct(iterations=2000)
    while o.running and not o.iterations_done:
        app.pump(ticks=1)
    o.stop()
    t1 = time.perf_counter()
    while o.running and time.perf_counter() - t1 < 120:
        app.pump(ticks=1)
    r["stopped_iterations"] = max(o.iterations_done.values()) if o.iterations_done else 0
    r["stopped_running"] = o.running
    r["seconds_recon"] = time.perf_counter() - t0
    return r


def scenario_errors(app, data: Path, out: Path) -> dict:
    r: dict = {}
    bad = data / "bad"
    app.load(data / "hair.data")
    names = app.view.names()
    before = app.screenshot(out / "errors_before.png")
    r["corrupt_ok"] = app.load(bad / "corrupt.data")
    r["corrupt_error"] = app.last_error
    r["dialog"] = app.dialog_text
    app.close_dialog()
    r["names_kept"] = app.view.names() == names
    r["corrupt_changed"] = changed(before, app.screenshot(out / "errors_after_corrupt.png"))
    r["missing_ok"] = app.load(bad / "does_not_exist.hair")
    r["missing_error"] = app.last_error
    r["frame_ok"] = app.load(bad / "bad_frame")
    r["frame_error"] = app.last_error
    r["run_ok"] = app.load(bad / "hair_run_no_model")
    r["run_sample_enabled"] = app.hair.is_enabled("sample")
    r["run_reason"] = app.hair.disabled_reasons.get("sample", "")
    w = app.hair.widgets.get("sample")
    r["run_tooltip"] = None if w is None else w.tooltip
    r["run_widget_enabled"] = None if w is None else w.enabled
    r["hair_still_open"] = app.hair.active and app.view.names() == names
    try:
        app.hair.sample(0)
        r["sample_without_model"] = "no error"
    except Exception as e:  # noqa: BLE001
        r["sample_without_model"] = str(e)
    r["errors"] = list(app.errors)
    return r


SCENARIOS = {
    "hair": scenario_hair,
    "hair_model": scenario_hair_model,
    "motion": scenario_motion,
    "objects": scenario_objects,
    "objects_model": scenario_objects_model,
    "errors": scenario_errors,
}


def main() -> int:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    names = sys.argv[3:] or list(SCENARIOS)
    out.mkdir(parents=True, exist_ok=True)
    from latent4d.viewer.controller import ViewerApp

    results: dict = {}
    for name in names:
        app = ViewerApp(640 + 336, 480, headless=False)
        t0 = time.perf_counter()
        try:
            results[name] = SCENARIOS[name](app, data, out)
            results[name]["window"] = app.window is not None
        except Exception:  # noqa: BLE001 - reported to the test
            results[name] = {"error": traceback.format_exc()}
        finally:
            results[name]["seconds"] = time.perf_counter() - t0
            app.close()
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
