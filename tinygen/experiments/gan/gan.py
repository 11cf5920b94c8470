"""Training the original GAN (Goodfellow et al. 2014) with MLP players, on MNIST,
Fashion-MNIST or a 2-D toy set; the model is ``tinygen.models.gan.gan``.

Algorithm 1 of the paper, as ``GANExperiment`` runs it: k updates of D on
-V(D, G) (G frozen), then one of G (D frozen) on its chosen loss.

Defaults and where they come from:
    k 1                             Goodfellow et al. used k = 1 ("the least expensive
                                    option") in their experiments
    generator_loss non_saturating   the paper's recommendation for practice (section 3);
                                    "minimax" trains on log(1 - D(G(z))) itself
    latent_dim 100, hidden 256      G: z -> 256 -> 512 -> x, D: x -> 512 -> 256 -> 1,
                                    LeakyReLU(0.2) (tinygen's choice; the paper used
                                    maxout and dropout in D)
    Adam(2e-4, betas (0.5, 0.999))  Radford et al.'s settings, which suit MLP GANs too
    batch 64                        tinygen's choice (Radford et al. used 128)
    epochs 20                       on MNIST about 19,000 steps (9 minutes on 2 cores);
                                    on a toy set of 100,000 points about 31,000
"""
from __future__ import annotations

from ...models.gan.gan import (GENERATOR_LOSSES, Discriminator, Generator,
                               discriminator_loss, generator_loss)
from ..base import fraction, one_of
from .base import GANExperiment


class VanillaGANExperiment(GANExperiment):
    """Train the original GAN with MLP players (images in [-1, 1] or 2-D points)."""

    name = "gan"
    defaults = {"latent_dim": 100, "hidden": 256, "k": 1,
                "generator_loss": "non_saturating", "batch_size": 64, "lr": 2e-4,
                "beta1": 0.5, "beta2": 0.999, "lr_schedule": "constant", "ema_decay": 0.0,
                "epochs": 20, "eval_n": 10000, "eval_fid": True}
    rules = {"generator_loss": one_of(*GENERATOR_LOSSES), "beta1": fraction,
             "beta2": fraction}
    blas_threads = 1   # small matrix products (see Experiment.blas_threads)

    def build_players(self):
        h, out = self.config["hidden"], "linear" if self.toy else "tanh"
        return (Generator(self.config["latent_dim"], self.data_shape, (h, 2 * h), out),
                Discriminator(self.data_shape, (2 * h, h)))

    def discriminator_objective(self, x, fake, y, y_fake):
        real_logits, fake_logits = self.discriminate(x, y), self.discriminate(fake, y_fake)
        loss = discriminator_loss(real_logits, fake_logits)
        return loss, {"d_loss": loss.item(), "value": -loss.item(),
                      "d_real": real_logits.sigmoid().mean().item(),
                      "d_fake": fake_logits.sigmoid().mean().item()}

    def generator_objective(self, fake, y_fake):
        loss = generator_loss(self.discriminate(fake, y_fake), self.config["generator_loss"])
        return loss, {"g_loss": loss.item()}
