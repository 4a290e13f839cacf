"""Inference for the smoke SDF: load an exported network, extract its surface."""

from __future__ import annotations

from pathlib import Path

import torch
import trimesh

from latent4d.errors import ConfigError
from latent4d.geometry.meshing import dense_mesh
from latent4d.geometry.octree import octree_mesh
from latent4d.smoke.sdf import SDFNet


class SDFPipeline:
    def __init__(self, net: SDFNet):
        self.net = net.eval()

    @classmethod
    def from_pretrained(cls, run_or_folder: str | Path) -> SDFPipeline:
        """Load from a run directory (``<run>/models/net``) or a ``save_pretrained`` folder."""
        from latent4d.trust import load_network

        p = Path(run_or_folder).expanduser()
        if not p.exists():
            raise ConfigError(f"'{p}' does not exist: expected a smoke run directory or a save_pretrained folder")
        folder = p / "models" / "net" if (p / "models" / "net").is_dir() else p
        if not (folder / "config.json").is_file():
            raise ConfigError(f"no exported SDF network in '{p}' (expected models/net/config.json)")
        # safetensors only; empty / truncated weights or a garbage config.json: a clear InputError
        return cls(load_network(SDFNet, folder))

    @torch.no_grad()
    def mesh(self, resolution: int = 128, octree: bool = True) -> trimesh.Trimesh:
        """Zero level set as a mesh (octree-sparse evaluation by default)."""
        if octree:
            level = max(2, int(round(torch.log2(torch.tensor(float(resolution))).item())))
            mesh, _ = octree_mesh(self.net, level=level, start_level=3, keep=None)
            return mesh
        return dense_mesh(self.net, resolution)
