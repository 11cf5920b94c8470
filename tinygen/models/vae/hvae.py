"""A VAE with two stochastic layers (Burda, Grosse & Salakhutdinov 2016, their second
architecture), a deeper generative model whose ELBO has no closed-form KL term.

Generative model, top-down:

    p(z2) = N(0, I),   p(z1 | z2) = N(mu_p(z2), diag sigma_p^2(z2)),
    p(x | z1) = Bernoulli(x; sigmoid(g(z1))),

inference model, bottom-up:

    q(z1 | x) = N(mu_q(x), diag sigma_q^2(x)),   q(z2 | z1) = N(mu_q(z1), diag sigma_q^2(z1)).

Importance weights for z1 ~ q(z1|x), z2 ~ q(z2|z1):

    log w = log p(x | z1) + log p(z1 | z2) + log p(z2) - log q(z1 | x) - log q(z2 | z1),

and the bounds are as for the one-layer VAE: ELBO = E[log w], L_k = E[log (1/k) sum_i w_i].
Sizes as in the paper: x (784) -> 200 -> 200 -> z1 (100) -> 100 -> 100 -> z2 (50), and
back down, with tanh hidden layers.
"""
from __future__ import annotations

from .. import nn, no_grad, optim, randn
from ..nn import functional as F
from ..train import Experiment
from . import register
from .networks import glorot_init_, mlp
from .vae import (ACTIVATIONS, LOG_2PI, VAEExperiment, gaussian_log_density,
                  importance_weighted_bound, pixel_marginal_logits, reparameterize, set_bias)


class GaussianLayer(nn.Module):
    """An MLP giving the mean and log-variance of a diagonal Gaussian over out_dim."""

    def __init__(self, in_dim, hidden, out_dim, activation):
        super().__init__()
        self.out_dim = out_dim
        self.net = mlp([in_dim, hidden, hidden, 2 * out_dim], activation)

    def forward(self, h):
        out = self.net(h)
        return out[..., :self.out_dim], out[..., self.out_dim:]


class HierarchicalVAE(nn.Module):
    """Two stochastic layers z1 (latent_dims[0]) and z2 (latent_dims[1]) over 784 pixels."""

    def __init__(self, latent_dims=(100, 50), hidden=(200, 100), activation="tanh"):
        super().__init__()
        act = ACTIVATIONS[activation]
        (d1, d2), (h1, h2) = latent_dims, hidden
        self.latent_dim, self.top_dim = d1, d2
        self.q_z1 = GaussianLayer(784, h1, d1, act)      # q(z1 | x)
        self.q_z2 = GaussianLayer(d1, h2, d2, act)       # q(z2 | z1)
        self.p_z1 = GaussianLayer(d2, h2, d1, act)       # p(z1 | z2)
        self.p_x = mlp([d1, h1, h1, 784], act)           # p(x | z1): logits
        self.likelihood = "bernoulli"
        glorot_init_(self)  # as in Burda et al. (with init_output_bias)

    def init_output_bias(self, x_mean):
        """Start p(x | z1) at the pixels' frequencies in the data (pixel_marginal_logits)."""
        set_bias(self.p_x[-1], pixel_marginal_logits(x_mean))

    # the names the VAE experiment's pictures use: encode to, and decode from, z1
    def encode(self, x):
        """q(z1 | x): mean and log-variance (N, d1)."""
        return self.q_z1(x.flatten(1))

    def decode(self, z1):
        """p(x | z1): logits (..., 784)."""
        lead = z1.shape[:-1]
        return self.p_x(z1.reshape(-1, self.latent_dim)).reshape(*lead, 784)

    def mean(self, logits):
        return logits.sigmoid().reshape(*logits.shape[:-1], 1, 28, 28)

    def log_terms(self, x, k: int):
        """For k samples (z1, z2) ~ q(z1|x) q(z2|z1): log p(x | z1) and the whole
        log w, each (k, N)."""
        x = x.flatten(1)
        mu1, logvar1 = self.q_z1(x)
        z1 = reparameterize(mu1, logvar1, k)                        # (k, N, d1)
        mu2, logvar2 = self.q_z2(z1)
        z2 = reparameterize(mu2, logvar2)                           # (k, N, d2)
        logits = self.decode(z1)
        log_px = (x * logits - F.softplus(logits)).sum(axis=-1)
        log_pz2 = -0.5 * (z2 * z2 + LOG_2PI).sum(axis=-1)          # p(z2) = N(0, I)
        log_p = log_px + gaussian_log_density(z1, *self.p_z1(z2)) + log_pz2
        log_q = gaussian_log_density(z1, mu1, logvar1) + gaussian_log_density(z2, mu2, logvar2)
        return log_px, log_p - log_q

    def log_weights(self, x, k: int):
        """log w for k samples (z1, z2) ~ q(z1|x) q(z2|z1): (k, N)."""
        return self.log_terms(x, k)[1]

    def elbo(self, x, beta: float = 1.0):
        """One-sample estimates of the reconstruction term log p(x | z1) and of the KL
        of q(z1, z2 | x) from the prior p(z1, z2), each (N,): ELBO = recon - KL. (No
        closed form here: the KL is a Monte Carlo estimate from the same sample.)"""
        log_px, log_w = self.log_terms(x, 1)
        return log_px[0], log_px[0] - log_w[0]

    def iwae_bound(self, x, k: int, chunk: int = 500):
        return importance_weighted_bound(self.log_weights, x, k, chunk)

    @no_grad()
    def sample(self, n: int, device: str = "cpu"):
        """z2 ~ N(0, I), z1 ~ p(z1 | z2), shown as the mean of p(x | z1): (n, 1, 28, 28)."""
        z2 = randn(n, self.top_dim, device=device)
        z1 = reparameterize(*self.p_z1(z2))
        return self.mean(self.decode(z1))


@register
class HierarchicalVAEExperiment(VAEExperiment):
    """The two-stochastic-layer VAE (k > 1: IWAE) on dynamically binarised MNIST."""

    name = "hvae"
    description = "VAE with two stochastic layers (Burda et al.); k > 1 trains the IWAE bound"
    defaults = {"latent_dim": 100, "top_dim": 50, "hidden": 200, "top_hidden": 100,
                "activation": "tanh", "likelihood": "bernoulli", "beta": 1.0, "k": 1,
                "batch_size": 100, "lr": 1e-3, "lr_schedule": "cosine", "epochs": 10,
                "eval_k": 5000, "eval_n": 10000, "eval_fid": True}

    def __init__(self, config):
        Experiment.__init__(self, config)  # not VAEExperiment's: another model
        self.model = HierarchicalVAE((config["latent_dim"], config["top_dim"]),
                                     (config["hidden"], config["top_hidden"]),
                                     config["activation"]).to(config["device"])
        self.opt = optim.Adam(self.model.parameters(), lr=config["lr"])
