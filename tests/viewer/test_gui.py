"""The real viewer window (Xvfb), driven through its API: what the screenshots show after each action."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import scenario

pytestmark = pytest.mark.gui


def test_hair_file_colours_and_picking(gui_results):
    r = scenario(gui_results, "hair")
    assert r["loaded"] and r["strands"] == 3000 and r["guides"] == 128
    assert r["natural_hair_px"] > 5000, "the hair is drawn in natural colours"
    # colouring by strand replaces the brown palette by saturated per-strand colours
    assert r["strand_mode_hair_px"] < r["natural_hair_px"] / 3
    assert r["strand_mode_saturation"] > r["natural_saturation"] + 20
    # clicking where a guide is drawn selects it; clicking an empty corner selects nothing
    assert r["picked"] == r["pick_target"]
    assert r["pick_empty"] is None


def test_hair_edit_extend_undo_redo(gui_results):
    r = scenario(gui_results, "hair")
    assert r["extended_px"] > r["before_px"] + 300, "extending guides grows the hair on screen"
    assert r["undo_changed"] == 0 and r["undo_px"] == r["before_px"], "undo restores the exact picture"
    assert r["redo_changed"] == 0 and r["redo_px"] == r["extended_px"], "redo restores the edit"
    assert r["cut_px"] < r["extended_px"] - 300, "cutting shrinks it again"
    assert r["curl_changed"] > 500
    assert r["extend_update_s"] > 0


def test_hair_drag_tip_and_save(gui_results):
    r = scenario(gui_results, "hair")
    # the dragged tip lands under the cursor (in the plane facing the camera)
    assert np.allclose(r["drag_tip"], r["drag_target"], atol=2.0)
    assert r["can_undo"]
    assert r["saved_strands"] == 3000
    assert r["saved_mean_length"] != pytest.approx(r["original_mean_length"], abs=1e-5)
    assert r["leftover_tmp"] == [], "saving and screenshots leave no temporary files"


def test_hair_model_controls(gui_results):
    r = scenario(gui_results, "hair_model")
    assert r["loaded"] and r["model_mode"]
    assert r["enabled"] == {
        "sample": True,
        "attr_length": True,
        "pc0": True,
        "blend": False,
        "dense_count": True,
    }
    assert "A and B" in r["blend_reason"]
    assert r["seed_changed"] > 2000, "another seed gives another hairstyle"
    assert r["same_seed_changed"] == 0, "the same seed gives the same hairstyle"
    assert r["blend_enabled"]
    assert r["blend0_vs_seed0"] == 0 and r["blend1_vs_seed7"] == 0, "the A/B slider ends on A and on B"
    assert r["history_after_blend"] == 2, "one undo step for a whole slider drag"
    assert r["attribute_changed"] > 1000 and r["pc_changed"] > 1000
    assert r["model_edit_changed"] > 200, "a guide edit re-densifies the hair through the model"
    assert r["model_undo_changed"] == 0
    assert r["drawn_after_full"] == 2500 and r["saved_strands"] == 2500


def test_motion_playback(gui_results):
    r = scenario(gui_results, "motion")
    assert r["loaded"] and r["frames"] == 6
    assert r["frame_changed"] > 1000 and r["same_frame_changed"] == 0
    assert r["points_px"] > 300 and r["points_hidden_px"] == 0, (
        "input points drawn beside, and hidden on demand"
    )
    assert r["corr_saturation"] > r["plain_saturation"] + 30, "correspondence colours vs plain grey"
    assert r["playing"] and r["frames_played"] >= 2, "playing advances frames"
    assert r["frame_stays_paused"]


def test_objects_rgbd_and_meshes(gui_results):
    r = scenario(gui_results, "objects")
    assert r["loaded_frame"] and r["frame_drawn_px"] > 2000
    assert r["red_px"] > 300 and r["blue_px"] > 300, "observed points keep the colour image's colours"
    assert r["boxes"] == ["objects/obsbox1", "objects/obsbox2"], "one box per instance of the mask"
    assert r["instance_changed"] > 1000
    assert r["loaded_mesh"] and r["meshes"] == 1 and r["mesh_changed"] > 1000


def test_objects_model_codes_and_live_reconstruction(gui_results):
    r = scenario(gui_results, "objects_model")
    assert (
        "objects run" in r["disabled_before"]["reconstruct"]
        and "objects run" in r["disabled_before"]["shape0"]
    )
    assert r["loaded_run"] and r["code_mesh"]
    assert r["shape_slider_changed"] > 300 and r["object_changed"] > 300, (
        "code sliders change the decoded object"
    )
    assert r["reconstruct_enabled"]
    assert r["returned_while_running"], (
        "Reconstruct returns at once: the optimisation runs on a worker thread"
    )
    assert r["ticks_while_running"] >= 3, "the event loop kept running during the optimisation"
    assert r["live_updates"] >= 1, "per-iteration states were drawn on the main thread"
    assert r["iterations_done"] == {"1": 25, "2": 25}
    assert len(r["statuses"]) == 2 and all(s in ("ok", "diverged") for s in r["statuses"])
    assert len(r["recon_shapes"]) == r["statuses"].count("ok") and r["recon_changed"] > 300
    assert not r["stopped_running"] and 0 < r["stopped_iterations"] < 2000, "Stop ends the optimisation early"


def test_bad_input_keeps_the_scene(gui_results):
    r = scenario(gui_results, "errors")
    assert not r["corrupt_ok"] and "corrupt.data" in r["corrupt_error"]
    assert r["dialog"] == r["corrupt_error"], "the error dialog names the file"
    assert r["names_kept"] and r["corrupt_changed"] == 0, "what was open stays as it was"
    assert not r["missing_ok"] and "does_not_exist.hair" in r["missing_error"]
    assert not r["frame_ok"] and "depth.png" in r["frame_error"] and "16-bit" in r["frame_error"]
    # a run without networks: the model controls are disabled, their tooltip says why
    assert r["run_ok"] and not r["run_sample_enabled"]
    assert "strand_vae" in r["run_reason"] and r["run_tooltip"] == r["run_reason"]
    assert r["run_widget_enabled"] is False
    assert r["hair_still_open"]
    assert "strand_vae" in r["sample_without_model"]
