"""latent4d."""
