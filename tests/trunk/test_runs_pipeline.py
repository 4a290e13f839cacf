"""The trunk's run layout (latent4d.runs) and inference base (latent4d.pipeline)."""

from __future__ import annotations

import json

import pytest
import torch

from latent4d.errors import ConfigError, InputError
from latent4d.pipeline import LatentPipeline
from latent4d.runs import network_folder, run_family
from latent4d.smoke.pipeline import SDFPipeline
from latent4d.smoke.sdf import SDFNet


def _net() -> SDFNet:
    torch.manual_seed(0)
    return SDFNet(hidden=8, layers=2, num_freqs=2)


def test_save_and_load_a_pipeline_folder(tmp_path):
    pipe = SDFPipeline(_net())
    assert list(pipe.components) == ["net"]
    pipe.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert meta == {"_class_name": "SDFPipeline", "family": "smoke", "components": {"net": "SDFNet"}}
    again = SDFPipeline.from_pretrained(tmp_path / "p")
    x = torch.rand(5, 3)
    assert torch.equal(again.net(x), pipe.net(x))
    # the same network from a run layout and from its own folder
    pipe.net.save_pretrained(tmp_path / "run" / "models" / "net")
    (tmp_path / "run" / "config.yaml").write_text("family: smoke\nname: sdf_sphere\n")
    for where in (tmp_path / "run", tmp_path / "run" / "models", tmp_path / "run" / "models" / "net"):
        assert torch.equal(SDFPipeline.from_pretrained(where).net(x), pipe.net(x))
    assert run_family(tmp_path / "run") == "smoke"
    assert run_family(tmp_path / "p") == "smoke"  # a folder of networks, recognised by class name


def test_save_pretrained_never_replaces_a_foreign_folder(tmp_path):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("x")
    with pytest.raises(ConfigError, match="did not write"):
        SDFPipeline(_net()).save_pretrained(tmp_path / "thesis")
    assert (tmp_path / "thesis" / "chapter1.tex").read_text() == "x"


class _TwoNets(LatentPipeline):
    family = "smoke"
    component_classes = {"net": SDFNet, "extra": SDFNet}
    optional = ("extra",)

    def __init__(self, net, extra=None, scale: float = 1.0):
        self.register_modules(net=net, extra=extra)
        self.scale = scale


def test_optional_components_and_options(tmp_path):
    _net().save_pretrained(tmp_path / "models" / "net")
    pipe = _TwoNets.from_pretrained(tmp_path, scale=2.0)
    assert pipe.extra is None and pipe.scale == 2.0 and list(pipe.components) == ["net"]
    assert pipe.to("cpu", torch.float64).net.net[0].weight.dtype == torch.float64 if hasattr(pipe.net, "net") \
        else next(pipe.to("cpu", torch.float64).net.parameters()).dtype == torch.float64


def test_missing_and_wrong_networks_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SDFPipeline.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no exported 'net'"):
        SDFPipeline.from_pretrained(tmp_path / "empty")
    folder = tmp_path / "models" / "net"
    _net().save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["_class_name"] = "StrandVAE"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="holds a StrandVAE, not a SDFNet"):
        network_folder(tmp_path, "net", "SDFNet")
    with pytest.raises(ConfigError, match="holds a StrandVAE"):
        SDFPipeline.from_pretrained(folder)  # pointed at it directly
    cfg["_class_name"] = "SDFNet"
    cfg["hidden"] = 10**7  # a config that does not belong to its weights: refused before allocating
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="do not belong together"):
        SDFPipeline.from_pretrained(folder)
