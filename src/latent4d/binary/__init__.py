"""Binary latent diffusion (Wang et al., CVPR 2023): Bernoulli autoencoders for images and occupancy
grids, Bernoulli diffusion over their bits with a transformer denoiser, sampling in as few as 16 steps.

Modules: ``data`` (digits / photos / image folders, occupancy grids, encoded latents), ``synthetic``
(procedural voxel shapes), ``autoencoder``, ``denoiser``, ``module`` (Lightning), ``pipeline``
(sampling, on :class:`latent4d.pipeline.LatentPipeline`), ``types`` (result types), ``io`` (image
grids, occupancy meshes), ``metrics``, ``commands`` (CLI), ``bench``. The scheduler is
:class:`latent4d.diffusion.bernoulli.BernoulliDiffusionScheduler`.
"""
