"""Pieces of `latent4d bench binary` that run without training: the PNG line plot, the 3D judge classifier,
and the reconstruction floor of an autoencoder."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image

from latent4d.binary.autoencoder import BernoulliAutoencoder
from latent4d.binary.bench import recon_floor
from latent4d.binary.metrics import DigitClassifier, train_classifier
from latent4d.binary.plots import line_plot


def test_line_plot_writes_a_png_with_lines(tmp_path):
    p = line_plot({"a": ([4, 8, 16], [3.0, 2.0, None]), "b": ([4, 8, 16], [1.0, 1.5, 1.2])}, tmp_path / "x.png",
                  "title", "steps", "FD", hlines={"floor": 0.8})
    img = np.asarray(Image.open(p).convert("RGB"))
    assert img.shape == (420, 640, 3)
    assert (img != 255).any(axis=2).mean() > 0.01  # something drawn besides the white background
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no temporary file left


def test_3d_judge_classifier_shapes_and_learns():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(24, 1, 16, 16, 16)
    y = torch.arange(24) % 2
    x[y == 1, :, 4:12, 4:12, 4:12] = 1.0  # class 1: a cube; class 0: empty
    x += 0.05 * torch.rand(x.shape, generator=g)
    net = train_classifier(x, y, epochs=8, channels=8, feature_dim=16, batch_size=8)
    assert net.config.dims == 3
    assert net.features(x).shape == (24, 16)
    assert (net(x).argmax(1) == y).float().mean() > 0.9
    assert DigitClassifier().config.dims == 2  # the digits judge is unchanged


def test_recon_floor_of_an_autoencoder(tmp_path):
    torch.manual_seed(0)
    ae = BernoulliAutoencoder(channels=(8,), latent_channels=4, sample_size=8)
    ae.save_pretrained(tmp_path / "autoencoder")
    val_x = torch.rand(10, 1, 8, 8)
    seen = {}

    def evaluate(images, labels=None):
        seen["images"] = images
        return {"fd": 1.25}

    ev = types.SimpleNamespace(val_x=val_x, evaluate=evaluate)
    out = recon_floor(tmp_path / "autoencoder", ev)
    assert out["fd"] == 1.25 and out["bits"] == 4 * 4 * 4
    rec = seen["images"]
    assert rec.shape == val_x.shape and 0 <= float(rec.min()) and float(rec.max()) <= 1
    want = -10 * torch.log10(((rec - val_x) ** 2).flatten(1).mean(1)).mean()
    assert out["psnr"] == pytest.approx(float(want), rel=1e-5)


def test_loss_rows_train_each_variant_and_report_the_difference(tmp_path, monkeypatch):
    """`_loss_rows` retrains the digits diffusion with each other loss on the same AE and reports FD /
    accuracy at 16 steps with their difference to the configured model's (which it reads from the run)."""
    from latent4d.bench import BenchReport
    from latent4d.binary import bench, pipeline

    (tmp_path / "diffusion").mkdir()
    (tmp_path / "diffusion" / "config.yaml").write_text("family: binary\nmodel:\n  loss: focal\n")
    trained = []
    monkeypatch.setattr(bench, "_train", lambda exp, run, quick, preset, ae_run=None, extra=None:
                        trained.append((exp, run.name, ae_run, extra)) or ({}, False))
    monkeypatch.setattr(pipeline.BinaryLatentPipeline, "from_pretrained", classmethod(lambda cls, run: run))
    scores = {0.0: {"fd": 20.0, "accuracy": 0.9}, bench.GUIDANCE: {"fd": 40.0, "accuracy": 1.0}}
    monkeypatch.setattr(bench, "_score", lambda pipe, ev, n, steps, g, temp: (dict(scores[g]), None))
    default = {"plain": {"fd": 18.0}, "guided": {"fd": 41.0}}
    report = BenchReport("binary_test", quick=True, out_dir=tmp_path)
    runs = {"ae": tmp_path / "ae", "diffusion": tmp_path / "diffusion"}
    bench._loss_rows(report, True, tmp_path, runs, default, ev=None, n=10)
    assert trained == [("binary/diffusion_digits", "diffusion_loss_bce", tmp_path / "ae", ["model.loss=bce"])]
    rows = {r["metric"]: r["value"] for r in report.records}
    assert rows["binary S=16, loss=bce: FD"] == 20.0
    assert rows["binary S=16, loss=bce - loss=focal: FD"] == pytest.approx(2.0)
    assert rows["binary S=16, loss=bce - loss=focal: FD, guidance 1"] == pytest.approx(-1.0)
    assert rows["binary S=16, loss=bce: class accuracy, guidance 1"] == 1.0


def test_binary_scale_overrides_build_the_stated_denoisers(monkeypatch, tmp_path):
    """Each scale of ``bench binary_scale`` composes into the digits diffusion experiment and sets both
    models' transformer to the scale's size; the scales run are chosen as documented."""
    from hydra.utils import instantiate

    from latent4d.binary.bench_scale import SCALES, chosen_scales, scale_overrides
    from latent4d.errors import ConfigError
    from latent4d.train import compose_config

    assert scale_overrides("s") == []  # the CPU default is the bench binary run itself
    for exp in ("binary/diffusion_digits", "binary/diffusion_digits_continuous"):
        cfg = compose_config([f"experiment={exp}", "autoencoder_path=x", *scale_overrides("m")], tmp_path)
        d = cfg.model.denoiser
        assert (d.dim, d.depth, d.heads, d.dim_head, d.mlp_mult) == tuple(SCALES["m"][k] for k in
                                                                            ("dim", "depth", "heads", "dim_head", "mlp_mult"))
        assert cfg.model.lr == SCALES["m"]["lr"]
        net = instantiate(cfg.model.denoiser)(latent_channels=16, latent_shape=(4, 4))
        assert sum(p.numel() for p in net.parameters()) > 3_000_000
    monkeypatch.delenv("LATENT4D_BINARY_SCALES", raising=False)
    assert chosen_scales(quick=False, cuda=True) == list(SCALES)
    assert chosen_scales(quick=False, cuda=False) == ["s"] == chosen_scales(quick=True, cuda=True)
    monkeypatch.setenv("LATENT4D_BINARY_SCALES", "s, l")
    assert chosen_scales(quick=True, cuda=False) == ["s", "l"]
    monkeypatch.setenv("LATENT4D_BINARY_SCALES", "xl")
    with pytest.raises(ConfigError, match="unknown scale.*xl"):
        chosen_scales(quick=False, cuda=False)
