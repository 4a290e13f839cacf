"""One set of hair edit operations (latent4d.hair.edit), used by the viewer's file-only editor and by the
model-backed HairEditor alike."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

from latent4d.errors import InputError
from latent4d.hair import edit
from latent4d.hair.strands import Hairstyle


def _strand(n=40, length=0.3):
    t = np.linspace(0, 1, n)
    return np.stack([0.05 * np.sin(3 * t), 1.8 - length * t, 0.02 * t], 1).astype(np.float32)


def test_operations_keep_the_root_and_the_point_count():
    x = _strand()
    L = edit.arc_lengths(x)[-1]
    assert edit.arc_lengths(edit.cut(x, 0.5))[-1] == pytest.approx(0.5 * L, rel=1e-3)
    assert edit.arc_lengths(edit.cut(x, None, length=0.1))[-1] == pytest.approx(0.1, rel=1e-3)
    assert edit.arc_lengths(edit.cut(x, 0.0))[-1] == pytest.approx(0.02 * L, rel=1e-3)  # at least 2 %
    assert edit.arc_lengths(edit.extend(x, 0.1))[-1] == pytest.approx(L + 0.1, rel=0.02)
    assert edit.arc_lengths(edit.extend(x, -0.1))[-1] == pytest.approx(L - 0.1, rel=0.02)  # negative: cut
    assert edit.extend(x, 0.1)[-1, 1] < x[-1, 1] - 0.05  # droops
    cu = edit.curl(x, 0.01, 4)
    assert np.abs(cu - x).max() == pytest.approx(0.01, rel=0.3) and np.allclose(cu[0], x[0])
    tgt = x[-1] + np.array([0.05, 0.02, 0.0])
    assert np.allclose(edit.move_tip(x, tgt)[-1], tgt, atol=1e-6)
    for op, kw in [("cut", {}), ("extend", {}), ("curl", {}), ("move_tip", {"target": tgt})]:
        y = edit.apply_op(x, op, **kw)
        assert y.shape == x.shape and np.allclose(y[0], x[0]) and np.isfinite(y).all()
    with pytest.raises(InputError, match="unknown guide edit"):
        edit.apply_op(x, "twist")
    with pytest.raises(InputError, match="target"):
        edit.apply_op(x, "move_tip")


def test_defaults_are_the_ones_documented():
    x = _strand()
    assert np.array_equal(edit.apply_op(x, "cut"), edit.cut(x, 0.7))
    assert np.array_equal(edit.apply_op(x, "curl"), edit.curl(x, 0.01, 4.0))
    assert np.array_equal(edit.apply_op(x, "extend"), edit.extend(x, 0.05, 0.6))


def test_zero_length_strands_stay_finite():
    """Bald texels of a guide map decode to a root repeated: every operation must stay finite."""
    bald = np.repeat(_strand()[:1], 40, 0)
    for op, kw in [("cut", {}), ("extend", {}), ("curl", {}), ("move_tip", {"target": bald[0] + 0.05})]:
        y = edit.apply_op(bald, op, **kw)
        assert np.isfinite(y).all() and np.allclose(y[0], bald[0]), op
    assert np.allclose(edit.move_tip(bald, bald[0] + 0.05)[-1], bald[0] + 0.05, atol=1e-6)
    assert edit.arc_lengths(edit.extend(bald, 0.1))[-1] == pytest.approx(0.1, rel=0.02)


def test_brush_weights_neighbours():
    roots = np.array([[0, 1.8, 0], [0.01, 1.8, 0], [0.03, 1.8, 0], [0.2, 1.8, 0]], np.float64)
    guides = np.stack([r + np.linspace(0, 1, 20)[:, None] * [0, -0.3, 0] for r in roots]).astype(np.float32)
    sel, w = edit.brush(roots, 0, 0.04)
    assert sel.tolist() == [0, 1, 2] and w[0] == 1.0 and 1.0 > w[1] > w[2] > 0
    sel, new = edit.brush_edit(guides, 0, "cut", radius=0.04, fraction=0.5)
    L = edit.arc_lengths(new)[:, -1]
    assert L[0] == pytest.approx(0.15, rel=1e-3) and 0.15 < L[1] < L[2] < 0.3  # full strength at the centre
    sel, new = edit.brush_edit(guides, 0, "move_tip", radius=0.0, target=guides[0, -1] + [0.1, 0, 0])
    assert sel.tolist() == [0] and np.allclose(new[0, -1], guides[0, -1] + [0.1, 0, 0], atol=1e-6)
    with pytest.raises(InputError, match="guide 9 does not exist"):
        edit.brush(roots, 9, 0.0)


def test_model_editor_uses_the_shared_operations(style_run):
    """HairEditor.edit hands set_guides exactly what brush_edit makes of the decoded guides, and its
    cut / extend / curl / move_tip are apply_op on each guide."""
    from latent4d.hair.pipeline import HairPipeline

    pipe = HairPipeline.from_pretrained(style_run[0])
    ed = pipe.editor(pipe.sample_latents(1, seed=2)[0], strands=100)
    world = ed._guide_world()
    with mock.patch.object(ed, "set_guides") as sg:
        sel = ed.edit(40, "curl", radius=0.02, amplitude=0.02, turns=2.0, steps=3)
        want_sel, want = edit.brush_edit(world, 40, "curl", radius=0.02, amplitude=0.02, turns=2.0)
        (got_sel, got), kw = sg.call_args
        assert np.array_equal(sel, want_sel) and np.array_equal(got_sel, want_sel) and np.allclose(got, want)
        assert kw == {"label": f"curl {len(sel)}", "steps": 3}
        ed.extend([3, 4], 0.07, project=False)
        (idx, got), kw = sg.call_args
        assert idx.tolist() == [3, 4] and np.allclose(got[1], edit.extend(world[4], 0.07))
        assert kw == {"label": "extend 2", "project": False}
        ed.move_tip(5, world[5, -1] + 0.01)
        assert np.allclose(sg.call_args[0][1][0], edit.move_tip(world[5], world[5, -1] + 0.01))
    from latent4d.viewer.hair_model import ModelSession

    session = ModelSession(pipe, ed.latent, strands=100)
    assert isinstance(session, edit.EditSession)
    with mock.patch.object(session.editor, "edit", return_value=np.array([7])) as e:
        assert session.edit(7, "extend", radius=0.01, metres=0.02).tolist() == [7]
    assert e.call_args == mock.call(7, "extend", 0.01, project=True, steps=session.steps, lr=session.lr, metres=0.02)


def test_the_file_editor_is_an_edit_session_with_the_same_operations():
    from latent4d.viewer.hair_edit import GuideEditor

    hs = Hairstyle.from_strands(np.stack([_strand() + np.float32([0.01 * i, 0, 0]) for i in range(30)]))
    ge = GuideEditor(hs, num_guides=8, num_points=40)
    assert isinstance(ge, edit.EditSession)
    sel = ge.edit(0, "cut", fraction=0.5)  # no head, no brush: exactly the shared operation
    assert sel.tolist() == [0] and np.allclose(ge.guides[0], edit.cut(ge.guides0[0], 0.5), atol=1e-6)
