"""The binary stage of `latent4d demo` (quick): AE + diffusion on digits, a 16-step grid, metrics JSON."""

from __future__ import annotations

import json


def test_binary_demo_quick(tmp_path):
    from PIL import Image

    from latent4d.binary.commands import demo

    res = demo(tmp_path / "binary", quick=True)
    m = json.loads((tmp_path / "binary" / "metrics.json").read_text())
    assert m["steps"] == 16 and m["ae_test_psnr"] > 13.0  # a constant image scores ~9 dB
    assert 0.0 <= m["class_accuracy"] <= 1.0 and m["fd"] >= 0.0
    grid = Image.open(res["grid"])
    assert grid.size[0] > 8 * 16 and grid.size[1] > 10 * 16  # 8 columns x 10 digit rows, upscaled
    assert (tmp_path / "binary" / "diffusion_digits" / "models" / "denoiser_ema" / "config.json").is_file()
