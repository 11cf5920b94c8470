"""The conditional VAE (Sohn, Lee & Yan 2015): a VAE whose encoder and decoder both see
the label y, so that it can generate a chosen class.

    p(z) = N(0, I),   p_theta(x | z, y) = Bernoulli(x; sigmoid(g_theta(z, y))),
    q_phi(z | x, y) = N(z; mu_phi(x, y), diag sigma_phi^2(x, y)),

    log p(x | y) >= E_{q(z|x,y)}[log p_theta(x | z, y)] - KL(q_phi(z | x, y) || p(z)).

y enters as a one-hot vector concatenated to the flattened image (encoder) and to z
(decoder). To draw a digit of class y: z ~ N(0, I), then x ~ p_theta(x | z, y). Since z
no longer needs to carry the class, it is free to carry the style (slant, thickness),
which the class-conditional rows of ``save_pictures`` show: each column one z, each row
one class.
"""
from __future__ import annotations

import os

import numpy as np

from .. import data, nn, no_grad, optim, randn, tensor
from ..nn import functional as F
from ..ops import cat
from ..train import Experiment
from . import register
from .networks import mlp
from .vae import ACTIVATIONS, VAEExperiment, binarize_batch, gaussian_kl_standard, reparameterize


class ConditionalVAE(nn.Module):
    """x (N, 1, 28, 28), y (N,) integer labels; latent size d; MLP encoder and decoder."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400, num_classes: int = 10,
                 activation: str = "relu"):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        act = ACTIVATIONS[activation]
        self.encoder = mlp([784 + num_classes, hidden, hidden, 2 * latent_dim], act)
        self.decoder = mlp([latent_dim + num_classes, hidden, hidden, 784], act)

    def one_hot(self, y):
        labels = y.data if hasattr(y, "data") else np.asarray(y)
        return F.one_hot(tensor(labels), self.num_classes).to(self.device)

    @property
    def device(self):
        return next(iter(self.parameters())).device

    def encode(self, x, y):
        """q(z | x, y): mu, log sigma^2, each (N, d)."""
        h = self.encoder(cat([x.flatten(1), self.one_hot(y)], axis=1))
        return h[:, :self.latent_dim], h[:, self.latent_dim:]

    def decode(self, z, y):
        """p(x | z, y): logits (N, 784)."""
        return self.decoder(cat([z, self.one_hot(y)], axis=1))

    def elbo(self, x, y, beta: float = 1.0):
        """The reconstruction term log p(x | z, y) (one z ~ q) and KL(q(z|x,y) || p(z)),
        each (N,)."""
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar)
        logits = self.decode(z, y)
        recon = (x.flatten(1) * logits - F.softplus(logits)).sum(axis=1)
        return recon, gaussian_kl_standard(mu, logvar)

    @no_grad()
    def sample(self, y):
        """One image of each requested class y (n,) -> (n, 1, 28, 28), the means of
        p(x | z, y) for z ~ N(0, I)."""
        y = np.asarray(y)
        z = randn(len(y), self.latent_dim, device=self.device)
        return self.decode(z, y).sigmoid().reshape(-1, 1, 28, 28)


@register
class ConditionalVAEExperiment(VAEExperiment):
    """Train a conditional VAE on dynamically binarised MNIST with its labels."""

    name = "cvae"
    description = "conditional VAE: draws a chosen class"
    defaults = {"latent_dim": 20, "hidden": 400, "activation": "relu", "beta": 1.0,
                "batch_size": 100, "lr": 1e-3, "lr_schedule": "cosine", "epochs": 10,
                "likelihood": "bernoulli", "eval_n": 10000}

    def __init__(self, config):
        Experiment.__init__(self, config)  # not VAEExperiment's: another model
        self.model = ConditionalVAE(config["latent_dim"], config["hidden"],
                                    activation=config["activation"]).to(config["device"])
        self.opt = optim.Adam(self.model.parameters(), lr=config["lr"])

    def train_loader(self):
        x, labels = self._images("train")
        return data.DataLoader(x, labels, batch_size=self.config["batch_size"], shuffle=True,
                               seed=self.config.get("seed", 0), device=self.config["device"],
                               transform=binarize_batch)

    def training_step(self, batch):
        x, y = batch
        self.model.train()
        for group in self.opt.param_groups:
            group["lr"] = self.learning_rate()
        recon, kl = self.model.elbo(x, y, self.config["beta"])
        loss = -(recon - self.config["beta"] * kl).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "recon": -recon.mean().item(), "kl": kl.mean().item()}

    def sample(self, n):
        """n samples, cycling through the classes 0, 1, ..., 9, 0, ..."""
        return self.model.sample(np.arange(n) % self.model.num_classes).numpy()

    @no_grad()
    def evaluate(self):
        """Test ELBO, and how often the cached MNIST classifier recognises the requested
        class in 1000 class-conditional samples (chance: 10%)."""
        from .classifier import class_accuracy
        self.model.eval()
        elbos = []
        for x, y in self.test_batches(batch_size=500):
            recon, kl = self.model.elbo(x, y)
            elbos.append((recon - kl).numpy())
        y = np.arange(1000) % 10
        accuracy = class_accuracy(self.model.sample(y).numpy(), y, self.config["dataset"],
                                  device=self.config["device"])
        return {"test_elbo": float(np.concatenate(elbos).mean()),
                "class_accuracy_of_samples": accuracy}

    @no_grad()
    def save_pictures(self, run_dir):
        """class-conditional rows: row c holds class c, column j the same z_j."""
        from ..plot import save_image_grid
        self.model.eval()
        z = randn(10, self.model.latent_dim, device=self.config["device"])
        rows = [self.model.decode(z, np.full(10, c)).sigmoid().numpy() for c in range(10)]
        save_image_grid(np.concatenate(rows).reshape(-1, 1, 28, 28),
                        os.path.join(run_dir, "class_rows.png"), nrow=10,
                        labels=[str(c) for c in range(10)])
