"""Base LightningModule: networks are diffusers ``ModelMixin`` children exported with ``save_pretrained``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytorch_lightning as pl
from diffusers import ModelMixin


class LatentModule(pl.LightningModule):
    """LightningModule whose trainable networks are ``ModelMixin`` attributes.

    ``export(dir)`` writes ``dir/<attribute name>/{config.json, diffusion_pytorch_model.safetensors}``
    for every such network, each through a temporary folder so a crash never leaves half a model.
    """

    def networks(self) -> dict[str, ModelMixin]:
        return {n: m for n, m in self.named_children() if isinstance(m, ModelMixin)}

    def export(self, out_dir: str | Path) -> dict[str, Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, net in self.networks().items():
            final = out_dir / name
            tmp = out_dir / f".{name}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            net.save_pretrained(tmp, safe_serialization=True)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            written[name] = final
        return written
