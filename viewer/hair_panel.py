"""The hair panel: show, colour, edit and save hairstyles; sample / blend / edit with a trained run.

Files (``.data``, ``.hair``, ``.ply`` with edges, ``.npz``, ``.usd/.usda/.usdc``) are read with
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
from latent4d.viewer.registry import FileKind, register_panel
from latent4d.viewer.scene import HEAD_COLOR, Style, colormap, index_colors, mesh_geometry, polyline_lineset

from latent4d.errors import InputError
from latent4d.hair.edit import DEFAULTS as EDIT_DEFAULTS
from latent4d.hair.edit import EditSession
from latent4d.hair.strands import Hairstyle, curvature

COLOR_MODES = ("natural", "root UV", "strand", "curvature")
ROOT_COLOR = np.array([0.16, 0.09, 0.04])
TIP_COLOR = np.array([0.55, 0.35, 0.16])
GUIDE_COLOR = (0.15, 0.45, 1.0)
SELECTED_COLOR = (1.0, 0.45, 0.0)
DRAW_POINTS = 32  # points per drawn strand
NO_MODEL = (
    "needs a trained hair run: open a run directory of `latent4d train experiment=hair/...` "
    "(with models/strand_vae and the hairstyle model)"
)


@dataclass
class HairData:
    """What ``HairPanel.read`` returns for a file: the hairstyle and its (file-only) editor."""

    path: Path
    hairstyle: Hairstyle
    editor: GuideEditor
    on_head: bool


@dataclass
class HairRun:
    """What ``HairPanel.read`` returns for a run directory: its pipeline (or None) and why not."""

    path: Path
    pipeline: object | None
    reason: str


_SCALP = None


def default_scalp():
    global _SCALP
    if _SCALP is None:
        from latent4d.hair.scalp import Scalp

        _SCALP = Scalp()
    return _SCALP


def is_hair_file(path: Path) -> bool:
    """True for hair files: ``.data``/``.hair``/``.usd*``, ``.npz`` with strands, ``.ply`` with an edge element."""
    ext = path.suffix.lower()
    if ext in (".data", ".hair", ".usd", ".usda", ".usdc"):
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


# controls that act on a style latent of the model (disabled while the hair comes from a file)
LATENT_CONTROLS = (
    "set_a",
    "set_b",
    "blend",
    "attr_length",
    "attr_curliness",
    "attr_volume",
    "pc0",
    "pc1",
    "pc2",
    "dense_count",
)
MODEL_CONTROLS = ("seed", "sample", *LATENT_CONTROLS, "encode", "project")  # all that need a model


# the edit tools' rows: (operation = button name and panel method, button label, slider name, the
# panel attribute the slider sets, slider range, slider units per attribute unit, slider tooltip)
EDIT_TOOLS = (
    ("cut", "Cut", "cut_f", "cut_fraction", (0.1, 1.0), 1.0, "fraction of the length kept by Cut"),
    ("extend", "Extend", "ext_m", "extend_metres", (0.5, 30.0), 100.0, "length added by Extend (cm)"),
    ("curl", "Curl", "curl_a", "curl_amplitude", (0.1, 4.0), 100.0, "curl radius (cm)"),
)
HAIR_EXTS = (".data", ".hair", ".ply", ".npz", ".usd", ".usda", ".usdc")


@register_panel("hair", kinds=(FileKind("hair", HAIR_EXTS),), runs=("hair",), order=0, probe=0)
class HairPanel(ui.Panel):
    title = "Hair"

    def __init__(self, app):
        super().__init__(app, COLOR_MODES)
        self.session: EditSession | None = None  # GuideEditor (file) or ModelSession (trained run)
        self.name = ""
        self.on_head = True
        self.preview_count = 10000
        self.show_head = True
        self.show_guides = True
        self.selected: int | None = None
        self.brush_radius = 0.0  # metres
        # tool settings start at the edit operations' defaults (latent4d.hair.edit, with and without a model)
        self.cut_fraction = EDIT_DEFAULTS["cut"]["fraction"]
        self.extend_metres = EDIT_DEFAULTS["extend"]["metres"]  # metres
        self.curl_amplitude = EDIT_DEFAULTS["curl"]["amplitude"]  # metres
        self.curl_turns = EDIT_DEFAULTS["curl"]["turns"]
        self.last_update_s = 0.0  # wall time of the last dense-hair preview update
        self.last_edit_s = 0.0  # wall time of the last edit, preview included
        # model
        self.pipeline = None
        self.run_path: Path | None = None
        self._model_reason = NO_MODEL
        self.dense_count = 10000
        self.project_edits = True
        self.temperature = 1.0
        self.slots: dict[str, object] = {}
        self.sliders: dict[str, float] = {}
        self._pcs: np.ndarray | None = None
        self._pending_tip = None
        self._drag: tuple | None = None  # (guide, moved, (x, y)) while Ctrl+dragging a tip
        self.sync()

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        return self.session is not None

    @property
    def model_mode(self) -> bool:
        from latent4d.viewer.hair_model import ModelSession

        return isinstance(self.session, ModelSession)

    @property
    def has_style_model(self) -> bool:
        return self.pipeline is not None and getattr(self.pipeline, "style_vae", None) is not None

    @property
    def editor(self):
        if self.session is None:
            raise InputError("no hairstyle is open")
        return self.session

    @property
    def hairstyle(self) -> Hairstyle:
        """The edited hair at full density."""
        return self.editor.hairstyle(self.dense_count)

    # ------------------------------------------------------------------ loading
    @staticmethod
    def can_read(path: Path) -> bool:
        return path.is_file() and is_hair_file(path)

    @staticmethod
    def read(path):
        """A hair file -> :class:`HairData`; a run directory -> :class:`HairRun` (pure: no drawing)."""
        path = Path(path)
        if path.is_dir():
            from latent4d.viewer.hair_model import load_pipeline

            pipe, reason = load_pipeline(path)
            return HairRun(path, pipe, reason)
        from latent4d.hair.align import check_on_scalp
        from latent4d.hair.formats import read_hair

        hs = read_hair(path).validate(str(path))
        if hs.bald.all():
            raise InputError(f"{path}: every strand is a bald root (nothing to draw)")
        scalp = default_scalp()
        on_head = check_on_scalp(hs, scalp, str(path)).on_scalp  # InputError (offset, scale, fix) when off it
        if hs.root_uv is None and on_head:
            hs.root_uv = scalp.uv(hs.roots)
        return HairData(path, hs, GuideEditor(hs, head=scalp.head if on_head else None), on_head)

    def show(self, data) -> None:
        if isinstance(data, HairRun):
            self.pipeline, self.run_path = data.pipeline, data.path
            self._model_reason = data.reason or NO_MODEL
            self._pcs = None
            self.slots.clear()
            if self.has_style_model:
                self.sample(0)
            else:
                self.app.set_status(self._model_reason)
                self.sync()
            return
        self._set_session(data.editor, data.path.name, data.on_head)

    def _set_session(self, session, name: str, on_head: bool = True) -> None:
        self.session = session
        self.name = name
        self.on_head = on_head
        self.selected = None
        self.sliders = {}
        self.clear()
        if on_head:
            self.view.set(self.prefix + "head", mesh_geometry(default_scalp().mesh(3), color=HEAD_COLOR))
            self.view.show(self.prefix + "head", self.show_head)
        self._draw_dense()
        self._draw_guides()
        self.set_visible(True)
        self.sync()

    def reset(self) -> None:
        self.session = None
        self.selected = None
        self.clear()
        self.sync()

    def camera_hint(self) -> dict:
        return {"azimuth": 30.0, "elevation": 10.0}

    # -------------------------------------------------------------- drawing
    def _colors(self, strands: np.ndarray, keys: np.ndarray, uv: np.ndarray | None) -> np.ndarray:
        S, P, _ = strands.shape
        mode = self.color_mode
        if mode == "root UV" and uv is not None:
            c = np.stack([0.15 + 0.8 * uv[:, 0], 0.25 + 0.3 * (1 - uv[:, 1]), 0.15 + 0.8 * uv[:, 1]], 1)
            return np.repeat(c[:, None], P, 1)
        if mode in ("root UV", "strand"):
            return np.repeat(index_colors(int(keys.max()) + 1)[keys][:, None], P, 1)
        if mode == "curvature":
            k = curvature(strands)  # (S, P-2)
            k = np.concatenate([k[:, :1], k, k[:, -1:]], 1)
            return colormap(k, 0.0, max(float(np.percentile(k, 95)), 1.0))
        t = np.linspace(0, 1, P)[None, :, None]
        return np.broadcast_to(ROOT_COLOR * (1 - t) + TIP_COLOR * t, (S, P, 3))

    def preview_size(self) -> int:
        n = self.preview_count
        return min(n, self.dense_count) if self.model_mode else n

    def _draw_dense(self) -> None:
        t0 = time.perf_counter()
        strands, keys, uv = self.editor.preview(self.preview_size())
        P = strands.shape[1]
        pick = np.unique(np.linspace(0, P - 1, min(DRAW_POINTS, P)).round().astype(int))
        strands = strands[:, pick]
        self.view.set(
            self.prefix + "dense",
            polyline_lineset(strands, self._colors(strands, keys, uv)),
            Style("line", line_width=1.0),
        )
        self.drawn_strands = len(strands)
        self.last_update_s = time.perf_counter() - t0

    def _draw_guides(self) -> None:
        g = self.editor.guides_array()
        present = self.editor.guide_present()
        self.view.set(
            self.prefix + "guides",
            polyline_lineset(g[present], color=GUIDE_COLOR),
            Style("line", line_width=2.0),
        )
        self.view.show(self.prefix + "guides", self.show_guides)
        if self.selected is not None:
            sel = (
                g[self.selected : self.selected + 1] if self._pending_tip is None else self._pending_tip[None]
            )
            self.view.set(
                self.prefix + "selected",
                polyline_lineset(sel, color=SELECTED_COLOR),
                Style("line", line_width=4.0),
            )
        else:
            self.view.remove(self.prefix + "selected")

    def redraw(self) -> None:
        if self.session is not None:
            self._draw_dense()
            self._draw_guides()
            self.sync()

    # ----------------------------------------------------------------- display API
    def _recolor(self) -> None:
        if self.session is not None:
            self._draw_dense()

    def set_preview_count(self, n: int) -> None:
        """Draw at most ``n`` strands (a fixed subset)."""
        self.preview_count = max(1, int(n))
        if self.session is not None:
            self._draw_dense()
        self.sync()

    def full_density(self) -> None:
        """Draw every strand (the dense strand count with a model)."""
        if self.session is not None:
            self.set_preview_count(self.dense_count if self.model_mode else self.editor.num_strands)

    set_show_head = ui.show_setter("show_head", "head")
    set_show_guides = ui.show_setter("show_guides", "guides")

    # -------------------------------------------------------------------- editing API
    def select_guide(self, guide: int | None) -> None:
        if guide is not None and not 0 <= guide < self.editor.num_guides:
            raise InputError(f"guide {guide} does not exist (0..{self.editor.num_guides - 1})")
        self.selected = guide
        self._pending_tip = None
        self._draw_guides()
        self.sync()

    def guide_screen_points(self, guide: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Projected guide points: ``(G, P, 2)`` pixels and ``(G, P)`` depths (-1 for absent guides)."""
        g = self.editor.guides_array()
        xy, z = self.view.project(g.reshape(-1, 3))
        xy, z = xy.reshape(len(g), -1, 2), z.reshape(len(g), -1)
        z[~self.editor.guide_present()] = -1.0
        if guide is not None:
            return xy[guide : guide + 1], z[guide : guide + 1]
        return xy, z

    def pick(self, x: float, y: float, max_pixels: float = 12.0) -> int | None:
        """Select the guide drawn nearest to view pixel ``(x, y)`` (None: nothing close)."""
        from latent4d.viewer.hair_edit import nearest_guide

        xy, z = self.guide_screen_points()
        g = nearest_guide(xy, z, x, y, max_pixels)
        self.select_guide(g)
        self.app.set_status(f"guide {g} selected" if g is not None else "no guide under the cursor")
        return g

    def _need_selection(self) -> int:
        if self.selected is None:
            raise InputError("select a guide strand first (Ctrl+click on a blue guide)")
        return self.selected

    def edit(self, op: str, merge: bool = False, **kw) -> None:
        """Edit the selected guide (``op`` in move_tip / cut / extend / curl, see ``latent4d.hair.edit``);
        with a model the edit is projected to the style space and the hair re-densified by the model."""
        g = self._need_selection()
        t0 = time.perf_counter()
        self.editor.edit(g, op, radius=self.brush_radius, merge=merge, **kw)
        self._pending_tip = None
        self._after_latent_change(keep_sliders=False)
        self.last_edit_s = time.perf_counter() - t0
        self.app.set_status(f"{op}: {self.drawn_strands} strands updated in {self.last_edit_s * 1000:.0f} ms")

    def cut(self, fraction: float | None = None) -> None:
        self.edit("cut", fraction=self.cut_fraction if fraction is None else fraction)

    def extend(self, metres: float | None = None) -> None:
        self.edit("extend", metres=self.extend_metres if metres is None else metres)

    def curl(self, amplitude: float | None = None, turns: float | None = None) -> None:
        self.edit(
            "curl",
            amplitude=self.curl_amplitude if amplitude is None else amplitude,
            turns=self.curl_turns if turns is None else turns,
        )

    def move_tip(self, target) -> None:
        self.edit("move_tip", target=np.asarray(target, np.float64))

    def tip_target(self, x: float, y: float) -> np.ndarray:
        """The point under view pixel ``(x, y)`` in the plane through the selected tip facing the camera."""
        g = self._need_selection()
        return self.view.unproject(x, y, self.editor.guides_array()[g, -1])

    def preview_tip(self, x: float, y: float) -> None:
        """While dragging: draw the selected guide with its tip at ``(x, y)`` (no edit yet)."""
        from latent4d.hair.edit import move_tip

        g = self._need_selection()
        self._pending_tip = move_tip(self.editor.guides_array()[g], self.tip_target(x, y))
        self._draw_guides()

    def drag_tip(self, x: float, y: float) -> None:
        """Move the selected guide's tip under view pixel ``(x, y)`` (one edit)."""
        self.edit("move_tip", target=self.tip_target(x, y))

    def on_key(self, key, ctrl: bool) -> bool:
        """Ctrl+Z undo, Ctrl+Y redo."""
        g = ui.gui()
        if ctrl and key in (g.KeyName.Z, g.KeyName.Y):
            self.app.call_ui(self.undo if key == g.KeyName.Z else self.redo)
            return True
        return False

    def on_mouse(self, kind: str, x: float, y: float, ctrl: bool) -> bool:
        """Ctrl+click picks a guide strand; Ctrl+drag moves its tip (one edit on release)."""
        drag = self._drag
        if kind == "up" and drag is not None:
            self._drag = None
            if drag[1]:  # the tip moved: commit the edit
                self.app.call_ui(self.drag_tip, *drag[2])
            return True
        if not ctrl:
            return False
        if kind == "down":
            g = self.app.call_ui(self.pick, x, y)
            self._drag = (g, False, (x, y)) if g is not None else None
            return True
        if kind == "drag" and drag is not None:
            self.app.call_ui(self.preview_tip, x, y)
            self._drag = (drag[0], True, (x, y))
            return True
        return False

    def undo(self) -> bool:
        ok = self.editor.undo()
        if ok:
            self._after_latent_change(keep_sliders=False)
        return ok

    def redo(self) -> bool:
        ok = self.editor.redo()
        if ok:
            self._after_latent_change(keep_sliders=False)
        return ok

    def save(self, path) -> Path:
        """Write the edited hair at full density (format by extension; atomic)."""
        from latent4d.hair.formats import write_hair

        path = Path(path)
        write_hair(path, self.hairstyle)
        self.app.set_status(f"saved {path}")
        return path

    def _after_latent_change(self, keep_sliders: bool) -> None:
        if not keep_sliders:
            self.sliders = {}
        self.redraw()

    # -------------------------------------------------------------- model API
    def _require_style(self, what: str = "this") -> None:
        if not self.has_style_model:
            raise InputError(self._model_reason)

    def _require_model_session(self):
        self._require_style()
        if not self.model_mode:
            raise InputError(
                "the open hair comes from a file: press Encode (or sample a style) to edit it with the model"
            )
        return self.session

    def sample(self, seed: int, temperature: float | None = None) -> None:
        """A new hairstyle from the model: style latent ~ N(0, temperature^2 I) with ``seed``."""
        from latent4d.viewer.hair_model import ModelSession

        self._require_style()
        t = self.temperature if temperature is None else float(temperature)
        z = self.pipeline.sample_latents(1, int(seed), t)[0]
        self._set_session(
            ModelSession(self.pipeline, z, self.dense_count, self.project_edits),
            f"{self.run_path.name if self.run_path else 'model'}: seed {int(seed)}",
        )
        self.seed = int(seed)
        self.app.set_status(f"sampled seed {int(seed)}")

    def encode_current(self) -> None:
        """Encode the open hair file into the model (then edit it with the model)."""
        from latent4d.viewer.hair_model import ModelSession

        self._require_style()
        if self.session is None:
            raise InputError("open a hair file first")
        src = self.session.hairstyle() if not self.model_mode else self.session.hairstyle(self.dense_count)
        self._set_session(
            ModelSession(self.pipeline, src, self.dense_count, self.project_edits), f"{self.name} (encoded)"
        )

    def set_style_slot(self, slot: str) -> None:
        """Remember the current style as ``A`` or ``B`` for blending."""
        if slot not in ("A", "B"):
            raise InputError(f"style slot must be 'A' or 'B', got {slot!r}")
        self.slots[slot] = self._require_model_session().latent
        self.sync()

    def set_blend(self, t: float) -> None:
        """Show the slerp of styles A and B at ``t`` in [0, 1]."""
        from latent4d.hair.pipeline import slerp

        ses = self._require_model_session()
        if "A" not in self.slots or "B" not in self.slots:
            raise InputError("set styles A and B first (Set A / Set B)")
        t = float(np.clip(t, 0.0, 1.0))
        ses.slide("blend", t, lambda base: slerp(self.slots["A"], self.slots["B"], t))
        self.sliders["blend"] = t
        self._after_latent_change(keep_sliders=True)

    def set_attribute(self, name: str, value: float) -> None:
        """Move along the attribute direction ``name`` (length / curliness / volume), in training stds."""
        ses = self._require_model_session()
        if not self.pipeline.style_vae.has_attributes():
            raise InputError("this hairstyle-VAE has no attribute model (trained without labels)")
        try:
            d = self.pipeline.attribute_direction(name)
        except KeyError as e:
            raise InputError(str(e.args[0])) from e
        v = float(value)
        ses.slide(f"attr:{name}", v, lambda base: base + v * d)
        self.sliders[f"attr_{name}"] = v
        self._after_latent_change(keep_sliders=True)

    def principal_directions(self) -> np.ndarray:
        from latent4d.viewer.hair_model import principal_directions

        self._require_style()
        if self._pcs is None:
            self._pcs = principal_directions(self.pipeline)
        return self._pcs

    def set_principal(self, i: int, value: float) -> None:
        """Move along the ``i``-th main direction of the style latent space (in standard deviations)."""
        import torch

        ses = self._require_model_session()
        pcs = self.principal_directions()
        if not 0 <= i < len(pcs):
            raise InputError(f"principal direction {i} does not exist (0..{len(pcs) - 1})")
        d = torch.from_numpy(pcs[i])
        v = float(value)
        ses.slide(f"pc{i}", v, lambda base: base + v * d)
        self.sliders[f"pc{i}"] = v
        self._after_latent_change(keep_sliders=True)

    def set_dense_count(self, n: int) -> None:
        """Dense strands made by the model (full density and saved hair)."""
        ses = self._require_model_session()
        self.dense_count = max(1, int(n))
        ses.set_dense_count(self.dense_count)
        self._draw_dense()
        self.sync()

    def set_project(self, on: bool) -> None:
        self.project_edits = bool(on)
        if self.model_mode:
            self.session.project = self.project_edits
        self.sync()

    # ----------------------------------------------------------------------- widgets
    def build(self, em: float):
        root = self.new_root(em)
        self._build_display(root, em)
        self._build_edit(root, em)
        self._build_model(root, em)
        self.root = root
        root.visible = True
        self.sync()
        return root

    def _build_display(self, root, em: float) -> None:
        """Colours, preview size, head and guides."""
        g = ui.gui()
        w = self.widgets
        self.add_label(root, "info", "no hairstyle open")
        self.add_color_combo(
            root, em, "Colour", "strand colours: natural, root position on the scalp, per strand, curvature"
        )
        w["preview"] = ui.number(
            self.preview_count,
            lambda v: self._ui(self.set_preview_count, int(v)),
            lo=1,
            hi=10_000_000,
            tooltip="strands drawn (a fixed subset)",
        )
        w["full"] = ui.button("Full", lambda: self._ui(self.full_density), "draw every strand")
        root.add_child(ui.hrow(em, g.Label("Preview"), w["preview"], w["full"]))
        head = self.flag_checkbox("head", "Head", "show_head", self.set_show_head)
        guides = self.flag_checkbox("guides", "Guides", "show_guides", self.set_show_guides)
        root.add_child(ui.hrow(em, head, guides))

    def _build_edit(self, root, em: float) -> None:
        """Guide selection, the brush, cut / extend / curl, undo / redo, save."""
        g = ui.gui()
        w = self.widgets
        root.add_child(g.Label("Edit: Ctrl+click a guide, Ctrl+drag its tip"))
        self.add_label(root, "selected", "no guide selected")
        w["brush"] = self._attr_slider(
            "brush_radius", 0.0, 10.0, 100, "also edit the guides within this radius (cm)"
        )
        root.add_child(ui.label_row("Brush cm", w["brush"], em))
        for op, label, key, attr, (lo, hi), scale, tooltip in EDIT_TOOLS:
            w[key] = self._attr_slider(attr, lo, hi, scale, tooltip)
            w[op] = ui.button(label, lambda op=op: self._ui(getattr(self, op)))
            root.add_child(ui.hrow(em, w[op], w[key]))
        w["undo"] = ui.button("Undo", lambda: self._ui(self.undo), "Ctrl+Z")
        w["redo"] = ui.button("Redo", lambda: self._ui(self.redo), "Ctrl+Y")
        w["save"] = ui.button("Save...", self._on_save, "write the edited hair (.data/.hair/.ply/.npz/.usd*)")
        root.add_child(ui.hrow(em, w["undo"], w["redo"], w["save"]))

    def _build_model(self, root, em: float) -> None:
        """Controls of a trained run: sample, encode, blend A-B, attributes, principal directions."""
        g = ui.gui()
        w = self.widgets
        root.add_child(g.Label("Model"))
        self.add_label(root, "model", "no trained hair run")
        w["seed"] = ui.number(0, lambda v: None, lo=0, hi=2**31 - 1, tooltip="seed of the style latent")
        w["sample"] = ui.button("Sample", lambda: self._ui(self.sample, int(w["seed"].int_value)))
        w["encode"] = ui.button(
            "Encode", lambda: self._ui(self.encode_current), "encode the open hair file into the model"
        )
        root.add_child(ui.hrow(em, g.Label("Seed"), w["seed"], w["sample"], w["encode"]))
        w["set_a"] = ui.button(
            "Set A", lambda: self._ui(self.set_style_slot, "A"), "remember this style as A"
        )
        w["set_b"] = ui.button(
            "Set B", lambda: self._ui(self.set_style_slot, "B"), "remember this style as B"
        )
        w["project"] = ui.checkbox(
            "Project edits",
            self.project_edits,
            lambda on: self._ui(self.set_project, on),
            tooltip="project guide edits onto the style space (GroomGen); off: keep them exact",
        )
        root.add_child(ui.hrow(em, w["set_a"], w["set_b"], w["project"]))
        w["blend"] = ui.slider(0.0, 1.0, 0.0, lambda v: self._ui(self.set_blend, v))
        root.add_child(ui.label_row("A - B", w["blend"], em))
        for name in ("length", "curliness", "volume"):
            w[f"attr_{name}"] = ui.slider(
                -3.0, 3.0, 0.0, lambda v, n=name: self._ui(self.set_attribute, n, v)
            )
            root.add_child(ui.label_row(name.capitalize(), w[f"attr_{name}"], em))
        for i in range(3):
            w[f"pc{i}"] = ui.slider(-3.0, 3.0, 0.0, lambda v, i=i: self._ui(self.set_principal, i, v))
            root.add_child(ui.label_row(f"PC {i + 1}", w[f"pc{i}"], em))
        w["dense_count"] = ui.number(
            self.dense_count, lambda v: self._ui(self.set_dense_count, int(v)), lo=100, hi=1_000_000
        )
        root.add_child(ui.label_row("Dense strands", w["dense_count"], em))

    def _attr_slider(self, attr: str, lo: float, hi: float, scale: float, tooltip: str):
        """A slider from ``lo`` to ``hi`` showing the panel attribute ``attr`` times ``scale`` (metres
        as cm: 100); moving it sets the attribute to the slider's value over ``scale``."""
        return ui.slider(
            lo,
            hi,
            getattr(self, attr) * scale,
            lambda v: self._ui(setattr, self, attr, v / scale),
            tooltip=tooltip,
        )

    def _ui(self, fn, *args):
        self.app.call_ui(fn, *args)

    def _on_save(self) -> None:
        self.app.ask_path(
            "Save hair",
            save=True,
            filters=[
                (".data", "USC-HairSalon"),
                (".hair", "Cem Yuksel"),
                (".ply", "PLY polylines"),
                (".npz", "NumPy"),
                (".usdc", "USD (Blender, Houdini, Unreal)"),
            ],
            on_done=lambda p: self._ui(self.save, p),
        )

    def _update_model_controls(self) -> None:
        style = self.has_style_model
        reason = self._model_reason
        for name in MODEL_CONTROLS:
            self.enable(name, style, reason)
        if not style:
            return
        model = self.model_mode
        file_reason = "the open hair comes from a file: Sample a style or press Encode first"
        for name in LATENT_CONTROLS:
            self.enable(name, model, file_reason)
        if model:
            self.enable(
                "blend", "A" in self.slots and "B" in self.slots, "set styles A and B first (Set A / Set B)"
            )
            if not self.pipeline.style_vae.has_attributes():
                for name in ("attr_length", "attr_curliness", "attr_volume"):
                    self.enable(
                        name, False, "this hairstyle-VAE has no attribute model (trained without labels)"
                    )
        self.enable("encode", self.session is not None and not model, "open a hair file to encode it")

    def sync(self) -> None:
        self._update_model_controls()
        w = self.widgets
        has = self.session is not None
        for name in ("cut", "extend", "curl"):
            self.enable(name, has and self.selected is not None, "select a guide first (Ctrl+click)")
        self.enable("undo", has and self.editor.can_undo, "nothing to undo")
        self.enable("redo", has and self.editor.can_redo, "nothing to redo")
        self.enable("save", has, "no hairstyle open")
        if not w:
            return
        if has:
            ed = self.editor
            n = self.dense_count if self.model_mode else ed.num_strands
            w["info"].text = f"{self.name}: {n} strands, {ed.num_guides} guides" + (
                "" if self.on_head else " (not on the head)"
            )
        else:
            w["info"].text = "no hairstyle open"
        w["model"].text = (
            f"run {self.run_path.name}"
            if self.has_style_model
            else (
                "no trained hair run"
                if self.pipeline is None and self.run_path is None
                else "model unavailable (see tooltips)"
            )
        )
        w["color"].selected_index = COLOR_MODES.index(self.color_mode)
        w["preview"].set_value(self.preview_count)
        w["head"].checked = self.show_head
        w["guides"].checked = self.show_guides
        w["project"].checked = self.project_edits
        w["dense_count"].set_value(self.dense_count)
        w["selected"].text = (
            "no guide selected" if self.selected is None else f"guide {self.selected} selected"
        )
        for key in ("blend", "attr_length", "attr_curliness", "attr_volume", "pc0", "pc1", "pc2"):
            w[key].double_value = float(self.sliders.get(key, 0.0))
