"""latent4d's Open3D viewer (importable as ``latent4d.viewer``)."""
