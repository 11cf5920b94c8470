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

Symbols and code (log-densities in nats, one per example):

    symbol                       code                    shape
    q(z1 | x), q(z2 | z1)        q_z1(x), q_z2(z1)       Independent(Normal), events (d1,), (d2,)
    p(z2), p(z1 | z2), p(x | z1) prior(), p_z1(z2), p_x(z1)   events (d2,), (d1,), (784,)
    z1, z2                       z1, z2                  (k, N, d1), (k, N, d2)
    log w                        log_weights(x, k)       (k, N)
"""
from __future__ import annotations

from ... import nn, no_grad
from ...distributions import Independent
from ..networks import glorot_init_, mlp
from .common import activation as activation_class
from .common import (bernoulli_pixels, diagonal_normal, importance_weighted_bound,
                     module_device, pixel_marginal_logits, set_bias, split_gaussian_params,
                     standard_normal)


class GaussianLayer(nn.Module):
    """An MLP h (..., in_dim) -> a diagonal Gaussian N(mu(h), diag sigma^2(h)) over
    out_dim: in_dim -> hidden -> hidden -> (mu, log sigma^2)."""

    def __init__(self, in_dim, hidden, out_dim, activation):
        super().__init__()
        self.out_dim = out_dim
        self.net = mlp([in_dim, hidden, hidden, 2 * out_dim], activation)

    def params(self, h):
        """mu and log sigma^2, each (..., out_dim)."""
        return split_gaussian_params(self.net(h), self.out_dim)

    def forward(self, h) -> Independent:
        """The Gaussian N(mu(h), diag sigma^2(h)): batch shape (...), event (out_dim,)."""
        return diagonal_normal(*self.params(h))


class HierarchicalVAE(nn.Module):
    """Two stochastic layers z1 (latent_dims[0]) and z2 (latent_dims[1]) over 784 pixels.

    Args:
        latent_dims: (d1, d2), the sizes of z1 and z2 (100, 50 in the paper).
        hidden: (h1, h2), the widths of the MLPs next to x and next to z2.
        activation: "tanh", "relu" or "softplus".

    Raises ValueError for an unknown activation.
    """

    def __init__(self, latent_dims=(100, 50), hidden=(200, 100), activation="tanh"):
        super().__init__()
        act = activation_class(activation)
        (d1, d2), (h1, h2) = latent_dims, hidden
        self.latent_dim, self.top_dim = d1, d2
        self.q_z1 = GaussianLayer(784, h1, d1, act)      # q(z1 | x)
        self.q_z2 = GaussianLayer(d1, h2, d2, act)       # q(z2 | z1)
        self.p_z1 = GaussianLayer(d2, h2, d1, act)       # p(z1 | z2)
        self.decoder = mlp([d1, h1, h1, 784], act)       # the logits of p(x | z1)
        self.likelihood = "bernoulli"
        glorot_init_(self)  # as in Burda et al. (with init_output_bias)

    def init_output_bias(self, x_mean):
        """Start p(x | z1) at the pixels' frequencies in the data (pixel_marginal_logits)."""
        set_bias(self.decoder[-1], pixel_marginal_logits(x_mean))

    def prior(self) -> Independent:
        """p(z2) = N(0, I)."""
        return standard_normal(self.top_dim, device=module_device(self))

    # The names the VAE's pictures use: encode to, and decode from, z1.
    def encode(self, x):
        """The mean and log-variance of q(z1 | x), each (N, d1)."""
        return self.q_z1.params(x.flatten(1))

    def decode(self, z1):
        """The logits of p(x | z1): (..., d1) -> (..., 784)."""
        lead = z1.shape[:-1]
        return self.decoder(z1.reshape(-1, self.latent_dim)).reshape(*lead, 784)

    def p_x(self, z1) -> Independent:
        """p(x | z1): independent Bernoulli pixels, event (784,)."""
        return bernoulli_pixels(self.decode(z1))

    def mean(self, logits):
        """The mean of p(x | z1) as images in [0, 1]: (..., 784) -> (..., 1, 28, 28)."""
        return logits.sigmoid().reshape(*logits.shape[:-1], 1, 28, 28)

    def log_terms(self, x, k: int):
        """For k samples z1 ~ q(z1|x), z2 ~ q(z2|z1): log p(x | z1) and the whole log w,
        each (k, N)."""
        x = x.flatten(1)
        q_z1 = self.q_z1(x)
        z1 = q_z1.rsample((k,))                                     # (k, N, d1)
        q_z2 = self.q_z2(z1)
        z2 = q_z2.rsample()                                         # (k, N, d2)
        log_px = self.p_x(z1).log_prob(x)
        log_p = log_px + self.p_z1(z2).log_prob(z1) + self.prior().log_prob(z2)
        log_q = q_z1.log_prob(z1) + q_z2.log_prob(z2)
        return log_px, log_p - log_q

    def log_weights(self, x, k: int):
        """log w for k samples (z1, z2) ~ q(z1|x) q(z2|z1): (k, N)."""
        return self.log_terms(x, k)[1]

    def elbo(self, x):
        """One-sample estimates of the reconstruction term log p(x | z1) and of the KL
        of q(z1, z2 | x) from the prior p(z1, z2), each (N,): ELBO = recon - KL. (No
        closed form here: the KL is a Monte Carlo estimate from the same sample.)"""
        log_px, log_w = self.log_terms(x, 1)
        return log_px[0], log_px[0] - log_w[0]

    def iwae_bound(self, x, k: int, chunk: int = 500):
        """L_k(x) per example (N,), nats; see ``common.importance_weighted_bound``."""
        return importance_weighted_bound(self.log_weights, x, k, chunk)

    @no_grad()
    def sample(self, n: int):
        """z2 ~ N(0, I), z1 ~ p(z1 | z2), shown as the mean of p(x | z1): (n, 1, 28, 28)."""
        z2 = self.prior().sample((n,))
        z1 = self.p_z1(z2).sample()
        return self.mean(self.decode(z1))
