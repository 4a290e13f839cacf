"""`latent4d demo`: a progress line per stage with the overall estimate, one shared bar over the stages,
and Ctrl-C that keeps the finished stages (fake stages: the real demo is not run here)."""

import json

import pytest

from latent4d import progress
from latent4d.demo import TYPICAL_MINUTES, run_demo, stage_line


def test_stage_line_says_the_stage_what_is_left_and_the_expected_total():
    expected = {"hair": 120.0, "objects": 180.0, "motion": 240.0, "binary": 180.0}
    line = stage_line(2, list(expected), expected, elapsed=100.0)
    assert line == "[latent4d] demo 2/4: objects (about 3 min; about 10 min left in all, of about 12 min)"
    assert stage_line(1, ["smoke"], {"smoke": 20.0}, 0.0).endswith("(about 20 s; about 20 s left in all, of about 20 s)")


def test_each_stage_prints_its_line_under_one_overall_bar_with_revised_estimates(tmp_path, capsys):
    seen = []

    def stage(name, folder):
        run = progress.current()
        seen.append((run.label, run.stage_name, round(run.expected)))
        return {"x": 1}

    run_demo(["hair", "binary"], stage, tmp_path, mode="default")
    out = capsys.readouterr().out
    typical = {k: 60 * v for k, v in TYPICAL_MINUTES["default"].items()}
    total = typical["hair"] + typical["binary"]
    assert "demo: 2 stage(s)" in out and "estimates: typical times" in out
    assert "demo 1/2: hair (about" in out and "demo 2/2: binary (about" in out and "done in" in out
    assert seen[0] == ("demo", "1/2 hair", round(total))
    assert seen[1][1] == "2/2 binary" and seen[1][2] <= round(typical["binary"]) + 1  # elapsed + what is left
    assert progress.current() is None
    run_demo(["hair", "binary"], stage, tmp_path, mode="default")  # the second run: this machine's times
    out = capsys.readouterr().out
    assert "estimates: the last run on this machine" in out
    assert seen[2][2] < 5  # the fake stages took well under a second each: so does the estimate


def test_ctrl_c_in_a_stage_keeps_the_finished_stages_and_says_so(tmp_path, capsys):
    def stage(name, folder):
        if name == "objects":
            raise KeyboardInterrupt
        return {"ok": 1}

    with pytest.raises(KeyboardInterrupt):
        run_demo(["hair", "objects", "motion"], stage, tmp_path, mode="quick")
    err = capsys.readouterr().err
    assert "demo interrupted during '2/3 objects'" in err and "finished stages (hair)" in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["hair"] and summary["hair"]["ok"] == 1
    assert not (tmp_path / "index.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files


def test_a_stage_names_its_parts_on_the_overall_bar(tmp_path):
    from latent4d.demo_stages import _step

    seen = []

    def stage(name, folder):
        _step("short training run")
        seen.append(progress.current().stage_name)
        _step("results from the shipped weights")
        seen.append(progress.current().stage_name)
        return {}

    run_demo(["hair"], stage, tmp_path, mode="quick")
    assert seen == ["1/1 hair · short training run", "1/1 hair · results from the shipped weights"]
    _step("outside the demo")  # nothing to name: no error
    assert progress.current() is None
