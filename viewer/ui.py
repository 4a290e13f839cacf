"""Small building blocks for the side panel: labelled rows, sliders, number fields, and the
:class:`Panel` base class that each family panel (hair, objects, motion) derives from.

A panel keeps its state in plain Python attributes and exposes it through methods (the viewer's
API); its widgets only call those methods, and ``sync()`` copies the state back into the widgets.
Without a window (headless ``--screenshot``) no widget exists and the same methods still work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from latent4d.errors import InputError


class App(Protocol):
    """What a panel uses of the application (:class:`latent4d.viewer.controller.ViewerApp`).

    Panels depend on this contract, not on the controller module, so that the controller can
    build the panels without the two importing each other.
    """

    view: Any  # latent4d.viewer.scene.SceneView
    window: Any  # the open3d gui.Window, None when headless

    def set_status(self, text: str) -> None: ...

    def call_ui(self, fn: Callable, *args) -> Any: ...

    def post(self, fn: Callable[[], object]) -> None: ...

    def run_worker(
        self,
        fn: Callable[[], object],
        on_done: Callable[[object], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> Any: ...

    def relayout(self) -> None: ...

    def reset_camera(self) -> None: ...

    def ask_path(
        self, title: str, save: bool, filters: list[tuple[str, str]], on_done: Callable[[str], None]
    ) -> None: ...


def gui():
    from open3d.visualization import gui as _gui

    return _gui


def label_row(text: str, widget, em: float):
    g = gui()
    row = g.Horiz(0.25 * em)
    lab = g.Label(text)
    row.add_child(lab)
    row.add_child(widget)
    return row


def slider(
    lo: float,
    hi: float,
    value: float,
    on_change: Callable[[float], None],
    integer: bool = False,
    tooltip: str = "",
):
    g = gui()
    s = g.Slider(g.Slider.INT if integer else g.Slider.DOUBLE)
    s.set_limits(lo, hi)
    if integer:
        s.int_value = int(value)
    else:
        s.double_value = float(value)
    s.set_on_value_changed(on_change)
    s.tooltip = tooltip
    return s


def number(
    value: float,
    on_change: Callable[[float], None],
    integer: bool = True,
    lo: float | None = None,
    hi: float | None = None,
    tooltip: str = "",
):
    g = gui()
    n = g.NumberEdit(g.NumberEdit.INT if integer else g.NumberEdit.DOUBLE)
    if lo is not None and hi is not None:
        n.set_limits(lo, hi)
    n.set_value(value)
    n.set_on_value_changed(on_change)
    n.tooltip = tooltip
    return n


def button(text: str, on_click: Callable[[], None], tooltip: str = ""):
    g = gui()
    b = g.Button(text)
    b.horizontal_padding_em = 0.4
    b.vertical_padding_em = 0.1
    b.set_on_clicked(on_click)
    b.tooltip = tooltip
    return b


def combo(items: list[str], on_change: Callable[[str, int], None], selected: int = 0, tooltip: str = ""):
    g = gui()
    c = g.Combobox()
    for it in items:
        c.add_item(it)
    c.selected_index = selected
    c.set_on_selection_changed(on_change)
    c.tooltip = tooltip
    return c


def checkbox(text: str, checked: bool, on_change: Callable[[bool], None], tooltip: str = ""):
    g = gui()
    c = g.Checkbox(text)
    c.checked = checked
    c.set_on_checked(on_change)
    c.tooltip = tooltip
    return c


def hrow(em: float, *widgets):
    g = gui()
    row = g.Horiz(0.25 * em)
    for w in widgets:
        row.add_child(w)
    return row


def show_setter(attr: str, name: str) -> Callable[[Any, bool], None]:
    """A panel method ``(self, on)`` that sets the flag ``attr`` to ``on``, shows or hides the panel's
    geometry ``prefix + name`` with it and syncs the widgets (``set_show_head = show_setter(...)``)."""

    def set_shown(self, on: bool) -> None:
        setattr(self, attr, bool(on))
        self.view.show(self.prefix + name, getattr(self, attr))
        self.sync()

    set_shown.__name__ = set_shown.__qualname__ = f"set_{attr}"
    set_shown.__doc__ = f"Show or hide {name} (the flag ``{attr}``)."
    return set_shown


class Panel:
    """Base class of the family panels.

    Subclasses register with :func:`latent4d.viewer.registry.register_panel` and implement
    ``can_read(path)`` and ``read(path) -> data`` (pure: parses files through the family's I/O
    module, may run in a worker thread, raises ``InputError`` naming the file), ``show(data)``
    (main thread: replaces the panel's content and draws it), ``build(em)`` (creates the widgets,
    only with a window) and ``sync()``; optionally ``check_run``, ``on_key``, ``on_mouse``,
    ``tick(now)``, ``stop()`` and ``camera_hint()``.

    Shared by every panel: ``set_color_mode`` over the ``color_modes`` given to ``__init__`` (the
    first is the default; a panel redraws in ``_recolor``), ``show_setter`` for its show / hide
    flags, and the widget helpers ``new_root``, ``add_label``, ``add_color_combo``, ``flag_checkbox``.
    """

    title = "panel"  # of its section in the side panel

    @property
    def prefix(self) -> str:
        """What the names of this panel's geometries in the scene start with: the title in lower
        case and a slash (``hair/``)."""
        return self.title.lower() + "/"

    def __init__(self, app: App, color_modes: tuple[str, ...] = ()):
        self.app = app
        self.color_modes = tuple(color_modes)  # what ``set_color_mode`` accepts (the ``color`` combo)
        self.root = None  # the CollapsableVert, once built
        self.widgets: dict[str, Any] = {}
        self.disabled_reasons: dict[str, str] = {}
        self.color_mode = self.color_modes[0] if self.color_modes else ""  # the first is the default

    @property
    def view(self):
        return self.app.view

    @property
    def active(self) -> bool:
        return False

    def build(self, em: float):
        raise NotImplementedError

    def sync(self) -> None:
        """Copy the panel's state into its widgets (no-op without a window)."""

    # ------------------------------------------------------------------ opening (see viewer.registry)
    @staticmethod
    def can_read(path) -> bool:
        """Whether this panel opens the file or folder ``path`` (cheap checks only)."""
        return False

    @staticmethod
    def read(path):
        """Parse ``path`` (pure: no drawing, may run on a worker thread); InputError naming the file."""
        raise NotImplementedError

    @classmethod
    def check_run(cls, path) -> None:
        """Refuse (InputError) a run directory of this panel's family that it cannot show."""

    # ------------------------------------------------------------------ input events
    def on_key(self, key, ctrl: bool) -> bool:
        """A key press (``gui.KeyName``) while this panel shows something; True when handled."""
        return False

    def on_mouse(self, kind: str, x: float, y: float, ctrl: bool) -> bool:
        """A mouse event over the 3D view (``kind``: ``down`` (left button), ``drag``, ``up``; view
        pixels) while this panel shows something; True when handled (the camera ignores it)."""
        return False

    def show(self, data) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        """Remove this panel's geometries from the scene."""
        self.view.remove_prefix(self.prefix)

    def reset(self) -> None:
        """Close what the panel shows (its geometries and its data)."""
        self.clear()

    # ------------------------------------------------------------------ display state
    def set_color_mode(self, mode: str) -> None:
        """Colour what the panel shows by ``mode`` (one of ``color_modes``)."""
        if mode not in self.color_modes:
            raise InputError(f"colour mode '{mode}' unknown (expected one of {', '.join(self.color_modes)})")
        self.color_mode = mode
        self._recolor()
        self.sync()

    def _recolor(self) -> None:
        """Redraw what the colour mode changes (when something is open)."""

    # ------------------------------------------------------------------ widgets
    def new_root(self, em: float):
        """The panel's collapsible section, titled ``title`` (not yet ``self.root``)."""
        g = gui()
        return g.CollapsableVert(self.title, 0.25 * em, g.Margins(0.5 * em, 0, 0, 0))

    def add_label(self, root, name: str, text: str):
        """A text label, widget ``name``, added to ``root``."""
        label = self.widgets[name] = gui().Label(text)
        root.add_child(label)
        return label

    def add_color_combo(self, root, em: float, text: str, tooltip: str) -> None:
        """The ``color`` combo of ``color_modes`` (calls ``set_color_mode``) in a row labelled ``text``."""
        self.widgets["color"] = combo(
            list(self.color_modes), lambda s, i: self.app.call_ui(self.set_color_mode, s), tooltip=tooltip
        )
        root.add_child(label_row(text, self.widgets["color"], em))

    def flag_checkbox(
        self, name: str, text: str, attr: str, setter: Callable[[bool], None], tooltip: str = ""
    ):
        """Checkbox widget ``name`` showing the flag ``attr``; ticking it calls ``setter(on)``."""
        self.widgets[name] = checkbox(
            text, getattr(self, attr), lambda on: self.app.call_ui(setter, on), tooltip
        )
        return self.widgets[name]

    def enable(self, name: str, on: bool, reason: str = "", tooltip: str = "") -> None:
        """Enable widget ``name``; when disabled its tooltip says ``reason`` (kept for the API/tests)."""
        if on:
            self.disabled_reasons.pop(name, None)
        else:
            self.disabled_reasons[name] = reason
        w = self.widgets.get(name)
        if w is not None:
            w.enabled = bool(on)
            w.tooltip = tooltip if on else reason

    def is_enabled(self, name: str) -> bool:
        return name not in self.disabled_reasons

    def set_visible(self, on: bool) -> None:
        if self.root is not None and self.root.visible != on:
            self.root.visible = on
            self.app.relayout()
