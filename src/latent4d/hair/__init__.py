"""Hair family (GroomGen): strands and hair formats, procedural hairstyles, strand-VAE, hairstyle-VAE,
hybrid densification, and the :class:`~latent4d.hair.pipeline.HairPipeline` (sample / encode / decode /
interpolate / edit / reconstruct). See docs/hair.md."""

from latent4d.hair.formats import read_hair, read_points, write_hair, write_points
from latent4d.hair.scalp import Head, Scalp
from latent4d.hair.strands import Hairstyle

__all__ = ["Hairstyle", "Head", "Scalp", "read_hair", "write_hair", "read_points", "write_points"]
