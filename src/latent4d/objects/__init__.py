"""Objects family (ShAPO): shape + appearance latent databases, octree-based shape/appearance/pose optimisation from one RGB-D view."""
