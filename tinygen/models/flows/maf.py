"""Masked autoregressive flow (Papamakarios, Pavlakou & Murray 2017, "Masked
Autoregressive Flow for Density Estimation").

An autoregressive model with Gaussian conditionals (section 3.1; equation numbers as in
the paper),

    p(x_i | x_{1:i-1}) = N(x_i; mu_i, (exp alpha_i)^2),
    mu_i = f_{mu_i}(x_{1:i-1}),   alpha_i = f_{alpha_i}(x_{1:i-1}),                  (3)

is a normalizing flow: it generates data from random numbers u ~ N(0, I) by

    x_i = u_i exp(alpha_i) + mu_i,                                                    (4)

and, given x, the random numbers are recovered by

    u_i = (x_i - mu_i) exp(-alpha_i).                                                 (5)

The Jacobian of (5) is triangular (u_i depends on x_i and on x_{1:i-1} only), with
diagonal exp(-alpha_i), so

    log |det du/dx| = -sum_i alpha_i.                                                 (6)

With mu and alpha computed by a Gaussian MADE (made.py), (5) and (6) take one pass of the
network: density evaluation, and so training by maximum likelihood, is fast. Sampling
(4) takes D passes, one variable at a time. (The inverse autoregressive flow of Kingma
et al. 2016 is the same layer used the other way round: fast sampling, D passes to
evaluate the density of an outside point.)

A MAF stacks K such layers, each modelling the random numbers of the one before; the
layers use different orderings (here a ``Reverse`` from layers.py or a random ``Permute``
between them, log-det 0), so that a variable that comes first in one layer is
conditioned on the others in the next. By the change of variables (base.py, eq. 1), with
x = h_0, h_k = f_k(h_{k-1}), u = h_K:

    log p(x) = log N(u; 0, I) + sum_k log |det dh_k/dh_{k-1}|.

Batch normalisation between the layers (Papamakarios et al., section 4 and their
appendix, after Dinh et al. 2017, "Density estimation using Real NVP", section 3.7) is
an invertible affine map with learned log-scale gamma and shift beta,

    y = (x - m) / sqrt(v + eps) ⊙ exp(gamma) + beta,
    log |det dy/dx| = sum_i (gamma_i - 1/2 log(v_i + eps)),                           (bn)

m and v the batch mean and variance when training, running averages in evaluation.

In this library the flow's ``forward`` is the density direction x -> u (5), as
``Flow`` asks, and ``inverse`` is the sampling direction (4). Images reach a MAF as
flattened continuous vectors (N, D), dequantised, perhaps in logit space.

Symbols and code (x, u: (N, D); log-determinants in nats, one per example):

    symbol                          code                                shape
    (5) and (6)                     MAFLayer(x)                         (N, D), (N,)
    (4), D passes                   MAFLayer.inverse(u)                 (N, D)
    mu, alpha                       MAFLayer.made.mu_alpha(x)           (N, D) each
    a change of ordering            Reverse(), Permute(pi)              (N, D), (N,) zeros
    (bn)                             BatchNormFlow(D)(x)                 (N, D), (N,)
    the stack f_K o ... o f_1       MAF(D, hidden_sizes, K)             a SequentialFlow
    log p(x)                        NormalizingFlow(MAF(...), (D,)).log_prob(x)   (N,)
"""
from __future__ import annotations

import numbers

import numpy as np

from ... import backend, nn, zeros
from ...autograd import Tensor, mark_modified
from ...nn.module import _check_eps, _check_size
from .base import Flow, SequentialFlow
from .layers import Reverse
from .made import GaussianMADE

__all__ = ["MAFLayer", "Permute", "BatchNormFlow", "MAF", "PERMUTATIONS"]

PERMUTATIONS = ("reverse", "random")


def _log_det_for_batch(log_det, x):
    """A log-determinant that is the same for every example, shape (), as (N,)."""
    return log_det.reshape(1).broadcast_to((x.shape[0],))


def _check_vectors(owner, x, D):
    if x.ndim != 2 or x.shape[1] != D:
        raise ValueError(f"{owner}: expected input (N, {D}), got shape {x.shape}")


class MAFLayer(Flow):
    """One MAF layer: x -> u by (5), log-det (6), in one pass of a Gaussian MADE; its
    inverse u -> x by (4) in D passes.

    Args:
        num_inputs: D >= 1.
        hidden_sizes: the MADE's hidden layers (H_1, ..., H_L).
        ordering: the MADE's ordering, "natural" or "random".
        seed: the MADE's mask seed (see MADE).
        activation: "relu" or "tanh".

    forward(x): x (N, D) -> (u (N, D), log |det du/dx| (N,), nats).
    inverse(u): u (N, D) -> x (N, D).

    Raises:
        ValueError: bad sizes, ordering or activation (from MADE); an input not (N, D).

    alpha is softly bounded to (-10, 10) by ``GaussianMADE.mu_alpha`` (far from the data a
    ReLU network's alpha grows without limit, and exp(-alpha) overflowed there); the
    layer stays exactly invertible, with the log-det -sum alpha of the bounded alpha.
    """

    def __init__(self, num_inputs: int, hidden_sizes=(), ordering: str = "natural",
                 seed: int = 0, activation: str = "relu"):
        super().__init__()
        self.made = GaussianMADE(num_inputs, hidden_sizes, ordering=ordering, seed=seed,
                                 activation=activation)

    @property
    def num_inputs(self) -> int:
        """D, the number of variables."""
        return self.made.num_inputs

    def forward(self, x):
        """u = (x - mu) exp(-alpha) (5) and log |det du/dx| = -sum_i alpha_i (6), one pass:
        x (N, D) -> (u (N, D), log_det (N,) in nats). Raises ValueError if x is not (N, D)."""
        return self.made.u_from_x(x)

    def inverse(self, u):
        """x_i = u_i exp(alpha_i) + mu_i (4), D passes: u (N, D) -> x (N, D).
        Raises ValueError if u is not (N, D)."""
        return self.made.x_from_u(u)


class Permute(Flow):
    """y = x[:, pi]: reorder the D variables (log |det| = 0, a permutation matrix has
    determinant +-1); inverse x = y[:, pi^{-1}].

    Args:
        permutation: pi, a sequence holding each of 0..D-1 once; y_j = x_{pi(j)}.

    forward(x): (N, D) -> ((N, D), zeros (N,)). The permutation is an int64 buffer, so
    it is saved with the model and moves with ``.to(device)``.

    Raises:
        ValueError: permutation is not a permutation of 0..D-1 (D >= 1); an input that
            is not (N, D).
    """

    def __init__(self, permutation):
        super().__init__()
        pi = np.asarray(permutation)
        D = pi.size
        if pi.ndim != 1 or D < 1 or pi.dtype.kind not in "iu" \
                or not np.array_equal(np.sort(pi), np.arange(D)):
            raise ValueError(f"{type(self).__name__}: expected a permutation of 0..D-1 "
                             f"(D >= 1), got {permutation!r}")
        self.num_inputs = D
        self.register_buffer("permutation", Tensor(pi.astype(np.int64)))
        self.register_buffer("inverse_permutation", Tensor(np.argsort(pi).astype(np.int64)))

    def forward(self, x):
        _check_vectors(type(self).__name__, x, self.num_inputs)
        return x[:, self.permutation], zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def inverse(self, y):
        _check_vectors(type(self).__name__, y, self.num_inputs)
        return y[:, self.inverse_permutation]

    def extra_repr(self):
        return f"{self.permutation.tolist()}"


class BatchNormFlow(Flow):
    """Batch normalisation as a flow layer, (bn):
    y = (x - m) / sqrt(v + eps) ⊙ exp(gamma) + beta, log |det dy/dx| = sum_i (gamma_i -
    1/2 log(v_i + eps)). x: (N, D) -> (y (N, D), log_det (N,), nats).

    Training mode: m, v are the batch mean and (biased, 1/N) variance, differentiated
    through as in ordinary batch norm; the log-det (bn) treats them as constants, so it
    is the log-det of the affine map this batch defines (Dinh et al. 2017, section 3.7).
    The running averages, running = (1 - momentum) running + momentum * batch, are
    updated with the same biased variance, so that evaluation uses the map training
    converged to. Evaluation mode: the running averages; a fixed affine map, whose
    inverse is exact.

    inverse(y) = (y - beta) exp(-gamma) sqrt(v + eps) + m, with the statistics the last
    forward call used in training mode (so inverse(forward(x)) == x), the running ones
    otherwise (and in training mode before any forward call).

    Args:
        num_inputs: D >= 1.
        momentum: in [0, 1], the weight of each batch in the running averages.
        eps: >= 0, added to the variance.

    Raises:
        ValueError: num_inputs < 1, momentum outside [0, 1], eps < 0; an input that is
            not (N, D); a training batch with N < 2 (no variance to estimate).
    """

    def __init__(self, num_inputs: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        name = type(self).__name__
        D = _check_size(name, "num_inputs", num_inputs)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) \
                or not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be a number in [0, 1], got {momentum!r}")
        _check_eps(name, eps)
        self.num_inputs, self.momentum, self.eps = D, float(momentum), float(eps)
        self.log_gamma = nn.Parameter(Tensor(np.zeros(D, dtype=np.float32)))
        self.beta = nn.Parameter(Tensor(np.zeros(D, dtype=np.float32)))
        self.register_buffer("running_mean", Tensor(np.zeros(D, dtype=np.float32)))
        self.register_buffer("running_var", Tensor(np.ones(D, dtype=np.float32)))
        self._batch_stats = None  # (m, v) arrays of the last training batch, for inverse

    def forward(self, x):
        name = type(self).__name__
        _check_vectors(name, x, self.num_inputs)
        if self.training:
            if x.shape[0] < 2:
                raise ValueError(f"{name}: training needs a batch of at least 2 examples, "
                                 f"got shape {x.shape}")
            m = x.mean(axis=0)
            v = ((x - m) ** 2).mean(axis=0)
            mom = self.momentum
            for run, stat in ((self.running_mean, m), (self.running_var, v)):
                run.data *= 1 - mom
                run.data += mom * stat.data.astype(run.dtype, copy=False)
            mark_modified(self.running_mean, self.running_var)
            self._batch_stats = (m.data.copy(), v.data.copy())
        else:
            m, v = self.running_mean, self.running_var
        log_std = 0.5 * (v + self.eps).log()
        y = (x - m) * (self.log_gamma - log_std).exp() + self.beta
        return y, _log_det_for_batch((self.log_gamma - log_std).sum(), x)

    def inverse(self, y):
        _check_vectors(type(self).__name__, y, self.num_inputs)
        if self.training and self._batch_stats is not None:
            m, v = (Tensor(backend.to_device(s, y.device)) for s in self._batch_stats)
        else:
            m, v = self.running_mean, self.running_var
        log_std = 0.5 * (v + self.eps).log()
        return (y - self.beta) * (log_std - self.log_gamma).exp() + m

    def extra_repr(self):
        return f"{self.num_inputs}, momentum={self.momentum}, eps={self.eps}"


class MAF(SequentialFlow):
    """A masked autoregressive flow: K MAF layers, the ordering changed between them,
    optionally batch norm after each (module docstring). Wrap it as
    ``NormalizingFlow(MAF(D, ...), (D,))`` for log p(x) and sampling.

    Args:
        num_inputs: D >= 1.
        hidden_sizes: each MADE's hidden layers, e.g. (100, 100).
        num_layers: K >= 1.
        permutation: between layers, "reverse" (as Papamakarios et al. do) or "random"
            (drawn from ``numpy.random.default_rng([seed, k])``).
        batch_norm: a BatchNormFlow after each MAF layer (as in the paper's experiments).
        seed: layer k's MADE uses mask seed seed + k.
        activation: "relu" or "tanh".

    forward(x): (N, D) -> (u (N, D), log |det du/dx| (N,), nats); inverse(u) -> x.

    Raises:
        ValueError: a size < 1, an unknown permutation, ordering or activation.
        TypeError: a size is not an integer.
    """

    def __init__(self, num_inputs: int, hidden_sizes=(), num_layers: int = 5,
                 permutation: str = "reverse", batch_norm: bool = False, seed: int = 0,
                 activation: str = "relu"):
        D = _check_size("MAF", "num_inputs", num_inputs)
        K = _check_size("MAF", "num_layers", num_layers)
        if permutation not in PERMUTATIONS:
            raise ValueError(f"MAF: permutation must be one of {', '.join(PERMUTATIONS)}, got "
                             f"{permutation!r}")
        layers = []
        for k in range(K):
            if k > 0:
                if permutation == "reverse":
                    layers.append(Reverse())
                else:
                    layers.append(Permute(np.random.default_rng([int(seed), k]).permutation(D)))
            layers.append(MAFLayer(D, hidden_sizes, seed=int(seed) + k, activation=activation))
            if batch_norm:
                layers.append(BatchNormFlow(D))
        super().__init__(*layers)
        self.num_inputs, self.num_layers = D, K
