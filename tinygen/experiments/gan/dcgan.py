"""Training a DCGAN (Radford, Metz & Chintala 2016) on MNIST or Fashion-MNIST; the
networks are ``tinygen.models.gan.dcgan``, the game and losses those of the GAN.

Defaults and where they come from:
    channels 64, latent_dim 100     G: z -> 128x7x7 -> 64x14x14 -> 1x28x28; D the mirror
                                    (Radford et al.'s guidelines at 28x28; the widths
                                    are tinygen's choice, the benchmark's shape)
    Adam(2e-4, betas (0.5, 0.999)), weights N(0, 0.02)
                                    Radford et al., section 4
    batch 64                        tinygen's choice (Radford et al. used 128)
    k 1, generator_loss non_saturating
                                    as in the paper's code
    epochs 5                        about 4,700 steps, 11 minutes on 2 cores
"""
from __future__ import annotations

from ...models.gan.dcgan import DCGANDiscriminator, DCGANGenerator
from .gan import VanillaGANExperiment


class DCGANExperiment(VanillaGANExperiment):
    """Train a DCGAN (images in [-1, 1])."""

    name = "dcgan"
    # the GAN's settings, with a convolution width instead of an MLP width
    defaults = {**{k: v for k, v in VanillaGANExperiment.defaults.items() if k != "hidden"},
                "channels": 64, "epochs": 5}
    blas_threads = None   # convolutions: large products, both cores

    def build_players(self):
        c = self.config
        return (DCGANGenerator(c["latent_dim"], c["channels"]),
                DCGANDiscriminator(c["channels"], norm="batch"))
