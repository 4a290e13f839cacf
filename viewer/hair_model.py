"""Model-backed hair editing for the hair panel: a trained hair run (``latent4d.hair.pipeline``).

:class:`ModelSession` exposes the same small interface as the file-only
:class:`~latent4d.viewer.hair_edit.GuideEditor` (guides, a dense preview, edits by guide index,
undo / redo, the full hairstyle), but every state is a style latent of the hairstyle-VAE:

- sampling, A/B blending (slerp), attribute directions and principal directions move the latent;
- local guide edits (cut / extend / curl / move tip, with the brush) are the operations of
  :mod:`latent4d.hair.edit`, the same as the file-only editor's, applied through ``HairEditor``: the
  edited guides are re-encoded by the strand-VAE and projected back to the style latent space
  (GroomGen), then the dense hair is re-densified from the guide map by the model (hybrid densification);
- undo / redo are the pipeline editor's.

A slider (attribute, principal direction, blend) that moves several times in a row replaces its
own previous step instead of stacking one undo step per tick.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from latent4d.errors import ConfigError, InputError


def limit_torch_threads() -> int:
    """Use half the cores for torch (at least one; ``LATENT4D_VIEWER_THREADS`` overrides).

    The viewer shares the CPU with the software rasteriser; with every core busy, torch's OpenMP
    threads spin against it and a 2-second model edit took over a minute on 2 loaded cores.
    """
    import torch

    n = int(os.environ.get("LATENT4D_VIEWER_THREADS", "0")) or max(1, (os.cpu_count() or 2) // 2)
    torch.set_num_threads(n)
    return n


def load_pipeline(path: Path):
    """``(pipeline, reason)``: the run's HairPipeline, or None and why the model controls are off.

    A run without exported networks opens with the model controls disabled (``reason`` says why);
    damaged networks (garbage config.json, empty / truncated / pickled weights) are an
    :class:`InputError` naming the folder. The pipeline loads its networks through
    :func:`latent4d.trust.load_network` (safetensors only, nothing executed from the folder).
    """
    limit_torch_threads()
    try:
        from latent4d.hair.pipeline import HairPipeline
    except ImportError as e:  # pragma: no cover - older hair package
        return None, f"{path}: this latent4d has no hair pipeline ({e})"
    try:
        pipe = HairPipeline.from_pretrained(path)
    except ConfigError as e:  # no exported networks: the model controls are off
        return None, f"{path}: {e}"
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - diffusers / torch raise many kinds for a damaged folder
        raise InputError(
            f"{path}: cannot load the hair model ({type(e).__name__}: {str(e).strip()[:300]}); the "
            "run folder is damaged: re-export it with `latent4d export run=<run>`"
        ) from None
    if pipe.style_vae is None:
        return pipe, (
            f"{path}: only a strand-VAE here; sampling, blending and latent sliders need a hairstyle-VAE "
            "run (`latent4d train experiment=hair/style_vae`)"
        )
    return pipe, ""


def principal_directions(pipe, k: int = 3, n: int | None = None, seed: int = 1234) -> np.ndarray:
    """``k`` main directions ``(k, D)`` of the style latent space, in units of one standard deviation.

    The prior is isotropic, so the directions come from what the decoder does: ``n`` prior samples
    are decoded to guide maps, the maps' principal components are computed, and each component's
    (standardised) score is regressed linearly on the latents (minimum-norm least squares).
    """
    import torch

    from latent4d.hair.guides import gather_map

    D = pipe.style_dim
    n = int(n or max(2 * D, 64))
    z = pipe.sample_latents(n, seed)
    with torch.no_grad():
        maps = pipe.guide_map(z)
        vals = gather_map(maps, pipe.grid).reshape(n, -1).double()
    xc = vals - vals.mean(0)
    _, s, vt = torch.linalg.svd(xc, full_matrices=False)
    scores = xc @ vt[:k].T  # (n, k)
    scores = scores / scores.std(0).clamp_min(1e-12)
    zc = (z - z.mean(0)).double()
    d = torch.linalg.lstsq(zc, scores, driver="gelsd").solution  # (D, k)
    return d.T.float().numpy()


class ModelSession:
    """Hair editing through a HairPipeline (see module docstring).

    Args:
        pipe: the HairPipeline (with a hairstyle-VAE).
        start: a style latent (D,), a Hairstyle (encoded) or a HairResult.
        strands: dense strand count (full density, what ``hairstyle()`` returns and saves).
        project: project local edits onto the style latent space (else the edited guide map is kept).
        steps, lr: projection steps and Adam learning rate. The interactive default (30 steps at 0.1)
            lands within a fraction of a millimetre of a converged 200-step projection (``latent4d
            bench viewer`` reports the gap) at half the cost of the pipeline's 80 steps at 0.05.
    """

    def __init__(
        self, pipe, start, strands: int = 10000, project: bool = True, steps: int = 30, lr: float = 0.1
    ):
        self.pipe = pipe
        self.editor = pipe.editor(start, strands=strands)
        self.head = pipe.head
        self.project = project
        self.steps = int(steps)
        self.lr = float(lr)
        self._slider: tuple[str, object, int] | None = None
        self._pcs: np.ndarray | None = None
        self.source = None

    # -------------------------------------------------------------- common interface
    @property
    def num_strands(self) -> int:
        return int(self.editor.strands)

    @property
    def num_guides(self) -> int:
        return int(self.pipe.grid.mask.sum())

    @property
    def latent(self):
        return self.editor.latent

    @property
    def can_undo(self) -> bool:
        return self.editor.can_undo()

    @property
    def can_redo(self) -> bool:
        return self.editor.can_redo()

    @property
    def edited(self) -> bool:
        return self.editor.can_undo()

    def guides_array(self) -> np.ndarray:
        """(V, P, 3) guides in texel order (absent texels: the root repeated)."""
        hs = self.editor.guides()
        P = int(hs.counts.max())
        out = np.repeat(hs.roots[:, None], P, 1).astype(np.float32)
        full = hs.counts == P
        out[full] = hs.points.reshape(-1, 3)[_full_rows(hs.offsets, hs.counts, P)].reshape(-1, P, 3)
        return out

    def guide_present(self) -> np.ndarray:
        return ~self.editor.guides().bald

    def preview(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(strands (S, P, 3), keys (S,), root_uv (S, 2) or None)`` of ``n`` dense strands."""
        hs = self.editor.dense(int(n))
        strands, idx = hs.hair_strands(None)
        uv = None if hs.root_uv is None else hs.root_uv[idx]
        return strands, idx, uv

    def hairstyle(self, n: int | None = None):
        return self.editor.dense(n)

    def set_dense_count(self, n: int) -> None:
        if n < 1:
            raise InputError(f"dense strand count must be positive, got {n}")
        self.editor.strands = int(n)

    def undo(self) -> bool:
        ok = self.editor.can_undo()
        self.editor.undo()
        self._slider = None
        return ok

    def redo(self) -> bool:
        ok = self.editor.can_redo()
        self.editor.redo()
        self._slider = None
        return ok

    def edit(self, guide: int, op: str, radius: float = 0.0, merge: bool = False, **kw) -> np.ndarray:
        """``op`` on ``guide`` and its neighbours within ``radius`` (the file editor's operations and
        brush, :func:`latent4d.hair.edit.brush_edit`), projected onto the style space when
        ``project``; one undo step (``merge`` is not used: every model edit is its own step)."""
        sel = self.editor.edit(
            int(guide), op, radius, project=self.project, steps=self.steps, lr=self.lr, **kw
        )
        self._slider = None
        return sel

    # -------------------------------------------------------------- latent moves
    def set_latent(self, z, label: str) -> None:
        self.editor.set_latent(z, label)
        self._slider = None

    def slide(self, key: str, value: float, direction_fn) -> None:
        """Move along a direction: latent = (latent before this slider's run of moves) + value * direction.

        ``direction_fn(base) -> latent`` gets the base latent and returns the new one.
        """
        ed = self.editor
        if self._slider is not None and self._slider[0] == key and len(ed.history) == self._slider[2]:
            base = self._slider[1]
            ed.undo()
        else:
            base = ed.latent
        z = direction_fn(base)
        ed.set_latent(z, f"{key} {value:+.2f}")
        self._slider = (key, base, len(ed.history))

    def principal(self) -> np.ndarray:
        if self._pcs is None:
            self._pcs = principal_directions(self.pipe)
        return self._pcs


def _full_rows(offsets: np.ndarray, counts: np.ndarray, P: int) -> np.ndarray:
    starts = offsets[:-1][counts == P]
    return (starts[:, None] + np.arange(P)[None]).ravel()
