"""The hair panel: show, colour, edit and save hairstyles; sample / blend / edit with a trained run.

Files (``.data``, ``.hair``, ``.ply`` with edges, ``.npz``) are read with
``latent4d.hair.formats.read_hair``. Strands are drawn as a line set over the head (when the roots
lie on the USC-HairSalon head), coloured by one of :data:`COLOR_MODES`. A preview of at most
``preview_count`` strands (10k by default) is drawn; ``full_density()`` draws them all.

Guide strands (see :mod:`viewer.hair_edit`) are drawn in blue; pick one with Ctrl+click (or
:meth:`HairPanel.pick`), then cut / extend / curl it or Ctrl+drag its tip; the dense hair follows.
Undo / redo step through the edits. ``save(path)`` writes the edited hair at full density.

With a trained hair run (``latent4d view outputs/<hair run>``) the model controls come alive:
sample a style from a seed, blend style A and B, move along principal and attribute directions,
set the dense strand count; edits are projected to the model and re-densified by it. Without one,
those controls are disabled and their tooltip says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latent4d.viewer import ui
from latent4d.viewer.hair_edit import GuideEditor
from latent4d.viewer.scene import HEAD_COLOR, Style, colormap, index_colors, mesh_geometry, polyline_lineset

from latent4d.errors import InputError
from latent4d.hair.strands import Hairstyle, curvature

COLOR_MODES = ("natural", "root UV", "strand", "curvature")
ROOT_COLOR = np.array([0.16, 0.09, 0.04])
TIP_COLOR = np.array([0.55, 0.35, 0.16])
GUIDE_COLOR = (0.15, 0.45, 1.0)
SELECTED_COLOR = (1.0, 0.45, 0.0)
DRAW_POINTS = 32  # points per drawn strand
NO_MODEL = ("needs a trained hair run: open a run directory of `latent4d train experiment=hair/...` "
            "(with models/strand_vae and the hairstyle model)")


@dataclass
class HairData:
    """What ``HairPanel.read`` returns: the file's hairstyle and its editor."""

    path: Path
    hairstyle: Hairstyle
    editor: GuideEditor
    on_head: bool
    pipeline: object | None = None


_SCALP = None


def default_scalp():
    global _SCALP
    if _SCALP is None:
        from latent4d.hair.scalp import Scalp

        _SCALP = Scalp()
    return _SCALP


def is_hair_file(path: Path) -> bool:
    """True for hair files: ``.data``/``.hair``, ``.npz`` with strands, ``.ply`` with an edge element."""
    ext = path.suffix.lower()
    if ext in (".data", ".hair"):
        return True
    if ext == ".ply":
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            return False
        end = head.find(b"end_header")
        return b"element edge" in (head[:end] if end >= 0 else head)
    if ext == ".npz":
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                names = {n.removesuffix(".npy") for n in z.namelist()}
        except (OSError, zipfile.BadZipFile):
            return True  # let read_hair name the problem
        return bool({"points", "counts"} <= names or "strands" in names)
    return False


class HairPanel(ui.Panel):
    title = "Hair"
    prefix = "hair/"

    def __init__(self, app):
        super().__init__(app)
        self.data: HairData | None = None
        self.color_mode = "natural"
        self.preview_count = 10000
        self.show_head = True
        self.show_guides = True
        self.selected: int | None = None
        self.brush_radius = 0.0  # metres
        self.cut_fraction = 0.7
        self.extend_metres = 0.05
        self.curl_amplitude = 0.01
        self.curl_turns = 4.0
        self.last_update_s = 0.0  # wall time of the last dense-hair preview update
        self._preview_idx: np.ndarray | None = None
        self._drag_active = False
        self.pipeline = None
        self._model_reason = NO_MODEL
        self._update_model_controls()

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        return self.data is not None

    @property
    def editor(self) -> GuideEditor:
        if self.data is None:
            raise InputError("no hairstyle is open")
        return self.data.editor

    @property
    def hairstyle(self) -> Hairstyle:
        """The edited hair at full density."""
        return self.editor.hairstyle()

    # ------------------------------------------------------------------ loading
    @staticmethod
    def can_read(path: Path) -> bool:
        return path.is_file() and is_hair_file(path)

    def read(self, path) -> HairData:
        from latent4d.hair.formats import read_hair

        path = Path(path)
        hs = read_hair(path).validate(str(path))
        if hs.bald.all():
            raise InputError(f"{path}: every strand is a bald root (nothing to draw)")
        return self._prepare(path, hs)

    def _prepare(self, path: Path, hs: Hairstyle, pipeline=None) -> HairData:
        scalp = default_scalp()
        roots = hs.roots[~hs.bald]
        on_head = bool(np.median(np.abs(scalp.head.radial_distance(roots))) < 0.03)
        if hs.root_uv is None and on_head:
            hs.root_uv = scalp.uv(hs.roots)
        editor = GuideEditor(hs, head=scalp.head if on_head else None)
        return HairData(path, hs, editor, on_head, pipeline)

    def show(self, data: HairData) -> None:
        self.data = data
        self.selected = None
        rng = np.random.default_rng(0)
        S = data.editor.num_strands
        n = min(self.preview_count, S)
        self._preview_idx = np.sort(rng.choice(S, n, replace=False)) if n < S else np.arange(S)
        self.clear()
        if data.on_head:
            self.view.set(self.prefix + "head", mesh_geometry(default_scalp().mesh(3), color=HEAD_COLOR))
            self.view.show(self.prefix + "head", self.show_head)
        self._draw_dense()
        self._draw_guides()
        self.set_visible(True)
        self.sync()

    def reset(self) -> None:
        self.data = None
        self.selected = None
        self.clear()
        self.sync()

    # -------------------------------------------------------------- drawing
    def _colors(self, strands: np.ndarray, idx: np.ndarray) -> np.ndarray:
        S, P, _ = strands.shape
        mode = self.color_mode
        if mode == "root UV" and self.editor.root_uv is not None:
            uv = self.editor.root_uv[idx]
            c = np.stack([0.15 + 0.8 * uv[:, 0], 0.25 + 0.3 * (1 - uv[:, 1]), 0.15 + 0.8 * uv[:, 1]], 1)
            return np.repeat(c[:, None], P, 1)
        if mode in ("root UV", "strand"):
            return np.repeat(index_colors(int(idx.max()) + 1)[idx][:, None], P, 1)
        if mode == "curvature":
            k = curvature(strands)  # (S, P-2)
            k = np.concatenate([k[:, :1], k, k[:, -1:]], 1)
            return colormap(k, 0.0, max(float(np.percentile(k, 95)), 1.0))
        t = np.linspace(0, 1, P)[None, :, None]
        return np.broadcast_to(ROOT_COLOR * (1 - t) + TIP_COLOR * t, (S, P, 3))

    def _draw_dense(self) -> None:
        t0 = time.perf_counter()
        idx = self._preview_idx
        strands = self.editor.densify(idx)
        P = strands.shape[1]
        pick = np.unique(np.linspace(0, P - 1, min(DRAW_POINTS, P)).round().astype(int))
        strands = strands[:, pick]
        self.view.set(self.prefix + "dense", polyline_lineset(strands, self._colors(strands, idx)),
                      Style("line", line_width=1.0))
        self.last_update_s = time.perf_counter() - t0

    def _draw_guides(self) -> None:
        ed = self.editor
        g = ed.guides
        self.view.set(self.prefix + "guides", polyline_lineset(g, color=GUIDE_COLOR), Style("line", line_width=2.0))
        self.view.show(self.prefix + "guides", self.show_guides)
        if self.selected is not None:
            self.view.set(self.prefix + "selected", polyline_lineset(g[self.selected:self.selected + 1],
                                                                     color=SELECTED_COLOR),
                          Style("line", line_width=4.0))
        else:
            self.view.remove(self.prefix + "selected")

    def redraw(self) -> None:
        if self.data is not None:
            self._draw_dense()
            self._draw_guides()
            self.sync()

    # ----------------------------------------------------------------- display API
    def set_color_mode(self, mode: str) -> None:
        if mode not in COLOR_MODES:
            raise InputError(f"colour mode '{mode}' unknown (expected one of {', '.join(COLOR_MODES)})")
        self.color_mode = mode
        if self.data is not None:
            self._draw_dense()
        self.sync()

    def set_preview_count(self, n: int) -> None:
        """Draw at most ``n`` strands (a fixed random subset)."""
        self.preview_count = max(1, int(n))
        if self.data is not None:
            self.show(self.data)

    def full_density(self) -> None:
        """Draw every strand."""
        if self.data is not None:
            self.set_preview_count(self.editor.num_strands)

    def set_show_head(self, on: bool) -> None:
        self.show_head = bool(on)
        self.view.show(self.prefix + "head", self.show_head)
        self.sync()

    def set_show_guides(self, on: bool) -> None:
        self.show_guides = bool(on)
        self.view.show(self.prefix + "guides", self.show_guides)
        self.sync()

    # -------------------------------------------------------------------- editing API
    def select_guide(self, guide: int | None) -> None:
        if guide is not None and not 0 <= guide < self.editor.num_guides:
            raise InputError(f"guide {guide} does not exist (0..{self.editor.num_guides - 1})")
        self.selected = guide
        self._draw_guides()
        self.sync()

    def guide_screen_points(self, guide: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Projected guide points: ``(G, P, 2)`` pixels and ``(G, P)`` depths (one guide if given)."""
        g = self.editor.guides if guide is None else self.editor.guides[guide:guide + 1]
        xy, z = self.view.project(g.reshape(-1, 3))
        return xy.reshape(len(g), -1, 2), z.reshape(len(g), -1)

    def pick(self, x: float, y: float, max_pixels: float = 12.0) -> int | None:
        """Select the guide drawn nearest to view pixel ``(x, y)`` (None: nothing close)."""
        xy, z = self.guide_screen_points()
        g = self.editor.nearest_guide(xy, z, x, y, max_pixels)
        self.select_guide(g)
        self.app.set_status(f"guide {g} selected" if g is not None else "no guide under the cursor")
        return g

    def _need_selection(self) -> int:
        if self.selected is None:
            raise InputError("select a guide strand first (Ctrl+click on a blue guide)")
        return self.selected

    def edit(self, op: str, merge: bool = False, **kw) -> None:
        """Edit the selected guide (``op`` in move_tip / cut / extend / curl, see ``viewer.hair_edit``)."""
        g = self._need_selection()
        self.editor.edit(g, op, radius=self.brush_radius, merge=merge, **kw)
        if self.pipeline is not None and hasattr(self.pipeline, "project_guides"):
            self._project_with_model()
        self.redraw()
        self.app.set_status(f"{op}: preview of {len(self._preview_idx)} strands updated in "
                            f"{self.last_update_s * 1000:.0f} ms")

    def cut(self, fraction: float | None = None) -> None:
        self.edit("cut", fraction=self.cut_fraction if fraction is None else fraction)

    def extend(self, metres: float | None = None) -> None:
        self.edit("extend", metres=self.extend_metres if metres is None else metres)

    def curl(self, amplitude: float | None = None, turns: float | None = None) -> None:
        self.edit("curl", amplitude=self.curl_amplitude if amplitude is None else amplitude,
                  turns=self.curl_turns if turns is None else turns)

    def move_tip(self, target) -> None:
        self.edit("move_tip", target=np.asarray(target, np.float64))

    def drag_tip(self, x: float, y: float, merge: bool = False) -> None:
        """Move the selected guide's tip under view pixel ``(x, y)`` (in the plane facing the camera)."""
        g = self._need_selection()
        target = self.view.unproject(x, y, self.editor.guides[g, -1])
        self.edit("move_tip", merge=merge, target=target)

    def undo(self) -> bool:
        ok = self.editor.undo()
        if ok:
            self.redraw()
        return ok

    def redo(self) -> bool:
        ok = self.editor.redo()
        if ok:
            self.redraw()
        return ok

    def save(self, path) -> Path:
        """Write the edited hair at full density (format by extension; atomic)."""
        from latent4d.hair.formats import write_hair

        path = Path(path)
        write_hair(path, self.hairstyle)
        self.app.set_status(f"saved {path}")
        return path

    # -------------------------------------------------------------- model controls
    def _update_model_controls(self) -> None:
        on = self.pipeline is not None
        for name in ("seed", "sample", "set_a", "set_b", "blend", "dense_count", "attr_length",
                     "attr_curliness", "attr_volume", "pc0", "pc1", "pc2"):
            self.enable(name, on, self._model_reason)

    def _project_with_model(self) -> None:  # replaced once the hair pipeline exists
        pass

    def _require_model(self) -> None:
        if self.pipeline is None:
            raise InputError(self._model_reason)

    def sample(self, seed: int) -> None:
        self._require_model()

    def set_blend(self, t: float) -> None:
        self._require_model()

    def set_attribute(self, name: str, value: float) -> None:
        self._require_model()

    # ----------------------------------------------------------------------- widgets
    def build(self, em: float):
        g = ui.gui()
        root = g.CollapsableVert(self.title, 0.25 * em, g.Margins(0.5 * em, 0, 0, 0))
        w = self.widgets
        w["info"] = g.Label("no hairstyle open")
        root.add_child(w["info"])
        w["color"] = ui.combo(list(COLOR_MODES), lambda s, i: self._ui(self.set_color_mode, s),
                              tooltip="strand colours: natural, root position on the scalp, per strand, curvature")
        root.add_child(ui.label_row("Colour", w["color"], em))
        w["preview"] = ui.number(self.preview_count, lambda v: self._ui(self.set_preview_count, int(v)),
                                 lo=1, hi=10_000_000, tooltip="strands drawn (a random subset)")
        w["full"] = ui.button("Full", lambda: self._ui(self.full_density), "draw every strand")
        root.add_child(ui.hrow(em, g.Label("Preview"), w["preview"], w["full"]))
        w["head"] = ui.checkbox("Head", self.show_head, lambda on: self._ui(self.set_show_head, on))
        w["guides"] = ui.checkbox("Guides", self.show_guides, lambda on: self._ui(self.set_show_guides, on))
        root.add_child(ui.hrow(em, w["head"], w["guides"]))

        root.add_child(g.Label("Edit (Ctrl+click a guide, Ctrl+drag its tip)"))
        w["selected"] = g.Label("no guide selected")
        root.add_child(w["selected"])
        w["brush"] = ui.slider(0.0, 10.0, self.brush_radius * 100, lambda v: setattr(self, "brush_radius", v / 100),
                               tooltip="edit neighbouring guides within this radius (cm)")
        root.add_child(ui.label_row("Brush cm", w["brush"], em))
        w["cut_f"] = ui.slider(0.1, 1.0, self.cut_fraction, lambda v: setattr(self, "cut_fraction", v),
                               tooltip="fraction of the length kept by Cut")
        w["cut"] = ui.button("Cut", lambda: self._ui(self.cut))
        root.add_child(ui.hrow(em, w["cut"], w["cut_f"]))
        w["ext_m"] = ui.slider(0.5, 30.0, self.extend_metres * 100, lambda v: setattr(self, "extend_metres", v / 100),
                               tooltip="length added by Extend (cm)")
        w["extend"] = ui.button("Extend", lambda: self._ui(self.extend))
        root.add_child(ui.hrow(em, w["extend"], w["ext_m"]))
        w["curl_a"] = ui.slider(0.1, 4.0, self.curl_amplitude * 100,
                                lambda v: setattr(self, "curl_amplitude", v / 100), tooltip="curl radius (cm)")
        w["curl"] = ui.button("Curl", lambda: self._ui(self.curl))
        root.add_child(ui.hrow(em, w["curl"], w["curl_a"]))
        w["undo"] = ui.button("Undo", lambda: self._ui(self.undo))
        w["redo"] = ui.button("Redo", lambda: self._ui(self.redo))
        w["save"] = ui.button("Save...", self._on_save, "write the edited hair (.data/.hair/.ply/.npz)")
        root.add_child(ui.hrow(em, w["undo"], w["redo"], w["save"]))

        root.add_child(g.Label("Model"))
        w["seed"] = ui.number(0, lambda v: None, lo=0, hi=2 ** 31 - 1)
        w["sample"] = ui.button("Sample", lambda: self._ui(self.sample, int(w["seed"].int_value)))
        root.add_child(ui.hrow(em, g.Label("Seed"), w["seed"], w["sample"]))
        w["set_a"] = ui.button("Set A", lambda: self._ui(self.set_style_slot, "A"))
        w["set_b"] = ui.button("Set B", lambda: self._ui(self.set_style_slot, "B"))
        w["blend"] = ui.slider(0.0, 1.0, 0.0, lambda v: self._ui(self.set_blend, v))
        root.add_child(ui.hrow(em, w["set_a"], w["set_b"]))
        root.add_child(ui.label_row("A - B", w["blend"], em))
        for name in ("length", "curliness", "volume"):
            w[f"attr_{name}"] = ui.slider(-3.0, 3.0, 0.0, lambda v, n=name: self._ui(self.set_attribute, n, v))
            root.add_child(ui.label_row(name.capitalize(), w[f"attr_{name}"], em))
        for i in range(3):
            w[f"pc{i}"] = ui.slider(-3.0, 3.0, 0.0, lambda v, i=i: self._ui(self.set_principal, i, v))
            root.add_child(ui.label_row(f"PC {i + 1}", w[f"pc{i}"], em))
        w["dense_count"] = ui.number(10000, lambda v: self._ui(self.set_dense_count, int(v)), lo=100, hi=500_000)
        root.add_child(ui.label_row("Dense strands", w["dense_count"], em))
        self.root = root
        root.visible = self.active
        self._update_model_controls()
        self.sync()
        return root

    def set_style_slot(self, slot: str) -> None:
        self._require_model()

    def set_principal(self, i: int, value: float) -> None:
        self._require_model()

    def set_dense_count(self, n: int) -> None:
        self._require_model()

    def _ui(self, fn, *args):
        self.app.call_ui(fn, *args)

    def _on_save(self) -> None:
        self.app.ask_path("Save hair", save=True, filters=[(".data", "USC-HairSalon"), (".hair", "Cem Yuksel"),
                                                            (".ply", "PLY polylines"), (".npz", "NumPy")],
                          on_done=lambda p: self._ui(self.save, p))

    def sync(self) -> None:
        w = self.widgets
        if not w:
            return
        if self.data is not None:
            ed = self.editor
            w["info"].text = (f"{self.data.path.name}: {ed.num_strands} strands, {ed.num_guides} guides"
                              + ("" if self.data.on_head else " (not on the head)"))
        w["color"].selected_index = COLOR_MODES.index(self.color_mode)
        w["head"].checked = self.show_head
        w["guides"].checked = self.show_guides
        w["selected"].text = "no guide selected" if self.selected is None else f"guide {self.selected} selected"
        has = self.data is not None
        for name in ("cut", "extend", "curl"):
            self.enable(name, has and self.selected is not None, "select a guide first (Ctrl+click)")
        self.enable("undo", has and self.editor.can_undo, "nothing to undo")
        self.enable("redo", has and self.editor.can_redo, "nothing to redo")
        self.enable("save", has, "no hairstyle open")
