"""The viewer application: one window with a 3D view, a side panel per family and a status line.

:class:`ViewerApp` is both the GUI and its Python API. Widgets call the same methods a script or
a test calls (``load``, ``screenshot``, ``hair.extend()``, ``motion.set_frame(i)``...), so the
tests drive the real application exactly as a user does. Without a display (and with
``headless=True``) there is no window: the same scene is drawn by an ``OffscreenRenderer`` and
only the API exists (``latent4d view ... --screenshot`` on a server).

Loading never half-replaces what is open: a panel first *reads* the file (pure, may run on a
worker thread), and only a successful read is *shown*. A failure becomes an error dialog naming
the file (and an entry in ``errors``), and the previous scene stays as it was.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from latent4d.viewer import registry
from latent4d.viewer.messages import describe, one_line, wrap
from latent4d.viewer.scene import SceneView

from latent4d.errors import InputError

PANEL_EM = 21.0  # side panel width in em
STATUS_EM = 1.9  # status line height in em
DEFAULT_EM = 16.0

_initialised = False


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _init_gui():
    global _initialised
    from open3d.visualization import gui

    if not _initialised:
        gui.Application.instance.initialize()
        _initialised = True
    return gui.Application.instance


class ViewerApp:
    """The latent4d viewer.

    Args:
        width, height: window size in pixels (the 3D view is the window minus the side panel and
            the status line; headless, the image has that same size).
        headless: no window, offscreen rendering (default: when no display is available).
        title: window title.
        view_size: headless only: the image size (default: what the window's 3D view would be).
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 800,
        headless: bool | None = None,
        title: str = "latent4d viewer",
        view_size: tuple[int, int] | None = None,
    ):
        self.headless = (not display_available()) if headless is None else bool(headless)
        self.width, self.height = int(width), int(height)
        self.errors: list[str] = []
        self.status = "ready"
        self.dialog_text: str | None = None
        self.loaded: list[Path] = []
        self.command: str | None = None  # "view" / "render": prefix of errors printed headless
        self.window = None
        self._dialog = None
        self._closed = False
        self._main_thread = threading.get_ident()
        if self.headless:
            em = DEFAULT_EM
            size = (max(self.width - int(PANEL_EM * em), 64), max(self.height - int(STATUS_EM * em), 64))
            self.view = SceneView(None, None, view_size or size)
        else:
            self._build_window(title)
        self.panels = []  # in side-panel order; each is also an attribute: app.hair, app.objects, ...
        for entry in registry.entries():
            panel = entry.cls(self)
            setattr(self, entry.name, panel)
            self.panels.append(panel)
        if self.window is not None:
            self._build_panel()
        self.view.reset_camera()

    # ------------------------------------------------------------------ window
    def _build_window(self, title: str) -> None:
        from open3d.visualization import gui, rendering

        app = _init_gui()
        self.window = w = app.create_window(title, self.width, self.height)
        self.em = w.theme.font_size
        self.widget = gui.SceneWidget()
        self.widget.scene = rendering.Open3DScene(w.renderer)
        self.widget.set_on_mouse(self._on_mouse)
        w.add_child(self.widget)
        self.view = SceneView(self.widget, w)
        self.status_label = gui.Label(self.status)
        w.add_child(self.status_label)
        w.set_on_layout(self._on_layout)
        w.set_on_tick_event(self._on_tick)
        w.set_on_close(self._on_close)
        w.set_on_key(self._on_key)
        self._layout_now()

    def _build_panel(self) -> None:
        from latent4d.viewer import ui
        from open3d.visualization import gui

        em = self.em
        self.side = gui.ScrollableVert(0.3 * em, gui.Margins(0.5 * em, 0.5 * em, 0.5 * em, 0.5 * em))
        bar = ui.hrow(
            em,
            ui.button("Open...", self._on_open, "open a hair file, mesh, sequence, RGB-D frame or run"),
            ui.button("Screenshot...", self._on_screenshot, "save the 3D view as PNG"),
            ui.button("Reset camera", lambda: self.call_ui(self.reset_camera)),
        )
        self.side.add_child(bar)
        for p in self.panels:
            self.side.add_child(p.build(em))
        self.window.add_child(self.side)
        self._layout_now()

    def _layout_now(self) -> None:
        if self.window is None:
            return
        r = self.window.content_rect
        self._on_layout_rect(r)

    def _on_layout(self, ctx) -> None:
        self._on_layout_rect(self.window.content_rect)

    def _on_layout_rect(self, r) -> None:
        from open3d.visualization import gui

        pw, sh = int(PANEL_EM * self.em), int(STATUS_EM * self.em)
        self.widget.frame = gui.Rect(r.x, r.y, max(r.width - pw, 64), max(r.height - sh, 64))
        self.status_label.frame = gui.Rect(r.x + int(0.5 * self.em), r.y + r.height - sh, r.width, sh)
        if hasattr(self, "side"):
            self.side.frame = gui.Rect(r.x + r.width - pw, r.y, pw, r.height - sh)

    def relayout(self) -> None:
        if self.window is not None:
            self.window.set_needs_layout()

    def _on_close(self) -> bool:
        self._closed = True
        return True

    # ------------------------------------------------------------------- loading
    def panel(self, name: str):
        """The panel registered as ``name`` (``"hair"``, ``"objects"``, ``"motion"``, ...)."""
        registry.entry(name)  # KeyError naming the registered panels
        return getattr(self, name)

    def panel_for(self, path: Path):
        """The panel that opens ``path`` (InputError naming it when none does; see
        :func:`latent4d.viewer.registry.panel_name_for`)."""
        return self.panel(registry.panel_name_for(path))

    def load(self, path) -> bool:
        """Open ``path`` (file or folder). On failure: error dialog, ``errors`` entry, scene unchanged."""
        path = Path(path)
        self.set_status(f"loading {path} ...")
        t0 = time.perf_counter()
        try:
            panel = self.panel_for(path)
            data = panel.read(path)
        except Exception as e:  # noqa: BLE001 - every failure is reported, the viewer stays up
            self.error(describe(e, path))
            return False
        return self._apply(panel, data, path, t0)

    def show_input(self, name: str, data, path) -> bool:
        """Show what :func:`latent4d.viewer.registry.read_input` read from ``path`` in panel ``name`` (False and an error when
        drawing it fails; the scene is then unchanged)."""
        return self._apply(self.panel(name), data, Path(path), time.perf_counter())

    def load_async(self, path, on_done: Callable[[bool], None] | None = None) -> None:
        """Read ``path`` on a worker thread and show it on the main thread (the GUI's Open...)."""
        path = Path(path)
        if self.window is None:
            ok = self.load(path)
            if on_done:
                on_done(ok)
            return
        from open3d.visualization import gui

        self.set_status(f"loading {path} ...")
        t0 = time.perf_counter()

        def work():
            try:
                panel = self.panel_for(path)
                data = panel.read(path)
            except Exception as e:  # noqa: BLE001
                msg = describe(e, path)
                self.post(lambda: (self.error(msg), on_done and on_done(False)))
                return
            self.post(lambda: (r := self._apply(panel, data, path, t0), on_done and on_done(r)))

        gui.Application.instance.run_in_thread(work)

    def _apply(self, panel, data, path: Path, t0: float) -> bool:
        try:
            panel.show(data)
        except Exception as e:  # noqa: BLE001
            self.error(describe(e, path))
            return False
        self.loaded.append(path)
        self.reset_camera()
        self.set_status(f"opened {path} in {time.perf_counter() - t0:.1f} s")
        return True

    # ------------------------------------------------------------------ messages
    @property
    def last_error(self) -> str | None:
        return self.errors[-1] if self.errors else None

    def error(self, message: str) -> None:
        """Record ``message`` and show it in an error dialog (stderr when headless)."""
        self.errors.append(message)
        self.set_status("error: " + message.splitlines()[0])
        self.dialog_text = message
        if self.window is None:
            import sys

            prefix = f"latent4d {self.command}" if self.command else "latent4d"
            print(f"{prefix}: error: {one_line(message)}", file=sys.stderr)
            return
        from open3d.visualization import gui

        em = self.em
        dlg = gui.Dialog("Error")
        box = gui.Vert(0.5 * em, gui.Margins(em, em, em, em))
        box.add_child(gui.Label(wrap(message, 70)))
        ok = gui.Button("OK")
        ok.set_on_clicked(self.close_dialog)
        row = gui.Horiz()
        row.add_stretch()
        row.add_child(ok)
        row.add_stretch()
        box.add_child(row)
        dlg.add_child(box)
        if self._dialog is not None:
            self.window.close_dialog()
        self._dialog = dlg
        self.window.show_dialog(dlg)

    def close_dialog(self) -> None:
        if self._dialog is not None and self.window is not None:
            self.window.close_dialog()
        self._dialog = None
        self.dialog_text = None

    def set_status(self, text: str) -> None:
        self.status = text
        if self.window is not None and threading.get_ident() == self._main_thread:
            self.status_label.text = text
            self.window.post_redraw()

    def call_ui(self, fn: Callable, *args):
        """Run a widget action; an exception becomes an error dialog instead of a crash."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001
            if not isinstance(e, InputError):
                traceback.print_exc()
            self.error(describe(e, None))
            return None

    def post(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the main thread (from a worker thread); redraws afterwards."""
        if self.window is None:
            fn()
            return
        from open3d.visualization import gui

        def run():
            self.call_ui(fn)
            self.window.post_redraw()

        gui.Application.instance.post_to_main_thread(self.window, run)

    def run_worker(
        self,
        fn: Callable[[], object],
        on_done: Callable[[object], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> threading.Thread:
        """Run ``fn`` on a worker thread; ``on_done(result)`` (or ``on_error(message)`` and an error
        dialog) is posted to the main thread."""

        def work():
            try:
                result = fn()
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                msg = describe(e, None)
                self.post(lambda: (on_error and on_error(msg), self.error(msg)))
                return
            if on_done is not None:
                self.post(lambda: on_done(result))

        t = threading.Thread(target=work, daemon=True)
        t.start()
        return t

    # ------------------------------------------------------------------- view
    def reset_camera(self) -> None:
        for p in self.panels:
            hint = getattr(p, "camera_hint", None)
            if p.active and hint is not None:
                self.view.reset_camera(**hint())
                return
        self.view.reset_camera()

    def screenshot(self, path=None) -> np.ndarray:
        """The 3D view as an ``(H, W, 3)`` uint8 image; written to ``path`` as PNG (atomically) if given."""
        img = self.view.render()
        if path is not None:
            from latent4d.render import save_png

            save_png(img, path)
            self.set_status(f"screenshot saved to {path}")
        return img

    # --------------------------------------------------------------- event loop
    def pump(self, seconds: float = 0.0, ticks: int = 1) -> None:
        """Run the event loop for at least ``ticks`` ticks and ``seconds`` seconds (tests, scripts)."""
        t0 = time.monotonic()
        n = 0
        while n < ticks or time.monotonic() - t0 < seconds:
            if self.window is None:
                self._tick()
                time.sleep(1 / 120)
            else:
                self.window.post_redraw()
                from open3d.visualization import gui

                if not gui.Application.instance.run_one_tick():
                    break
            n += 1

    def _on_tick(self) -> bool:
        return self._tick()

    def _tick(self) -> bool:
        now = time.monotonic()
        changed = False
        for p in self.panels:
            tick = getattr(p, "tick", None)
            if tick is not None:
                changed = bool(tick(now)) or changed
        return changed

    def run(self) -> None:
        """The interactive event loop (returns when the window closes)."""
        if self.window is None:
            raise RuntimeError("no window: the viewer runs headless (no display)")
        from open3d.visualization import gui

        gui.Application.instance.run()
        self._closed = True

    def close(self) -> None:
        """Close the window (and let Filament shut down cleanly)."""
        for p in self.panels:
            stop = getattr(p, "stop", None)
            if stop is not None:
                stop()
        if self.window is not None and not self._closed:
            from open3d.visualization import gui

            self.window.close()
            self._closed = True
            gui.Application.instance.run_one_tick()
        self.view.close()

    # --------------------------------------------------------------- GUI actions
    def _on_open(self) -> None:
        self.ask_path(
            "Open", save=False, filters=registry.open_filters(), on_done=lambda p: self.load_async(p)
        )

    def _on_screenshot(self) -> None:
        def done(path):
            from latent4d.render import save_png

            self.view.render_async(
                lambda img: self.call_ui(
                    lambda: (save_png(img, path), self.set_status(f"screenshot saved to {path}"))
                )
            )

        self.ask_path("Save screenshot", save=True, filters=[(".png", "PNG image")], on_done=done)

    def ask_path(
        self, title: str, save: bool, filters: list[tuple[str, str]], on_done: Callable[[str], None]
    ) -> None:
        """A file dialog; ``on_done(path)`` runs when the user picks a path."""
        if self.window is None:
            raise RuntimeError("file dialogs need a window")
        from open3d.visualization import gui

        dlg = gui.FileDialog(gui.FileDialog.SAVE if save else gui.FileDialog.OPEN, title, self.window.theme)
        for ext, desc in filters:
            dlg.add_filter(ext, desc)
        dlg.add_filter("", "All files")

        def done(p):
            self.window.close_dialog()
            self.call_ui(on_done, p)

        dlg.set_on_cancel(self.window.close_dialog)
        dlg.set_on_done(done)
        self.window.show_dialog(dlg)

    def _on_key(self, e) -> bool:
        """Key presses go to the panels that show something (Ctrl+Z / Ctrl+Y: hair undo / redo,
        space: motion play / pause)."""
        from open3d.visualization import gui

        if e.type != gui.KeyEvent.Type.DOWN:
            return False
        try:
            ctrl = bool(e.modifiers & int(gui.KeyModifier.CTRL))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - KeyEvent has no modifiers on some versions
            ctrl = False
        return any(p.active and p.on_key(e.key, ctrl) for p in self.panels)

    def _on_mouse(self, e) -> int:
        """Mouse events over the 3D view go to the panels that show something (hair: Ctrl+click
        picks a guide strand, Ctrl+drag moves its tip); the camera gets those nobody handles."""
        from open3d.visualization import gui

        W = gui.SceneWidget.EventCallbackResult
        T = gui.MouseEvent.Type
        kind = {T.BUTTON_DOWN: "down", T.DRAG: "drag", T.BUTTON_UP: "up"}.get(e.type)
        if kind is None or (kind == "down" and not e.is_button_down(gui.MouseButton.LEFT)):
            return W.IGNORED
        ctrl = e.is_modifier_down(gui.KeyModifier.CTRL)
        x, y = e.x - self.widget.frame.x, e.y - self.widget.frame.y
        handled = any(p.active and p.on_mouse(kind, x, y, ctrl) for p in self.panels)
        return W.CONSUMED if handled else W.IGNORED
