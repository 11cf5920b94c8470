"""Training the two-stochastic-layer VAE (k > 1: IWAE) of Burda, Grosse & Salakhutdinov
(2016) on dynamically binarised MNIST; the model is
``tinygen.models.vae.hvae.HierarchicalVAE``.

Defaults and where they come from: latent_dim 100 and top_dim 50 (z1, z2), hidden 200
and top_hidden 100, tanh, Glorot initialisation: Burda et al.'s second architecture.
Training, evaluation and pictures are the one-layer VAE's (``VAEExperiment``), which
reads the model only through encode, decode, mean, elbo, iwae_bound and sample.
"""
from __future__ import annotations

from ...models.vae.hvae import HierarchicalVAE
from .vae import VAEExperiment


class HierarchicalVAEExperiment(VAEExperiment):
    """The two-stochastic-layer VAE (k > 1: IWAE) on dynamically binarised MNIST."""

    name = "hvae"
    defaults = {"latent_dim": 100, "top_dim": 50, "hidden": 200, "top_hidden": 100,
                "activation": "tanh", "beta": 1.0, "k": 1,
                "batch_size": 100, "lr": 1e-3, "lr_schedule": "cosine", "epochs": 10,
                "eval_k": 5000, "eval_n": 10000, "eval_fid": True}

    def build_model(self):
        c = self.config
        return HierarchicalVAE((c["latent_dim"], c["top_dim"]), (c["hidden"], c["top_hidden"]),
                               c["activation"])
