"""Training the Wasserstein GANs: WGAN with weight clipping (Arjovsky, Chintala & Bottou
2017) and WGAN-GP with the gradient penalty (Gulrajani et al. 2017); the math is in
``tinygen.models.gan.wgan``.

The critic f is D without a sigmoid, updated n_critic times per update of G on
E[f(G(z))] - E[f(x)] (plus the penalty for WGAN-GP); G descends -E[f(G(z))]. The log's
``w_estimate`` is E[f(x)] - E[f(G(z))] on each batch, the critic's estimate of the
Wasserstein-1 distance (times its Lipschitz constant): it falls as G improves.

Networks: ``network`` "conv" (DCGAN's, for images) or "mlp" (GAN's, for images or 2-D
points); unset, conv for images and mlp for the toy sets. The WGAN critic keeps DCGAN's
batch normalisation; the WGAN-GP critic normalises each sample alone (``norm="layer"``),
since the penalty is per sample (Gulrajani et al., section 4).

Defaults and where they come from:
    wgan:     n_critic 5, clip 0.01, RMSprop lr 5e-5, batch 64    Arjovsky et al.,
                                                                  Algorithm 1
    wgan-gp:  n_critic 5, gp_weight (lambda) 10, Adam(1e-4, betas (0, 0.9)), batch 64
                                                                  Gulrajani et al.,
                                                                  Algorithm 1
    latent_dim 100, channels 64, hidden 256                       as DCGAN and GAN here
"""
from __future__ import annotations

from ... import optim
from ...models.gan.dcgan import DCGANDiscriminator, DCGANGenerator
from ...models.gan.gan import Discriminator, Generator
from ...models.gan.wgan import (clip_weights_, critic_loss, generator_loss, gradient_penalty,
                                wasserstein_estimate)
from ..base import fraction, non_negative
from .base import GANExperiment

NETWORKS = ("conv", "mlp")


class WGANExperiment(GANExperiment):
    """Train a WGAN: a critic kept Lipschitz by clipping its weights to [-c, c]."""

    name = "wgan"
    defaults = {"latent_dim": 100, "network": None, "channels": 64, "hidden": 256,
                "n_critic": 5, "clip": 0.01, "batch_size": 64, "lr": 5e-5,
                "lr_schedule": "constant", "ema_decay": 0.0, "epochs": 25,
                "eval_n": 10000, "eval_fid": True}
    critic_norm = "batch"
    field_label = "f(x), the critic's score"

    @property
    def network(self) -> str:
        net = self.config.get("network") or ("mlp" if self.toy else "conv")
        if net not in NETWORKS:
            raise ValueError(f"--network {net!r}: choose one of {', '.join(NETWORKS)}")
        if net == "conv" and self.toy:
            raise ValueError("--network conv reads 28x28 images; the 2-D toy sets need "
                             "--network mlp")
        return net

    @property
    def blas_threads(self):
        return 1 if self.network == "mlp" else None

    def build_players(self):
        c = self.config
        if self.network == "conv":
            return (DCGANGenerator(c["latent_dim"], c["channels"]),
                    DCGANDiscriminator(c["channels"], norm=self.critic_norm))
        h, out = c["hidden"], "linear" if self.toy else "tanh"
        return (Generator(c["latent_dim"], self.data_shape, (h, 2 * h), out),
                Discriminator(self.data_shape, (2 * h, h)))

    def build_optimizers(self):
        """RMSprop at lr for both players (Arjovsky et al.)."""
        lr = self.config["lr"]
        return (optim.RMSprop(self.G.parameters(), lr=lr),
                optim.RMSprop(self.D.parameters(), lr=lr))

    def discriminator_objective(self, x, fake, y, y_fake):
        real, fake_scores = self.D(x), self.D(fake)
        loss = critic_loss(real, fake_scores)
        return loss, {"critic_loss": loss.item(),
                      "w_estimate": wasserstein_estimate(real, fake_scores).item()}

    def after_discriminator_step(self):
        clip_weights_(self.D, self.config["clip"])

    def generator_objective(self, fake, y_fake):
        loss = generator_loss(self.D(fake))
        return loss, {"g_loss": loss.item()}

    def discriminator_field(self, points):
        return self.D(points)


class WGANGPExperiment(WGANExperiment):
    """Train a WGAN-GP: the critic's gradient norm pulled to 1 between data and samples."""

    name = "wgan-gp"
    defaults = {"latent_dim": 100, "network": None, "channels": 64, "hidden": 256,
                "n_critic": 5, "gp_weight": 10.0, "batch_size": 64, "lr": 1e-4,
                "beta1": 0.0, "beta2": 0.9, "lr_schedule": "constant", "ema_decay": 0.0,
                "epochs": 25, "eval_n": 10000, "eval_fid": True}
    rules = {"gp_weight": non_negative, "beta1": fraction, "beta2": fraction}
    critic_norm = "layer"

    def build_optimizers(self):
        return GANExperiment.build_optimizers(self)   # Adam with (beta1, beta2)

    def discriminator_objective(self, x, fake, y, y_fake):
        real, fake_scores = self.D(x), self.D(fake)
        penalty = gradient_penalty(self.D, x, fake, self.config["gp_weight"])
        loss = critic_loss(real, fake_scores)
        return loss + penalty, {"critic_loss": loss.item(), "gp": penalty.item(),
                      "w_estimate": wasserstein_estimate(real, fake_scores).item()}

    def after_discriminator_step(self):
        pass   # no clipping: the penalty keeps the critic Lipschitz
