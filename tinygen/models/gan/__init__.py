"""Generative adversarial networks.

    gan.py      the minimax game, its losses from logits, the optimal discriminator and
                the JSD, freezing a player; MLP G and D (Goodfellow et al. 2014)
    dcgan.py    the convolutional G and D of Radford et al. 2016
    cgan.py     the conditional GAN (Mirza & Osindero 2014), with an optional projection
                discriminator (Miyato & Koyama 2018)
    wgan.py     the Wasserstein GAN's critic, weight clipping (Arjovsky et al. 2017) and
                the gradient penalty (Gulrajani et al. 2017)
    vaegan.py   the VAE-GAN (Larsen et al. 2016): a VAE whose likelihood is a Gaussian in
                a discriminator's features; Algorithm 1's three losses and their routing
"""
from .cgan import ConditionalDiscriminator, ConditionalGenerator
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_
from .gan import (Discriminator, Generator, discriminator_loss, frozen, generator_loss,
                  jensen_shannon, optimal_discriminator, sample_noise, value)
from .vaegan import VAEGAN
from .wgan import (clip_weights_, critic_loss, gradient_penalty, interpolate,
                   wasserstein_estimate)

__all__ = ["ConditionalDiscriminator", "ConditionalGenerator", "DCGANDiscriminator",
           "DCGANGenerator", "dcgan_init_", "Discriminator", "Generator",
           "discriminator_loss", "frozen", "generator_loss", "jensen_shannon",
           "optimal_discriminator", "sample_noise", "value", "clip_weights_", "critic_loss",
           "gradient_penalty", "interpolate", "wasserstein_estimate", "VAEGAN"]
