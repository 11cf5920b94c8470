"""Autoencoders and variational autoencoders.

    vae.py          VAE and the importance-weighted bound (Kingma & Welling 2014; Burda
                    et al. 2016)
    hvae.py         a VAE with two stochastic layers (Burda et al. 2016)
    cvae.py         the conditional VAE (Sohn et al. 2015)
    autoencoder.py  autoencoders: undercomplete, regularised (sparse), denoising
                    (Vincent et al. 2008)
    vqvae.py        the vector-quantised VAE (van den Oord et al. 2017)
    common.py       what they share: the distributions, the IWAE bound, Burda et al.'s
                    initialisation
"""
from .autoencoder import AutoEncoder, DenoisingAutoEncoder, corrupt
from .cvae import ConditionalVAE
from .hvae import HierarchicalVAE
from .vae import VAE
from .quantizer import VectorQuantizer
from .vqvae import VQVAE

__all__ = ["AutoEncoder", "DenoisingAutoEncoder", "corrupt", "ConditionalVAE",
           "HierarchicalVAE", "VAE", "VQVAE", "VectorQuantizer"]
