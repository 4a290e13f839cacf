"""The hair CLI commands (subprocesses of the real console script)."""

from __future__ import annotations

import numpy as np

from latent4d.hair.formats import read_hair, write_hair
from latent4d.hair.synthetic import generate_hairstyle


def test_convert_between_formats(tmp_path, cli):
    h = generate_hairstyle(1, 50)
    write_hair(tmp_path / "a.data", h)
    cli("convert", str(tmp_path / "a.data"), str(tmp_path / "b.hair"), "--resample", "20", check=True)
    b = read_hair(tmp_path / "b.hair")
    assert b.counts.tolist() == [20] * 50
    assert np.allclose(b.roots, h.roots) and np.allclose(b.strands[:, -1], h.strands[:, -1], atol=1e-6)
    bad = cli("convert", str(tmp_path / "a.data"), str(tmp_path / "b.xyz"))
    assert bad.returncode == 2 and "unknown hair format" in bad.stderr
    (tmp_path / "c.data").write_bytes(b"\x05\x00\x00\x00")
    bad = cli("convert", str(tmp_path / "c.data"), str(tmp_path / "d.ply"))
    assert bad.returncode == 2 and "c.data" in bad.stderr and not (tmp_path / "d.ply").exists()
