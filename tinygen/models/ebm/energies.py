"""Energies: the networks E_theta(x) of an energy-based model, and one whose partition
function is known.

An energy-based model puts a density on x through an energy E_theta(x), any function
to the real numbers, low where data is likely:

    p_theta(x) = exp(-E_theta(x)) / Z(theta),    Z(theta) = int exp(-E_theta(x)) dx.   (1)

Z is an integral over the whole space: for a neural E it is intractable, which is why
EBMs are trained by sampling (langevin.py) or by score matching (score_matching.py),
neither of which needs it. Every energy here is an ``nn.Module`` whose call is the
energy, E(x) = module(x): x (n, ...) -> (n,), one number per example.

The quadratic energy (the exponential family's Gaussian),

    E(x) = 1/2 (x - m)^T A (x - m),      A symmetric positive definite,             (2)

is the one case of (1) that is known in closed form: p_theta = N(m, A^{-1}) and

    log Z = D/2 log 2 pi - 1/2 log det A.                                            (3)

``GaussianEnergy`` parameterises it so that A is always positive definite: A = L L^T,
L lower-triangular with a positive diagonal exp(l) (the Cholesky factor; every positive
definite A has exactly one, so nothing is lost), and then

    E(x) = 1/2 || L^T (x - m) ||^2,   log det A = 2 sum_i l_i,
    exact samples x = m + L^{-T} xi, xi ~ N(0, I)   (Cov = L^{-T} L^{-1} = (L L^T)^{-1}).

The tests use it where an exact answer is needed: Langevin dynamics against the known
moments, the contrastive gradient against the analytic gradient of the log-likelihood,
score matching against its closed form.

Symbols and code (x: (n, D) for the Gaussian, (n, 2) for the toy sets, (n, 1, 28, 28)
for images):

    symbol                     code                                     shape
    E_theta(x)                 energy(x), any module below              (n,)
    m, A = L L^T, L            GaussianEnergy.mean, .precision, .cholesky  (D,), (D, D)
    log Z (3)                  GaussianEnergy.log_partition()           ()
    log p_theta(x)             GaussianEnergy.log_prob(x)               (n,)
    (2) for any m, A           quadratic_energy(x, m, A)                (n,)
"""
from __future__ import annotations

import math

import numpy as np

from ... import backend, no_grad, randn, solve_triangular
from ...autograd import Tensor
from ... import nn
from ...nn.module import _check_size

__all__ = ["GaussianEnergy", "MLPEnergy", "ConvEnergy", "quadratic_energy"]


def _energies(energy, x, caller):
    """energy(x) as a Tensor (n,): an energy may return (n,) or (n, 1) (a network ending
    in Linear(., 1)); anything else is a mistake that a .sum() would hide."""
    e = energy(x)
    if not isinstance(e, Tensor):
        raise TypeError(f"{caller}: the energy returned a {type(e).__name__}, expected a "
                        "Tensor of shape (n,)")
    n = x.shape[0]
    if e.shape == (n, 1):
        e = e.reshape(n)
    if e.shape != (n,):
        raise ValueError(f"{caller}: the energy of a batch of shape {x.shape} has shape "
                         f"{e.shape}; expected one energy per example, ({n},) or ({n}, 1)")
    return e


def quadratic_energy(x, mean, precision):
    """E(x) = 1/2 (x - m)^T A (x - m), eq. (2), for any mean m (D,) and matrix A (D, D)
    (symmetric positive definite for a normalisable density; not checked, so that a
    test can differentiate with respect to an unconstrained A). x: (n, D) -> (n,).

    Raises:
        ValueError: the shapes of x, m and A do not agree (names all three).
    """
    D = mean.shape[-1]
    if x.ndim != 2 or x.shape[1] != D or precision.shape != (D, D) or mean.shape != (D,):
        raise ValueError(f"quadratic_energy: x {x.shape}, mean {mean.shape} and precision "
                         f"{precision.shape} do not agree; expected (n, D), (D,), (D, D)")
    u = x - mean
    return 0.5 * ((u @ precision) * u).sum(axis=1)


class GaussianEnergy(nn.Module):
    """The quadratic energy (2) with learnable mean m and precision A = L L^T: an EBM
    whose partition function (3), log density and exact samples are all known.

    Parameters (module docstring): ``m`` (D,); ``lower`` (D, D), of which only the
    strict lower triangle is used (the rest gets a zero gradient); ``log_diag`` (D,),
    the log of L's diagonal. Initialised to m = 0, A = I (the standard normal).

    Args:
        dim: D >= 1.
    Raises:
        TypeError, ValueError: dim is not an integer >= 1.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = _check_size(type(self).__name__, "dim", dim)
        self.m = nn.Parameter(np.zeros(self.dim, dtype=np.float32))
        self.lower = nn.Parameter(np.zeros((self.dim, self.dim), dtype=np.float32))
        self.log_diag = nn.Parameter(np.zeros(self.dim, dtype=np.float32))

    @classmethod
    def from_mean_precision(cls, mean, precision, dtype=None) -> "GaussianEnergy":
        """A GaussianEnergy with the given m (D,) and A (D, D) (arrays, Tensors or lists),
        on the CPU; L is A's Cholesky factor. dtype: of the parameters; by default
        float64 if mean or precision is a float64 array or Tensor, else float32.

        Raises:
            ValueError: the shapes disagree, or A is not symmetric positive definite.
        """
        def as_array(a):
            return a.numpy() if isinstance(a, Tensor) else a

        mean, precision = as_array(mean), as_array(precision)
        if dtype is None:
            wide = any(getattr(a, "dtype", None) == np.float64 for a in (mean, precision))
            dtype = np.float64 if wide else np.float32
        dtype = np.dtype(dtype)
        m = np.asarray(mean, dtype=np.float64)
        A = np.asarray(precision, dtype=np.float64)
        if m.ndim != 1 or A.shape != (m.shape[0], m.shape[0]):
            raise ValueError(f"GaussianEnergy.from_mean_precision: mean {m.shape} and "
                             f"precision {A.shape}; expected (D,) and (D, D)")
        if not np.allclose(A, A.T, rtol=1e-6, atol=1e-12 * np.abs(A).max(initial=0.0)):
            raise ValueError("GaussianEnergy.from_mean_precision: the precision is not "
                             "symmetric")
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            raise ValueError("GaussianEnergy.from_mean_precision: the precision is not "
                             "positive definite") from None
        model = cls(m.shape[0])
        model.m.data = m.astype(dtype)
        model.lower.data = np.tril(L, -1).astype(dtype)
        model.log_diag.data = np.log(np.diag(L)).astype(dtype)
        return model

    # ---- the parameters as the math names them
    @property
    def mean(self) -> Tensor:
        """m: (D,)."""
        return self.m

    @property
    def cholesky(self) -> Tensor:
        """L = strict_lower(lower) + diag(exp(log_diag)): (D, D), lower-triangular with a
        positive diagonal; differentiable."""
        xp = backend.get_array_module(self.lower)
        D = self.dim
        strict = Tensor(xp.tril(xp.ones((D, D), dtype=self.lower.dtype), -1))
        eye = Tensor(xp.eye(D, dtype=self.lower.dtype))
        return self.lower * strict + eye * self.log_diag.exp()  # eye * row = diagonal

    @property
    def precision(self) -> Tensor:
        """A = L L^T: (D, D), symmetric positive definite; differentiable."""
        L = self.cholesky
        return L @ L.T

    @property
    def covariance(self) -> Tensor:
        """A^{-1} = L^{-T} L^{-1}: (D, D); differentiable."""
        L = self.cholesky
        xp = backend.get_array_module(self.lower)
        Linv = solve_triangular(L, Tensor(xp.eye(self.dim, dtype=self.lower.dtype)))
        return Linv.T @ Linv

    # ---- the density
    def _check_input(self, x):
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{type(self).__name__}: expected input (n, {self.dim}), got "
                             f"shape {x.shape}")

    def forward(self, x):
        """E(x) = 1/2 || L^T (x - m) ||^2: x (n, D) -> (n,).

        Raises:
            ValueError: x is not (n, D).
        """
        self._check_input(x)
        v = (x - self.m) @ self.cholesky  # row i: (L^T (x_i - m))^T
        return 0.5 * (v * v).sum(axis=1)

    energy = forward

    def log_partition(self) -> Tensor:
        """log Z = D/2 log 2 pi - 1/2 log det A = D/2 log 2 pi - sum_i l_i, eq. (3): a
        scalar Tensor, differentiable."""
        return 0.5 * self.dim * math.log(2 * math.pi) - self.log_diag.sum()

    def log_prob(self, x):
        """log p(x) = -E(x) - log Z = log N(x; m, A^{-1}): x (n, D) -> (n,), nats.

        Raises:
            ValueError: x is not (n, D).
        """
        return -self(x) - self.log_partition()

    def sample(self, n: int):
        """n exact draws x = m + L^{-T} xi, xi ~ N(0, I): (n, D), no gradient.

        Raises:
            ValueError: n < 1.
        """
        n = _check_size(f"{type(self).__name__}.sample", "n", n)
        with no_grad():
            L = self.cholesky
            xi = randn(self.dim, n, dtype=self.m.dtype, device=self.m.device)
            # L^T is upper-triangular: back substitution, one column per sample
            z = solve_triangular(L.T, xi, lower=False)
            return z.T + self.m

    def extra_repr(self):
        return f"dim={self.dim}"


class MLPEnergy(nn.Module):
    """E(x) = MLP(x), a SiLU network to one number, for points in R^dim (the 2-D toy
    sets). SiLU rather than ReLU: it is smooth, so the energy's gradient (the Langevin
    drift) is continuous and its second derivatives (score matching) are not zero
    almost everywhere. x: (n, dim) -> (n,).

    Args:
        dim: the input size D >= 1.
        hidden: the width of the hidden layers, >= 1.
        num_layers: the number of Linear layers, >= 1 (num_layers - 1 hidden layers).
    Raises:
        TypeError, ValueError: a size is not an integer >= 1; an input is not (n, dim).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, num_layers: int = 3):
        super().__init__()
        name = type(self).__name__
        self.dim = _check_size(name, "dim", dim)
        self.hidden = _check_size(name, "hidden", hidden)
        self.num_layers = _check_size(name, "num_layers", num_layers)
        sizes = [self.dim] + [self.hidden] * (self.num_layers - 1) + [1]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{type(self).__name__}: expected input (n, {self.dim}), got "
                             f"shape {x.shape}")
        return self.net(x).reshape(x.shape[0])

    energy = forward

    def extra_repr(self):
        return f"dim={self.dim}, hidden={self.hidden}, num_layers={self.num_layers}"


class ConvEnergy(nn.Module):
    """The convolutional energy for 28x28 images in [-1, 1] (the network of the EBM
    benchmark, benchmarks/workloads/ebm.py, when width = 32; a smaller relative of the
    short-run EBMs' networks of Nijkamp et al. 2019, with SiLU for their leaky ReLU):

        Conv2d(C, w, 3, 1, 1), SiLU,           (n, w, 28, 28)
        Conv2d(w, 2w, 4, 2, 1), SiLU,          (n, 2w, 14, 14)
        Conv2d(2w, 2w, 4, 2, 1), SiLU,         (n, 2w, 7, 7)
        Flatten, Linear(2w * 7 * 7, 1)         (n, 1) -> (n,)

    x: (n, channels, 28, 28) -> (n,).

    Args:
        channels: C >= 1, the image channels.
        width: w >= 1.
    Raises:
        TypeError, ValueError: a size is not an integer >= 1.
    """

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        name = type(self).__name__
        self.channels = _check_size(name, "channels", channels)
        self.width = w = _check_size(name, "width", width)
        self.net = nn.Sequential(nn.Conv2d(self.channels, w, 3, 1, 1), nn.SiLU(),
                                 nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),
                                 nn.Conv2d(2 * w, 2 * w, 4, 2, 1), nn.SiLU(),
                                 nn.Flatten(), nn.Linear(2 * w * 7 * 7, 1))

    def forward(self, x):
        return self.net(x).reshape(x.shape[0])

    energy = forward

    def extra_repr(self):
        return f"channels={self.channels}, width={self.width}"
