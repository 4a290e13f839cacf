"""Diffusion processes: EDM preconditioning around diffusers schedulers, the Bernoulli scheduler."""
