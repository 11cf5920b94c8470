"""The conditional VAE (Sohn, Lee & Yan 2015): a VAE whose encoder and decoder both see
the label y, so that it can generate a chosen class.

    p(z) = N(0, I),   p_theta(x | z, y) = Bernoulli(x; sigmoid(g_theta(z, y))),
    q_phi(z | x, y) = N(z; mu_phi(x, y), diag sigma_phi^2(x, y)),

    log p(x | y) >= E_{q(z|x,y)}[log p_theta(x | z, y)] - KL(q_phi(z | x, y) || p(z)).

Sohn et al. write the bound for an output y given an input x, log p(y | x) >= E_q(z|x,y)
[log p(y | x, z)] - KL(q(z | x, y) || p(z | x)), with a conditional prior. Here the roles
are those of generating a chosen digit: the label y is the condition and the image x the
output, and the prior is the plain p(z) = N(0, I), the simplification the paper also
discusses (as in Kingma et al. 2014's M2 model).

y enters as a one-hot vector concatenated to the flattened image (encoder) and to z
(decoder). To draw a digit of class y: z ~ N(0, I), then x ~ p_theta(x | z, y). Since z
no longer needs to carry the class, it is free to carry the style (slant, thickness),
which the class-conditional rows of its pictures show: each column one z, each row one
class.

Symbols and code (log-densities in nats, one per example):

    symbol               code                   shape
    x, y                 x, y                   (N, 1, 28, 28), (N,) integer labels
    q_phi(z | x, y)      posterior(x, y)        Independent(Normal), event (d,)
    p(z)                 prior()                Independent(Normal), event (d,)
    p_theta(x | z, y)    likelihood(z, y)       Independent(Bernoulli), event (784,)
    ELBO terms           elbo(x, y)             (N,) log p(x|z,y) and (N,) KL
"""
from __future__ import annotations

import numpy as np

from ... import backend, nn, no_grad, tensor
from ...autograd import Tensor
from ...distributions import Independent, kl_divergence
from ...nn import functional as F
from ...ops import cat
from ..networks import mlp
from .common import activation as activation_class
from .common import (bernoulli_pixels, diagonal_normal, module_device, split_gaussian_params,
                     standard_normal)


class ConditionalVAE(nn.Module):
    """x (N, 1, 28, 28), y (N,) integer labels; latent size d; MLP encoder and decoder.

    Args:
        latent_dim: d.
        hidden: the width of the two hidden layers of each MLP.
        num_classes: the number of labels (10).
        activation: "relu", "tanh" or "softplus".
    """

    def __init__(self, latent_dim: int = 20, hidden: int = 400, num_classes: int = 10,
                 activation: str = "relu"):
        super().__init__()
        act = activation_class(activation)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.encoder = mlp([784 + num_classes, hidden, hidden, 2 * latent_dim], act)
        self.decoder = mlp([latent_dim + num_classes, hidden, hidden, 784], act)

    def one_hot(self, y):
        """Labels y (N,) (a Tensor or array) -> one-hot vectors (N, num_classes)."""
        labels = y.data if isinstance(y, Tensor) else y
        one_hot = F.one_hot(tensor(backend.to_numpy(labels)), self.num_classes)
        return one_hot.to(module_device(self))

    def encode(self, x, y):
        """mu, log sigma^2 of q(z | x, y), each (N, d)."""
        h = self.encoder(cat([x.flatten(1), self.one_hot(y)], axis=1))
        return split_gaussian_params(h, self.latent_dim)

    def posterior(self, x, y) -> Independent:
        """q_phi(z | x, y) = N(mu, diag sigma^2)."""
        return diagonal_normal(*self.encode(x, y))

    def prior(self) -> Independent:
        """p(z) = N(0, I) over R^d."""
        return standard_normal(self.latent_dim, device=module_device(self))

    def decode(self, z, y):
        """The logits of p(x | z, y): (N, 784)."""
        return self.decoder(cat([z, self.one_hot(y)], axis=1))

    def likelihood(self, z, y) -> Independent:
        """p_theta(x | z, y): independent Bernoulli pixels, event (784,)."""
        return bernoulli_pixels(self.decode(z, y))

    def elbo(self, x, y):
        """The reconstruction term log p(x | z, y) (one z ~ q) and KL(q(z|x,y) || p(z)),
        each (N,) in nats."""
        q = self.posterior(x, y)
        z = q.rsample()
        return self.likelihood(z, y).log_prob(x.flatten(1)), kl_divergence(q, self.prior())

    @no_grad()
    def sample(self, y):
        """One image of each requested class y (n,) -> (n, 1, 28, 28) in [0, 1], the means
        of p(x | z, y) for z ~ N(0, I)."""
        y = np.asarray(y)
        z = self.prior().sample((len(y),))
        return self.decode(z, y).sigmoid().reshape(-1, 1, 28, 28)
