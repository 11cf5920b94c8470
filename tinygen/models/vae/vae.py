"""The variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes")
and its importance-weighted bound (Burda, Grosse & Salakhutdinov 2016, "Importance
Weighted Autoencoders").

Generative model, a latent z and an image x:

    p(z) = N(0, I),     p_theta(x | z) = prod_i Bernoulli(x_i; sigmoid(g_theta(z)_i))   (binary x)
                                      or N(x; g_theta(z), sigma_x^2 I)               (grey levels)

Inference model (the encoder), a diagonal Gaussian:

    q_phi(z | x) = N(z; mu_phi(x), diag sigma_phi^2(x)),   the encoder outputs mu and log sigma^2.

The evidence lower bound (ELBO) on log p_theta(x):

    log p(x) >= ELBO(x) = E_{q(z|x)}[log p_theta(x | z)] - KL(q_phi(z | x) || p(z)),

the expected reconstruction log-likelihood minus a KL term with a closed form for two
Gaussians, 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2). A weight beta on the KL
gives the beta-VAE (Higgins et al. 2017).

Reparameterisation: z = mu + sigma * eps with eps ~ N(0, I) (``rsample``) makes z a
differentiable function of (mu, sigma), so the Monte Carlo estimate of the ELBO has
gradients with respect to the encoder's parameters.

The importance-weighted bound with k samples z_1..z_k ~ q(z | x),

    L_k(x) = E[ log (1/k) sum_i w_i ],   w_i = p_theta(x | z_i) p(z_i) / q_phi(z_i | x),

equals the ELBO for k = 1, never decreases with k, and tends to log p(x) as k grows. With
k = 5000 it estimates the test log-likelihood; training on L_k with k > 1 is the IWAE.

Symbols and code (all log-densities in nats, one per example):

    symbol              code                          shape
    x                   x                             (N, 1, 28, 28), or (N, D) with given networks
    mu, log sigma^2     mu, logvar = encode(x)        (N, d) each
    q_phi(z | x)        posterior(x)                  Independent(Normal), event (d,)
    p(z)                prior()                       Independent(Normal), event (d,)
    z                   posterior(x).rsample((k,))    (k, N, d)
    g_theta(z)          decode(z)                     (..., D) logits or means
    p_theta(x | z)      likelihood_from(decode(z))    Independent(Bernoulli or Normal), event (D,)
    ELBO terms          elbo(x)                       (N,) log p(x|z) and (N,) KL
    log w_i             log_weights(x, k)             (k, N)
    L_k                 iwae_bound(x, k)              (N,)
"""
from __future__ import annotations

import numpy as np

from ... import nn, no_grad
from ...distributions import Independent, Normal, kl_divergence
from ..networks import ConvDecoder, ConvEncoder, glorot_init_, mlp
from .common import activation as activation_class
from .common import (bernoulli_pixels, diagonal_normal, importance_weighted_bound,
                     module_device, pixel_marginal_logits, set_bias, split_gaussian_params,
                     standard_normal)

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(nn.Module):
    """A VAE on 28x28 images (or on vectors, with the networks given).

    Args:
        latent_dim: d, the size of z.
        hidden: width of the hidden layers ("mlp": two layers of it, as in Burda et al.).
        likelihood: "bernoulli" (binary x; the decoder gives logits) or "gaussian" (x in
            [0, 1]; the decoder gives the mean, with a learned scalar log sigma_x).
        network: "mlp" (Glorot-initialised, as in Burda et al.) or "conv".
        activation: of the MLP's hidden layers, "tanh", "relu" or "softplus".
        data_dim: D, the number of pixels (784).
        encoder, decoder: modules to use instead (e.g. a linear model whose exact
            posterior is known): encoder x (N, D) -> (N, 2d) = [mu, log sigma^2],
            decoder z (M, d) -> (M, D).

    Raises ValueError for an unknown likelihood, network or activation, or for only one
    of encoder and decoder.
    """

    def __init__(self, latent_dim: int = 50, hidden: int = 200, likelihood: str = "bernoulli",
                 network: str = "mlp", activation: str = "tanh", data_dim: int = 784,
                 encoder: nn.Module | None = None, decoder: nn.Module | None = None):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        if (encoder is None) != (decoder is None):
            raise ValueError("VAE: give both encoder and decoder, or neither")
        self.latent_dim, self.likelihood, self.data_dim = latent_dim, likelihood, data_dim
        act = activation_class(activation)
        if encoder is not None:
            self.encoder, self.decoder, network = encoder, decoder, "given"
        elif network == "mlp":  # initialised as in Burda et al. (see init_output_bias too)
            self.encoder = glorot_init_(mlp([data_dim, hidden, hidden, 2 * latent_dim], act))
            self.decoder = glorot_init_(mlp([latent_dim, hidden, hidden, data_dim], act))
        elif network == "conv":
            self.encoder = ConvEncoder(2 * latent_dim)
            self.decoder = nn.Sequential(ConvDecoder(latent_dim), nn.Flatten())
        else:
            raise ValueError(f"network must be 'mlp' or 'conv', got {network!r}")
        self.network = network
        if likelihood == "gaussian":
            self.log_sigma_x = nn.Parameter(np.zeros(1, np.float32))

    # ---- q_phi(z | x) and p(z)
    def encode(self, x):
        """x (N, 1, 28, 28) or (N, D) -> mu, log sigma^2, each (N, d)."""
        h = self.encoder(x if self.network == "conv" else x.flatten(1))
        return split_gaussian_params(h, self.latent_dim)

    def posterior(self, x) -> Independent:
        """q_phi(z | x) = N(mu, diag sigma^2), batch shape (N,), event shape (d,)."""
        return diagonal_normal(*self.encode(x))

    def prior(self) -> Independent:
        """p(z) = N(0, I) over R^d."""
        return standard_normal(self.latent_dim, device=module_device(self))

    # ---- p_theta(x | z)
    def decode(self, z):
        """z (..., d) -> the decoder's output g_theta(z) (..., D): logits (bernoulli) or
        means (gaussian)."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, self.latent_dim))
        return out.reshape(*lead, self.data_dim)

    def likelihood_from(self, out) -> Independent:
        """p_theta(x | z) from the decoder's output g_theta(z) (..., D), event shape (D,):
        Bernoulli pixels with logits ``out``, or N(out, sigma_x^2 I)."""
        if self.likelihood == "bernoulli":
            return bernoulli_pixels(out)
        return Independent(Normal(out, self.log_sigma_x.exp()), 1)

    def mean(self, out):
        """The mean of p_theta(x | z) as an image in [0, 1]: (..., 784) -> (..., 1, 28, 28)
        (28x28 images only)."""
        m = out.sigmoid() if self.likelihood == "bernoulli" else out.clip(0.0, 1.0)
        return m.reshape(*out.shape[:-1], 1, 28, 28)

    def init_output_bias(self, x_mean):
        """Make the untrained Bernoulli decoder give every pixel its frequency in the
        training data (``pixel_marginal_logits``), as Burda et al. did. x_mean: the mean
        training image. Only for the Bernoulli MLP decoder; otherwise it does nothing."""
        if self.likelihood == "bernoulli" and self.network == "mlp":
            set_bias(self.decoder[-1], pixel_marginal_logits(x_mean))

    # ---- the bounds
    def elbo(self, x):
        """The two terms of the ELBO for a batch x (N, 1, 28, 28), each (N,) in nats: the
        reconstruction term log p_theta(x | z) for one z ~ q(z|x), and KL(q(z|x) || p(z))
        in closed form. ELBO = recon - KL (the beta-VAE trains on recon - beta KL)."""
        q = self.posterior(x)
        z = q.rsample()                                                  # (N, d)
        recon = self.likelihood_from(self.decode(z)).log_prob(x.flatten(1))
        return recon, kl_divergence(q, self.prior())

    def log_weights(self, x, k: int):
        """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x) for k samples
        z_i ~ q(z|x): (k, N)."""
        q = self.posterior(x)
        z = q.rsample((k,))                                              # (k, N, d)
        log_px_z = self.likelihood_from(self.decode(z)).log_prob(x.flatten(1))
        return log_px_z + self.prior().log_prob(z) - q.log_prob(z)

    def iwae_bound(self, x, k: int, chunk: int = 500):
        """L_k(x) per example (N,), nats; see ``common.importance_weighted_bound``."""
        return importance_weighted_bound(self.log_weights, x, k, chunk)

    @no_grad()
    def sample(self, n: int):
        """n images from p(z) p_theta(x|z), shown as the means of p(x|z): (n, 1, 28, 28)
        in [0, 1]."""
        z = self.prior().sample((n,))
        return self.mean(self.decode(z))
