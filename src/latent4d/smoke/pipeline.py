"""Inference for the smoke SDF: load an exported network, extract its surface."""

from __future__ import annotations

import torch
import trimesh

from latent4d.geometry.meshing import dense_mesh
from latent4d.geometry.octree import octree_mesh
from latent4d.pipeline import LatentPipeline
from latent4d.smoke.sdf import SDFNet


class SDFPipeline(LatentPipeline):
    """The smoke SDF network: ``from_pretrained(run or folder)`` (see :class:`latent4d.pipeline.LatentPipeline`)."""

    family = "smoke"
    component_classes = {"net": SDFNet}

    def __init__(self, net: SDFNet):
        self.register_modules(net=net.eval())

    @torch.no_grad()
    def mesh(self, resolution: int = 128, octree: bool = True) -> trimesh.Trimesh:
        """Zero level set as a mesh (octree-sparse evaluation by default)."""
        if octree:
            level = max(2, int(round(torch.log2(torch.tensor(float(resolution))).item())))
            mesh, _ = octree_mesh(self.net, level=level, start_level=3, keep=None)
            return mesh
        return dense_mesh(self.net, resolution)
