"""Motion family: Motion2VecSets (CVPR 2024) on 3DShape2VecSet (SIGGRAPH 2023).

Vector-set shape and deformation autoencoders, 4D latent diffusion with interleaved space-time
attention, and reconstruction / tracking of deforming surfaces from sparse, partial or noisy
point-cloud sequences. Everything lives in the per-sequence normalised frame [-0.5, 0.5]^3.
"""
