"""What the VAE family shares: its distributions, the importance-weighted bound, and the
initialisation of Burda, Grosse & Salakhutdinov (2016).

The distributions, as ``tinygen.distributions`` objects (``Independent(..., 1)`` reads the
last axis as one event, so ``log_prob`` is one number per example):

    p(z)          = N(0, I)                        standard_normal(d)
    q_phi(z | x)  = N(mu, diag sigma^2)            diagonal_normal(mu, log sigma^2)
    p_theta(x | z) = prod_i Bernoulli(x_i; sigmoid(l_i))     bernoulli_pixels(l)

The importance-weighted bound with k samples z_1..z_k ~ q(z | x) (Burda et al. eq. 8):

    L_k(x) = E_{z_1..z_k ~ q}[ log (1/k) sum_i w_i ],   log w_i = log p(x, z_i) - log q(z_i | x),

the ELBO for k = 1, never smaller for larger k, and tending to log p(x) as k grows.
``importance_weighted_bound`` returns the one-draw estimate log (1/k) sum_i w_i.

The distributions here are built from the model's own outputs, not from a user's input,
so their arguments are not checked (validate_args=False): a diverging network shows as a
non-finite loss, which the training loop stops at, naming the step; and a GPU need not
wait for a check on every call.
"""
from __future__ import annotations

import math

import numpy as np

from ... import backend, nn
from ...distributions import Bernoulli, Independent, Normal
from ...autograd import mark_modified
from ...creation import zeros
from ...ops import cat, logsumexp

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}


def activation(name: str):
    """The activation module class called ``name`` ("tanh", "relu" or "softplus").

    Raises ValueError naming the choices for another name."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def split_gaussian_params(h, d: int):
    """An encoder's output h (..., 2d) -> mu and log sigma^2, each (..., d)."""
    return h[..., :d], h[..., d:]


# --------------------------------------------------------------------------- distributions

def diagonal_normal(mu, logvar) -> Independent:
    """N(mu, diag sigma^2) over the last axis, from mu and logvar = log sigma^2, each
    (..., d): the encoder's q_phi(z | x). Its ``rsample`` is the reparameterisation
    z = mu + sigma * eps, eps ~ N(0, I). Not checked (see the module docstring)."""
    return Independent(Normal(mu, (0.5 * logvar).exp(), validate_args=False), 1)


def standard_normal(d: int, device: str = "cpu") -> Independent:
    """The prior p(z) = N(0, I) over R^d (batch shape (), event shape (d,))."""
    return Independent(Normal(zeros(d, device=device), 1.0), 1)


def bernoulli_pixels(logits) -> Independent:
    """p_theta(x | z) for binary pixels: independent Bernoulli(sigmoid(l_i)) over the last
    axis of the decoder's logits l (..., D); log_prob(x) = sum_i x_i l_i - softplus(l_i),
    exact for any logit. Not checked (see the module docstring)."""
    return Independent(Bernoulli(logits=logits, validate_args=False), 1)


# --------------------------------------------------------------------------- the bound

def importance_weighted_bound(log_weights, x, k: int, chunk: int = 500):
    """One draw of log (1/k) sum_i w_i per example, (N,), in nats: an unbiased estimate of
    the bound L_k(x).

    Args:
        log_weights: a function (x, k) -> (k, N) of log w_i = log p(x, z_i) - log q(z_i|x)
            for k fresh samples z_i ~ q(z | x).
        x: the batch, whatever ``log_weights`` reads.
        k: the number of importance samples (5000 to estimate log p(x) on test data).
        chunk: samples drawn at a time; the chunks' log-sums are combined with logsumexp,
            so k = 5000 fits in memory.

    Differentiable: minimising -L_k trains the IWAE. log-sum-exp keeps it finite where
    the w_i themselves under- or overflow.
    """
    if k <= chunk:
        return logsumexp(log_weights(x, k), axis=0) - math.log(k)
    parts = [logsumexp(log_weights(x, min(chunk, k - i)), axis=0, keepdims=True)
             for i in range(0, k, chunk)]
    return logsumexp(cat(parts, axis=0), axis=0) - math.log(k)


# --------------------------------------------------------------------------- initialisation

def pixel_marginal_logits(x_mean, eps: float = 1e-3):
    """logit(m) = log(m / (1 - m)) of the mean training image m, clipped to [eps, 1 - eps]:
    (D,). As the output bias of a Bernoulli decoder it starts training at the model of
    independent pixels, each with its frequency in the data, instead of at 1/2 for every
    pixel (about 206 nats per MNIST digit instead of 543), as Burda et al. did."""
    m = np.clip(np.asarray(x_mean, dtype=np.float64).reshape(-1), eps, 1 - eps)
    return np.log(m / (1 - m)).astype(np.float32)


def module_device(module: nn.Module) -> str:
    """The device of a module's parameters ("cpu" or "cuda")."""
    return next(iter(module.parameters())).device


def set_bias(layer, values) -> None:
    """Overwrite a Linear layer's bias with ``values`` (on the layer's device)."""
    xp = backend.get_array_module(layer.bias.data)
    layer.bias.data[...] = xp.asarray(values, dtype=layer.bias.data.dtype)
    mark_modified(layer.bias)
