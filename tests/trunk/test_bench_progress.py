"""`latent4d bench <name>`: one overall progress bar (stage names, elapsed time, an estimate from the last
recorded run of the same size) and a clean Ctrl-C (message, exit 130, nothing half-written)."""

import io
import json
import os
import signal

import pytest

from latent4d import bench, progress


def _record(path, name, quick, seconds, finished="2026-12-01T10:00:00+0000"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "quick": quick, "records": [], "duration_s": seconds,
                                "finished": finished}))


@pytest.fixture
def fake_bench(monkeypatch, tmp_path):
    """Registers the bench ``fake`` (its body set through the returned dict) and works in ``tmp_path``."""
    body = {}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "registry", lambda: {"fake_h2": lambda report, quick: body["fn"](report, quick)})
    return body


def test_the_estimate_comes_from_the_last_recorded_run_of_the_same_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "outputs" / "bench"
    assert bench.last_duration("fake_h2", False, out) is None  # nothing recorded: no estimate
    _record(tmp_path / "docs" / "bench" / "fake_h2.json", "fake_h2", False, 600.0)
    _record(out / "fake_h2.json", "fake_h2", True, 40.0)
    assert bench.last_duration("fake_h2", False, out) == (600.0, "docs/bench/fake_h2.json")
    assert bench.last_duration("fake_h2", True, out) == (40.0, str(out / "fake_h2.json"))  # quick matched by flag
    _record(out / "fake_h2.json", "fake_h2", False, 500.0, finished="2026-12-02T10:00:00+0000")
    assert bench.last_duration("fake_h2", False, out)[0] == 500.0  # the more recent of the two
    assert bench.last_duration("fake_h2", True, out) is None
    (out / "fake_h2.json").write_text("{broken")
    _record(tmp_path / "docs" / "bench" / "fake_h2.json", "other", False, 600.0)
    assert bench.last_duration("fake_h2", False, out) is None  # unreadable / another bench's record


def test_bench_runs_under_one_bar_with_stage_names_and_the_recorded_estimate(fake_bench, tmp_path):
    seen = []

    def fn(report, quick):
        run = progress.current()
        seen.append((run.label, run.expected, run.stage_name))
        report.stage("loading")
        seen.append(run.stage_name)
        report.add("thing.err", 1.5, "mm", "<= 2")
        seen.append(run.stage_name)

    fake_bench["fn"] = fn
    out = tmp_path / "outputs" / "bench"
    bench.run_bench("fake_h2", quick=True, out_dir=out)
    assert seen == [("bench fake_h2 --quick", None, ""), "loading", "measured thing.err"]  # no invented ETA
    first = json.loads((out / "fake_h2_quick.json").read_text())  # a quick run has its own file
    assert first["records"][0]["met"] is True and first["quick"] is True
    seen.clear()
    _record(out / "fake_h2.json", "fake_h2", True, 321.0, finished="2099-01-01T00:00:00+0000")
    bench.run_bench("fake_h2", quick=True, out_dir=out)
    assert seen[0][1] == 321.0  # the estimate: the last recorded quick run
    seen.clear()
    bench.run_bench("fake_h2", quick=False, out_dir=out)
    assert seen[0] == ("bench fake_h2", None, "")  # full size: no full run recorded
    full, quick = (json.loads((out / f).read_text()) for f in ("fake_h2.json", "fake_h2_quick.json"))
    assert full["quick"] is False and quick["quick"] is True  # the full run did not replace the quick one
    bench.run_bench("fake_h2", quick=True, out_dir=out)
    assert json.loads((out / "fake_h2.json").read_text()) == full  # nor a quick run the full one
    assert progress.current() is None


def test_estimate_text_says_what_is_left_and_nothing_without_an_estimate():
    assert progress.estimate_text(60, 540) == "~8 min left of ~9 min"
    assert progress.estimate_text(10, 40) == "~30 s left of ~40 s"
    assert progress.estimate_text(50, 40) == "over the ~40 s estimate"
    assert progress.estimate_text(50, None) == ""
    assert progress.duration_text(2 * 3600 + 30 * 60) == "2 h 30 min"


def test_the_shared_display_shows_the_overall_line_and_the_bars_inside_it(monkeypatch):
    """Rendered on a fake terminal: the overall line (stage name, estimate) and an inner bar joining it."""
    from rich.console import Console
    from rich.progress import Progress

    buf = io.StringIO()
    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.setattr(progress, "_progress", lambda: Progress(
        *progress._columns(), console=Console(file=buf, force_terminal=True, width=150, color_system=None),
        auto_refresh=False, transient=False))
    with progress.overall("bench fake", 540.0) as run:
        run.stage("training style_vae")
        with progress.bar(4, "decoding") as advance:
            advance(2)
            progress._ACTIVE[-1].refresh()
    text = buf.getvalue()
    assert "bench fake: training style_vae" in text and "left of ~9 min" in text
    assert "decoding" in text and "2/4" in text
    with progress.overall("bench none") as run:  # no estimate: elapsed and stage only
        run.stage("x")
    assert "bench none: x" in buf.getvalue()


def test_ctrl_c_in_a_bench_exits_130_and_leaves_the_previous_results(fake_bench, tmp_path, capsys):
    from latent4d.cli import main

    def fn(report, quick):
        report.add("first.err", 1.0)
        report.stage("measuring the second figure")
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C
        report.add("never", 2.0)

    fake_bench["fn"] = fn
    out = tmp_path / "outputs" / "bench"
    _record(out / "fake_h2.json", "fake_h2", False, 12.0)
    before = (out / "fake_h2.json").read_bytes()
    assert main(["bench", "fake_h2", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "bench fake_h2 interrupted after" in err and "during 'measuring the second figure'" in err
    assert "was not written (the previous one is unchanged)" in err
    assert (out / "fake_h2.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["fake_h2.json"]  # no temporary file left
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back


def test_ctrl_c_during_a_lightning_fit_inside_a_bench_is_an_interrupt_not_exit_1(fake_bench, tmp_path, capsys):
    """Lightning catches the KeyboardInterrupt of a fit, ignores SIGINT and calls sys.exit(1): the bench
    still ends as an interrupt (130, message) and SIGINT works again afterwards."""
    import pytorch_lightning as pl
    import torch

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            if batch_idx == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return self.lin(batch[0]).square().mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    def fn(report, quick):
        report.stage("training tiny")
        data = torch.utils.data.TensorDataset(torch.randn(64, 2))
        trainer = pl.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu", default_root_dir=str(tmp_path))
        trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=4))
        report.add("after_fit", 1.0)

    fake_bench["fn"] = fn
    from latent4d.cli import main

    out = tmp_path / "outputs" / "bench"
    assert main(["bench", "fake_h2", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "during 'training tiny'" in err and "there was none before" in err
    assert not (out / "fake_h2.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_shared_display_steps_aside_while_lightnings_bar_runs(monkeypatch):
    """Another live display on rich's global console (Lightning's progress bar during a fit): the shared
    display stops while it runs and comes back after (two live displays would overwrite each other)."""
    import time

    import rich
    from rich.console import Console
    from rich.live import Live
    from rich.progress import Progress

    def fake_terminal():
        return Console(file=io.StringIO(), force_terminal=True, width=120)

    def wait_for(cond):
        for _ in range(200):  # up to 20 s on a loaded machine; the display checks every 0.1 s
            if cond():
                return True
            time.sleep(0.1)
        return False

    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.setattr(progress, "_progress", lambda: Progress(*progress._columns(), console=fake_terminal(),
                                                                transient=True))
    monkeypatch.setattr(rich, "_console", fake_terminal())
    with progress.overall("demo", 60.0):
        shared = progress._ACTIVE[-1]
        assert shared.live.is_started
        with Live("Epoch 0", console=rich.get_console()):
            assert wait_for(lambda: not shared.live.is_started)
        assert wait_for(lambda: shared.live.is_started)
    assert not shared.live.is_started and progress._ACTIVE == []
