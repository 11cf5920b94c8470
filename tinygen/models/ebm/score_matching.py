"""Score matching: training an energy without its partition function and without
sampling.

An energy defines the model's score, the gradient of its log density in x,

    s_theta(x) = grad_x log p_theta(x) = -grad_x E_theta(x),                          (1)

in which Z(theta) does not appear (it is a constant in x). Score matching fits s_theta
to the data's score s_data = grad_x log p_data by the Fisher divergence

    F(theta) = 1/2 E_{p_data} || s_theta(x) - s_data(x) ||^2.                          (2)

(2) needs s_data, which is unknown. Three ways around it:

Exact score matching (Hyvarinen 2005, "Estimation of Non-Normalized Statistical Models
by Score Matching", Theorem 1). Integrating the cross term of (2) by parts
(E[s_theta . s_data] = int s_theta . grad p_data dx = -E[div s_theta], assuming
p_data s_theta -> 0 at infinity) leaves

    J(theta) = E_{p_data} [ 1/2 || s_theta(x) ||^2 + tr( grad_x s_theta(x) ) ],
    F(theta) = J(theta) + 1/2 E_{p_data} || s_data(x) ||^2,                           (3)

the last term a constant in theta. tr(grad_x s_theta) = -sum_d d^2 E / dx_d^2 needs the
diagonal of the Hessian: one more backward pass per dimension D, each through the graph
of the first (create_graph=True), so this is for small D.

Sliced score matching (Song, Garg, Shi & Ermon 2019, "Sliced Score Matching: A Scalable
Approach to Density and Score Estimation", eqs. 6 and 8). Project onto random directions
v ~ N(0, I), for which E_v[v^T H v] = tr H and E_v[(v^T s)^2] = ||s||^2:

    J_S(theta) = E_v E_{p_data} [ v^T grad_x s_theta(x) v + 1/2 (v^T s_theta(x))^2 ],   (4)
    J_VR(theta) = E_v E_{p_data} [ v^T grad_x s_theta(x) v + 1/2 || s_theta(x) ||^2 ],   (5)

both equal to J (3) in expectation over v. (4) is the general form (it holds for any v
with E[v v^T] = I); (5), their "variance reduction" for Gaussian v, computes the
second term exactly. v^T (grad_x s) v = v^T grad_x (v^T s): one Hessian-vector product,
a double backward, per projection, whatever D is.

Denoising score matching (Vincent 2011, "A Connection Between Score Matching and
Denoising Autoencoders"). Blur the data with q_sigma(x~ | x) = N(x, sigma^2 I); then

    J_D(theta) = 1/2 E_{x ~ p_data, x~ ~ q_sigma(.|x)} || s_theta(x~) + (x~ - x) / sigma^2 ||^2
                                                                                     (6)

equals 1/2 E_{q_sigma(x~)} || s_theta(x~) - grad log q_sigma(x~) ||^2 plus a constant,
q_sigma(x~) = int p_data(x) q_sigma(x~ | x) dx the blurred data: its minimiser is the
score of the blurred data, not of the data (for data N(mu, S), the score of
N(mu, S + sigma^2 I)). No second derivatives at all. With x~ = x + sigma eps,
(x~ - x) / sigma^2 = eps / sigma, and sigma^2 J_D = 1/2 E || sigma s_theta(x~) + eps ||^2
is the diffusion models' epsilon-prediction loss with eps_theta = -sigma s_theta
(diffusion/sde.py, eq. 3): the weighting lambda(sigma) = sigma^2 of Song & Ermon 2019.
The function returns (6) unweighted.

Every loss here: x (n, ...) is data (any shape; the norms and traces run over all axes
but the first), taken as a constant (a detached copy requires grad inside); the energy
x -> (n,) or (n, 1); the result is the mean over the batch, a scalar Tensor whose
graph reaches the energy's parameters (the gradients in x are taken with
create_graph=True).
"""
from __future__ import annotations

import math
import numbers

from ... import cat, grad, randn
from ...autograd import Tensor
from ...nn.module import _check_size
from .energies import _energies

__all__ = ["score", "score_matching_loss", "sliced_score_matching_loss",
           "denoising_score_matching_loss"]


def _leaf(x, caller):
    if not isinstance(x, Tensor):
        raise TypeError(f"{caller}: x must be a Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{caller}: x must be a batch (n, ...) with at least one axis per "
                         f"example, got shape {x.shape}")
    return x.detach().requires_grad_()


def score(energy, x, create_graph: bool = False):
    """s(x) = -grad_x E(x), eq. (1): x (n, ...) -> (n, ...) (the gradient of each
    example's own energy). With create_graph=True the result is differentiable in the
    energy's parameters (x itself is taken as data: a detached copy is differentiated,
    so no gradient flows back to the caller's x); else it is detached.

    Raises:
        TypeError, ValueError: x is not a Tensor (n, ...); an energy of the wrong shape.
    """
    x = _leaf(x, "score")
    (dE_dx,) = grad(_energies(energy, x, "score").sum(), x, create_graph=create_graph)
    return -dE_dx


def _flat(t):
    return t.reshape(t.shape[0], -1)


def score_matching_loss(energy, x):
    """Hyvarinen's objective J (3), estimated on the batch:
    mean_i [ 1/2 ||s(x_i)||^2 + sum_d ds_d/dx_d (x_i) ], the trace by exact second
    derivatives, D + 1 backward passes (D = the size of one example).

    J = F - 1/2 E ||s_data||^2 (eq. 3): minimising J minimises the Fisher divergence.
    On a finite sample a flexible energy can push the estimate below the population
    minimum (sharp wells at the data points make the trace very negative): the
    overfitting of score matching, to be watched on held-out data.

    Args:
        energy: a callable x (n, ...) -> (n,) or (n, 1), twice differentiable in x.
        x: data (n, ...).
    Returns:
        A scalar Tensor.
    """
    x = _leaf(x, "score_matching_loss")
    (dE_dx,) = grad(_energies(energy, x, "score_matching_loss").sum(), x, create_graph=True)
    s = _flat(-dE_dx)                                                   # (n, D)
    trace = 0.0
    for d in range(s.shape[1]):
        # d s_d / d x over the whole batch: examples do not interact, so column d of row
        # i is d s_d(x_i) / d x_{i,d}, the d-th diagonal entry of example i's Jacobian
        (row,) = grad(s[:, d].sum(), x, create_graph=True, allow_unused=True)
        if row is not None:  # None: s_d does not depend on x (a linear energy)
            trace = trace + _flat(row)[:, d]
    return (0.5 * (s * s).sum(axis=1) + trace).mean()


def sliced_score_matching_loss(energy, x, num_projections: int = 1,
                               variance_reduction: bool = False):
    """Sliced score matching, eq. (4) (or (5) with variance_reduction=True), with M =
    ``num_projections`` directions v ~ N(0, I) per example, fresh at every call:

        mean_{i, j} [ v_ij^T grad_x s(x_i) v_ij + 1/2 (v_ij^T s(x_i))^2 ]      (4)
        mean_{i, j} [ v_ij^T grad_x s(x_i) v_ij + 1/2 ||s(x_i)||^2 ]          (5)

    Its expectation over v is J (3). The batch is repeated M times, so one Hessian-vector
    product (two backward passes in all, the second through the first) serves all
    projections.

    Args:
        energy: as for score_matching_loss.
        x: data (n, ...).
        num_projections: M >= 1.
        variance_reduction: use (5) instead of (4).
    Returns:
        A scalar Tensor.
    Raises:
        ValueError: M < 1.
    """
    M = _check_size("sliced_score_matching_loss", "num_projections", num_projections)
    x = x if M == 1 else cat([x.detach()] * M, axis=0)
    x = _leaf(x, "sliced_score_matching_loss")
    (dE_dx,) = grad(_energies(energy, x, "sliced_score_matching_loss").sum(), x,
                    create_graph=True)
    s = -dE_dx
    v = randn(*x.shape, dtype=x.dtype, device=x.device)
    sv = _flat(s * v).sum(axis=1)                                       # v^T s, (M n,)
    (hv,) = grad(sv.sum(), x, create_graph=True, allow_unused=True)     # (grad_x s)^T v
    vhv = 0.0 if hv is None else _flat(hv * v).sum(axis=1)
    second = _flat(s * s).sum(axis=1) if variance_reduction else sv * sv
    return (vhv + 0.5 * second).mean()


def denoising_score_matching_loss(energy, x, sigma: float, noise=None):
    """Denoising score matching, eq. (6): with x~ = x + sigma eps, eps ~ N(0, I),

        mean_i 1/2 || s(x~_i) + (x~_i - x_i) / sigma^2 ||^2
      = mean_i 1/2 || s(x~_i) + eps_i / sigma ||^2,

    unweighted (multiply by sigma^2 for the epsilon-prediction scale; module docstring).
    Its minimiser is the score of the blurred data p_data * N(0, sigma^2 I).

    Args:
        energy: a callable x (n, ...) -> (n,) or (n, 1), differentiable in x.
        x: data (n, ...).
        sigma: the noise's standard deviation, > 0.
        noise: eps, a Tensor shaped like x, to use given noise (common random numbers);
            None draws it.
    Returns:
        A scalar Tensor.
    Raises:
        ValueError: sigma <= 0, or noise not shaped like x.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) \
            or not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"denoising_score_matching_loss: sigma must be a finite number > 0, "
                         f"got {sigma!r}")
    x = x.detach()
    if noise is None:
        eps = randn(*x.shape, dtype=x.dtype, device=x.device)
    else:
        if noise.shape != x.shape:
            raise ValueError(f"denoising_score_matching_loss: noise of shape {noise.shape} "
                             f"for x of shape {x.shape}")
        eps = noise.detach()
    x_noisy = _leaf(x + sigma * eps, "denoising_score_matching_loss")
    (dE_dx,) = grad(_energies(energy, x_noisy, "denoising_score_matching_loss").sum(),
                    x_noisy, create_graph=True)
    r = _flat(-dE_dx + eps / sigma)
    return 0.5 * (r * r).sum(axis=1).mean()
