"""The training recipes of the VAE family: vae (and the IWAE), hvae, cvae, ae, dae and
vqvae. The models themselves are in ``tinygen.models.vae``."""
