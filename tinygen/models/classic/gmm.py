"""The Gaussian mixture model fitted by expectation-maximisation (Dempster, Laird & Rubin
1977, "Maximum Likelihood from Incomplete Data via the EM Algorithm"; the equations as in
Bishop 2006, "Pattern Recognition and Machine Learning", section 9.2), the same
likelihood maximised by gradient ascent through tinygen's autograd, and the small PCA the
recipe uses to put MNIST where a mixture of full-covariance Gaussians can live.

The model. A point x in R^D is drawn by first choosing one of K components with the
mixing weights pi (pi_k >= 0, sum_k pi_k = 1), then drawing from that component's
Gaussian:

    z ~ Categorical(pi),   x | z = k ~ N(mu_k, Sigma_k),
    p(x) = sum_k pi_k N(x | mu_k, Sigma_k)                                   (1)  [9.7]

with means mu_k (D,) and covariances Sigma_k (D, D), full or diagonal. With the Cholesky
factor Sigma_k = L_k L_k^T (L_k lower triangular, positive diagonal) the log-density of a
component is

    log N(x | mu, Sigma) = -D/2 log 2 pi - sum_d log L_dd - 1/2 ||L^{-1} (x - mu)||^2   (2)

([2.43] with log |Sigma| = 2 sum_d log L_dd; a diagonal Sigma = diag(sigma^2) has L =
diag(sigma)). The log-likelihood of the data X = {x_1, ..., x_N} is computed in log space,
each point's sum over components by logsumexp (a density of 1e-400 is 0 in float64, its
logarithm -921 is not):

    log p(X) = sum_n log sum_k pi_k N(x_n | mu_k, Sigma_k)
             = sum_n logsumexp_k [log pi_k + log N(x_n | mu_k, Sigma_k)].       (3)  [9.28]

EM. The component z_n of each point is missing; were it known, the fit would be a
Gaussian per component. EM alternates:

  E-step: the responsibilities, the posterior p(z_n = k | x_n) by Bayes' rule,

    gamma_nk = pi_k N(x_n | mu_k, Sigma_k) / sum_j pi_j N(x_n | mu_j, Sigma_j)
             = exp(log pi_k + log N_nk - logsumexp_j [log pi_j + log N_nj]);     (4)  [9.23]

  M-step: the closed-form maximisers of the expected complete-data log-likelihood

    Q(theta) = sum_n sum_k gamma_nk [log pi_k + log N(x_n | mu_k, Sigma_k)],    (5)  [9.40]

  with the responsibilities held fixed:

    N_k = sum_n gamma_nk,                                                          [9.27]
    mu_k = (1 / N_k) sum_n gamma_nk x_n,                                           [9.24]
    S_k = (1 / N_k) sum_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T,                     [9.25]
    pi_k = N_k / N.                                                         (6)   [9.26]

  (A diagonal Sigma_k keeps the diagonal of S_k: the maximiser of (5) over diagonal
  matrices.)

The covariance floor. A component that shrinks onto one point (or onto a subspace: MNIST's
border pixels are always 0) drives its density, and (3), to infinity: the likelihood of a
mixture has such singularities (Bishop section 9.2.1), and maximum likelihood means
nothing there. tinygen keeps every covariance's eigenvalues at or above a floor
epsilon = ``reg_covar``: the M-step maximises (5) over {Sigma : Sigma >= epsilon I}, and
that maximiser is S_k with its eigenvalues below epsilon raised to epsilon,

    Sigma_k = V diag(max(lambda_i, epsilon)) V^T,   S_k = V diag(lambda_i) V^T    (7)

(the Gaussian likelihood in Sigma^{-1} is log|Omega| - tr(Omega S); for Omega's eigenvalues
omega_i <= 1/epsilon the best eigenvectors are S's, and each omega_i maximises log omega_i
- omega_i lambda_i under its bound: omega_i = min(1/lambda_i, 1/epsilon)). A diagonal
covariance's variances are floored the same way, max(S_k,dd, epsilon). This differs from
scikit-learn's ``reg_covar``, which adds epsilon to every diagonal entry: that is not the
maximiser of (5) over any set containing the old Sigma_k, and EM's guarantee below is then
only approximate. With the floor, (7) leaves a covariance whose eigenvalues all exceed
epsilon exactly as (6) made it, and the guarantee holds exactly.

Why EM climbs. For any theta, log p(X | theta) = Q(theta) + H(theta), where H(theta) =
-sum_n sum_k gamma_nk log p(z_n = k | x_n, theta) is, by Gibbs' inequality, smallest at the
theta_old that made gamma ([9.70]: log p = L(q, theta) + KL(q || p(Z | X, theta))). An
M-step that does not lower Q therefore does not lower the log-likelihood (3): Dempster,
Laird & Rubin's theorem 1, checked at every iteration in tests/test_gmm.py.

Initialisation (``initialize``): K seeds are data points chosen by k-means++ seeding
(Arthur & Vassilvitskii 2007, "k-means++: The Advantages of Careful Seeding": the first
uniformly, each next one with probability proportional to its squared distance to the
nearest seed chosen so far; greedily, the best of a few such draws), or uniformly at
random without replacement (``"random"``); every point goes to its nearest seed, and one
M-step on these hard responsibilities (gamma_nk = 1 for the nearest seed, else 0) gives
each component its cluster's mean, covariance and fraction of the points. Bishop (section
9.2.2) starts from the clusters of k-means; these are the clusters of its first
assignment step, without Lloyd's iterations. (Measured on the toy sets, 8 seeds at 4,000
and 8 at 100,000 points, K = 8 and 25: EM from these starts reaches the global maximum of
8gaussians from 15 of the 16, of 25gaussians from all 16; from plain k-means++ seeds from
10 and 13. Starting every component as the whole data's Gaussian instead, 25gaussians'
from none of 5, and 8gaussians' after 31-59 iterations instead of 2-24.)

Sampling is ancestral: z ~ Categorical(pi), then x = mu_z + L_z epsilon, epsilon ~ N(0, I).

Gradient ascent on (3). The same log-likelihood maximised by Adam through tinygen's
autograd, the constraints built into the parameterisation:

    log pi = log_softmax(a),                          a (K,) unconstrained logits,
    Sigma_k^{-1} = U_k U_k^T,  U_k lower triangular with diagonal exp(s_k),        (8)
    log N(x | mu_k, Sigma_k) = -D/2 log 2 pi + sum_d s_kd - 1/2 ||U_k^T (x - mu_k)||^2

(full covariances: a Cholesky factor of the precision, so the density needs one matrix
product and no solve; diagonal ones: Sigma_k = diag(exp(2 log sigma_k)), log sigma_k (K, D)
unconstrained). Nothing keeps such a covariance above the floor (7): gradient ascent can
walk into the singularities that EM's floor excludes (on data with enough points per
component it does not in practice).

PCA (``PCA``): the top M principal directions of the centred training data X - x_bar =
U S V^T (thin SVD), V_M (D, M) the first M right singular vectors:

    z = (x - x_bar) V_M,     x_hat = x_bar + z V_M^T                               (9)

(the M-dimensional subspace that keeps the most variance, s_i^2 / N along direction i).

Symbols and code (all arrays NumPy float64):

    symbol          code                              shape
    x_n, X          x                                 (N, D)
    pi, mu, Sigma   pi, mu, Sigma                     (K,), (K, D), (K, D, D) full or
                                                      (K, D) diag (the variances)
    L_k             cholesky(Sigma, covariance_type)  (K, D, D) or (K, D) (sigma)
    log N_nk        log_gaussian(...)                 (N, K) nats
    gamma_nk        e_step(...)[0]                    (N, K)
    log p(x_n)      e_step(...)[1], log_prob(x)       (N,) nats
    Q               expected_complete_log_likelihood  float, nats (a sum over n)
    epsilon         reg_covar
    a, s, U_k       GradientMixture.a, .s,            (K,), (K, D), (K, D, D)
                    .precision_cholesky()
    x_bar, V_M      PCA.mean, PCA.V                   (D,), (D, M)
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from ... import log_softmax, logsumexp, nn, no_grad, optim, tensor
from ...autograd import Tensor
from ...random import generator as new_generator

COVARIANCE_TYPES = ("full", "diag")
INIT_METHODS = ("kmeans++", "random")
LOG_2PI = math.log(2 * math.pi)
# the most float64 numbers one (points, K, D) intermediate may hold: 32 MB; longer data
# is processed in slices of points, so MNIST's 60,000 x 20 x 50 never exists at once
CHUNK_ELEMENTS = 1 << 22


class MixtureParameters(NamedTuple):
    """The parameters of a Gaussian mixture, NumPy float64: pi (K,), mu (K, D), Sigma (K,
    D, D) for full covariances or the variances (K, D) for diagonal ones."""
    pi: np.ndarray
    mu: np.ndarray
    Sigma: np.ndarray


# --------------------------------------------------------------------------- checks

def _check_covariance_type(covariance_type, fn):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"{fn}: covariance_type must be one of {', '.join(COVARIANCE_TYPES)}; "
                         f"got {covariance_type!r}")


def _check_points(x, fn, dim=None, name="x") -> np.ndarray:
    """x as a float64 array (N, D), N >= 1, finite; dim: the D it must have."""
    if isinstance(x, Tensor):
        x = x.numpy()
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"{fn}: {name} must be an array of numbers (N, D); got dtype "
                        f"{x.dtype}")
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{fn}: {name} must have shape (N, D) with N, D >= 1; got shape "
                         f"{tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{fn}: {name} has {x.shape[1]} features per point, the mixture "
                         f"D = {dim}; got shape {tuple(x.shape)}")
    x = x.astype(np.float64, copy=False)
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise ValueError(f"{fn}: {name} holds {int((~finite).sum())} NaN or infinite "
                         f"values, e.g. {x[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return x


def _check_parameters(pi, mu, Sigma, covariance_type, fn) -> MixtureParameters:
    _check_covariance_type(covariance_type, fn)
    pi, mu, Sigma = (np.asarray(a, np.float64) for a in (pi, mu, Sigma))
    if mu.ndim != 2:
        raise ValueError(f"{fn}: mu must have shape (K, D); got {tuple(mu.shape)}")
    K, D = mu.shape
    want = (K, D, D) if covariance_type == "full" else (K, D)
    if pi.shape != (K,) or Sigma.shape != want:
        raise ValueError(f"{fn}: with mu {tuple(mu.shape)} and {covariance_type} covariances "
                         f"pi must be ({K},) and Sigma {want}; got {tuple(pi.shape)} and "
                         f"{tuple(Sigma.shape)}")
    return MixtureParameters(pi, mu, Sigma)


def _chunks(n, per_point):
    """Slices of range(n) whose (points, per_point) intermediates stay near CHUNK_ELEMENTS."""
    step = max(1, CHUNK_ELEMENTS // max(1, per_point))
    for i in range(0, n, step):
        yield slice(i, min(n, i + step))


# --------------------------------------------------------------------------- eqs. (2), (3)

def cholesky(Sigma, covariance_type="full"):
    """L_k with Sigma_k = L_k L_k^T, eq. (2): (K, D, D) lower triangular for full
    covariances (numpy.linalg.cholesky), the standard deviations sqrt(Sigma) (K, D) for
    diagonal ones.

    Raises ValueError when a covariance is not positive definite (naming the component),
    or for an unknown covariance_type."""
    _check_covariance_type(covariance_type, "cholesky")
    Sigma = np.asarray(Sigma, np.float64)
    if covariance_type == "diag":
        if not (Sigma > 0).all():
            k = int(np.argwhere(~(Sigma > 0))[0][0])
            raise ValueError(f"cholesky: the variances of component {k} must be positive; "
                             f"got {Sigma[k]}")
        return np.sqrt(Sigma)
    try:
        return np.linalg.cholesky(Sigma)
    except np.linalg.LinAlgError:
        for k in range(len(Sigma)):   # only to name the culprit
            try:
                np.linalg.cholesky(Sigma[k])
            except np.linalg.LinAlgError:
                raise ValueError(f"cholesky: Sigma[{k}] is not positive definite "
                                 f"(eigenvalues {np.linalg.eigvalsh(Sigma[k])})") from None
        raise


def log_gaussian(x, mu, Sigma, covariance_type="full"):
    """log N(x_n | mu_k, Sigma_k) for every point and component, eq. (2): x (N, D), mu (K,
    D), Sigma (K, D, D) or variances (K, D) -> (N, K), nats.

    Full covariances go through their Cholesky factors: log |Sigma| = 2 sum log L_dd and
    the Mahalanobis distance ||L^{-1} (x - mu)||^2, with L^{-1} from numpy.linalg.solve(L,
    I). Vectorised over points and components, in slices of points (CHUNK_ELEMENTS).

    Raises ValueError for mismatched shapes, non-finite x, a covariance that is not
    positive definite, or an unknown covariance_type."""
    mu = np.asarray(mu, np.float64)
    if mu.ndim != 2:
        raise ValueError(f"log_gaussian: mu must have shape (K, D); got {tuple(mu.shape)}")
    x = _check_points(x, "log_gaussian", mu.shape[1])
    K, D = mu.shape
    L = cholesky(Sigma, covariance_type)
    want = (K, D, D) if covariance_type == "full" else (K, D)
    if L.shape != want:
        raise ValueError(f"log_gaussian: Sigma must be {want} for {covariance_type} "
                         f"covariances and mu {tuple(mu.shape)}; got {tuple(L.shape)}")
    out = np.empty((len(x), K))
    if covariance_type == "full":
        half_log_det = np.log(np.diagonal(L, axis1=1, axis2=2)).sum(-1)       # (K,)
        L_inv = np.linalg.solve(L, np.eye(D))                                # (K, D, D)
        # L_k^{-1} (x - mu_k) = L_k^{-1} x - L_k^{-1} mu_k for every k at once: one
        # (n, D) x (D, K D) product, twice as fast as forming the (n, K, D) differences
        W = L_inv.transpose(2, 0, 1).reshape(D, K * D)     # W[e, k D + d] = L_inv[k, d, e]
        b = np.einsum("kde,ke->kd", L_inv, mu).reshape(K * D)
        for s in _chunks(len(x), K * D):
            y = (x[s] @ W - b).reshape(-1, K, D)
            out[s] = -0.5 * (y ** 2).sum(-1)
    else:
        half_log_det = np.log(L).sum(-1)
        for s in _chunks(len(x), K * D):
            y = (x[s, None, :] - mu[None]) / L[None]                          # (n, K, D)
            out[s] = -0.5 * (y ** 2).sum(-1)
    return out - 0.5 * D * LOG_2PI - half_log_det


def _log_joint(x, params, covariance_type):
    """log pi_k + log N(x_n | mu_k, Sigma_k), (N, K); log 0 = -inf for an empty component."""
    with np.errstate(divide="ignore"):
        log_pi = np.log(params.pi)
    return log_pi + log_gaussian(x, params.mu, params.Sigma, covariance_type)


def _logsumexp(a, axis):
    """log sum exp over ``axis``, shifted by the maximum (finite rows only reach here)."""
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def log_prob(x, pi, mu, Sigma, covariance_type="full"):
    """log p(x_n) = logsumexp_k [log pi_k + log N(x_n | mu_k, Sigma_k)], eq. (3) per
    point: x (N, D) -> (N,) nats.

    Raises ValueError for bad shapes, non-finite x or an unknown covariance_type."""
    params = _check_parameters(pi, mu, Sigma, covariance_type, "log_prob")
    return _logsumexp(_log_joint(x, params, covariance_type), axis=1)


# --------------------------------------------------------------------------- EM, eqs. (4)-(7)

def e_step(x, pi, mu, Sigma, covariance_type="full"):
    """The E-step, eq. (4): the responsibilities gamma (N, K) (rows summing to 1) and, on
    the way, log p(x_n) (N,) nats (eq. (3) per point), all in log space.

    Raises ValueError for bad shapes, non-finite x or an unknown covariance_type."""
    params = _check_parameters(pi, mu, Sigma, covariance_type, "e_step")
    log_joint = _log_joint(x, params, covariance_type)
    log_px = _logsumexp(log_joint, axis=1)
    return np.exp(log_joint - log_px[:, None]), log_px


def expected_complete_log_likelihood(x, gamma, pi, mu, Sigma, covariance_type="full"):
    """Q = sum_n sum_k gamma_nk [log pi_k + log N(x_n | mu_k, Sigma_k)], eq. (5) (Bishop
    9.40): a float, nats, summed over the N points (gamma_nk = 0 contributes 0, even
    where pi_k = 0).

    Raises ValueError for bad shapes, non-finite x or an unknown covariance_type."""
    params = _check_parameters(pi, mu, Sigma, covariance_type,
                               "expected_complete_log_likelihood")
    gamma = np.asarray(gamma, np.float64)
    log_joint = _log_joint(x, params, covariance_type)
    if gamma.shape != log_joint.shape:
        raise ValueError(f"expected_complete_log_likelihood: gamma must have shape "
                         f"{log_joint.shape}; got {tuple(gamma.shape)}")
    safe = np.where(gamma > 0, log_joint, 0.0)
    return float((gamma * safe).sum())


def floor_covariance(S, reg_covar, covariance_type="full"):
    """Eq. (7): the maximiser of (5) over covariances with every eigenvalue >= reg_covar.
    Full: S (K, D, D) symmetric, its eigenvalues below reg_covar raised to it (only those
    directions change: a covariance above the floor is returned as given, symmetrised);
    diagonal: the variances (K, D) clipped from below.

    Raises ValueError for reg_covar <= 0 or an unknown covariance_type."""
    _check_covariance_type(covariance_type, "floor_covariance")
    _check_reg_covar(reg_covar, "floor_covariance")
    S = np.asarray(S, np.float64)
    if covariance_type == "diag":
        return np.maximum(S, reg_covar)
    S = 0.5 * (S + np.swapaxes(S, -1, -2))
    lam, V = np.linalg.eigh(S)
    lift = np.maximum(reg_covar - lam, 0.0)          # (K, D), 0 where already above
    return S + (V * lift[..., None, :]) @ np.swapaxes(V, -1, -2)


def _check_reg_covar(reg_covar, fn):
    if isinstance(reg_covar, bool) or not isinstance(reg_covar, (int, float, np.floating)) \
            or not math.isfinite(reg_covar) or reg_covar <= 0:
        raise ValueError(f"{fn}: reg_covar (the floor on the covariances' eigenvalues) must be "
                         f"a positive number; got {reg_covar!r}")


def m_step(x, gamma, covariance_type="full", reg_covar=1e-6) -> MixtureParameters:
    """The M-step, eqs. (6) and (7): pi (K,), mu (K, D) and Sigma (K, D, D) or variances
    (K, D) maximising Q (eq. (5)) for the responsibilities gamma (N, K), over covariances
    with eigenvalues >= reg_covar.

    A component no point is responsible for (N_k = 0, after an underflow) gets pi_k = 0,
    mu_k = 0 and Sigma_k = reg_covar I: any values maximise Q then, and with pi_k = 0 it
    no longer counts.

    Raises ValueError for a gamma of the wrong shape, negative or non-finite entries, or
    rows that do not sum to 1 (within 1e-6); for non-finite x, reg_covar <= 0 or an
    unknown covariance_type."""
    _check_covariance_type(covariance_type, "m_step")
    _check_reg_covar(reg_covar, "m_step")
    x = _check_points(x, "m_step")
    gamma = np.asarray(gamma, np.float64)
    N, D = x.shape
    if gamma.ndim != 2 or gamma.shape[0] != N:
        raise ValueError(f"m_step: gamma must have shape (N, K) = ({N}, K) for x "
                         f"{tuple(x.shape)}; got {tuple(gamma.shape)}")
    if not np.isfinite(gamma).all() or (gamma < 0).any():
        raise ValueError("m_step: the responsibilities gamma must be finite and >= 0")
    row = gamma.sum(axis=1)
    if np.abs(row - 1).max() > 1e-6:
        n = int(np.abs(row - 1).argmax())
        raise ValueError(f"m_step: every row of gamma must sum to 1 (a posterior over the "
                         f"components); row {n} sums to {row[n]}")
    K = gamma.shape[1]
    Nk = gamma.sum(axis=0)                                    # [9.27]
    safe = np.where(Nk > 0, Nk, 1.0)                          # 0 / 1 = 0 for an empty one
    mu = (gamma.T @ x) / safe[:, None]                        # [9.24]
    if covariance_type == "full":
        S = np.zeros((K, D, D))
        for s in _chunks(N, K * D):
            diff = (x[s, None, :] - mu[None]).transpose(1, 0, 2)             # (K, n, D)
            weighted = diff * gamma[s].T[:, :, None]
            S += np.swapaxes(weighted, 1, 2) @ diff                          # [9.25]
        S /= safe[:, None, None]
    else:
        S = np.zeros((K, D))
        for s in _chunks(N, K * D):
            diff = x[s, None, :] - mu[None]                                   # (n, K, D)
            S += np.einsum("nk,nkd->kd", gamma[s], diff ** 2)
        S /= safe[:, None]
    Sigma = floor_covariance(S, reg_covar, covariance_type)                  # eq. (7)
    return MixtureParameters(Nk / N, mu, Sigma)                              # [9.26]


# --------------------------------------------------------------------------- initialisation

def kmeans_plusplus(x, K, generator, trials=None):
    """K rows of x chosen by k-means++ seeding (Arthur & Vassilvitskii 2007), greedy: the
    first uniformly; then, for each next one, ``trials`` candidates drawn with
    probability D(x)^2 / sum D^2 (D(x) the distance to the nearest seed chosen so far),
    of which the one that leaves the smallest sum of D^2 is kept. trials=1 is plain
    k-means++; None: 2 + floor(ln K), scikit-learn's choice for its kmeans_plusplus (on
    the toy sets it lands 8gaussians' EM in its global maximum from 15 of 16 seeds, plain
    k-means++ from 10). Once every point coincides with a seed, the rest are uniform.

    x (N, D) -> (K, D) float64; ``generator`` a NumPy Generator.

    Raises ValueError for K < 1, K > N or trials < 1."""
    x = _check_points(x, "kmeans_plusplus")
    N = len(x)
    if not 1 <= K <= N:
        raise ValueError(f"kmeans_plusplus: needs 1 <= K <= N (points); got K = {K}, N = {N}")
    trials = 2 + int(math.log(K)) if trials is None else trials
    if trials < 1:
        raise ValueError(f"kmeans_plusplus: trials must be >= 1; got {trials}")
    chosen = [x[generator.integers(N)]]
    d2 = ((x - chosen[0]) ** 2).sum(axis=1)
    for _ in range(1, K):   # sequential: each choice depends on the ones before
        total = d2.sum()
        if total <= 0:
            chosen.append(x[generator.integers(N)])
            continue
        candidates = x[generator.choice(N, size=trials, p=d2 / total)]          # (T, D)
        after = np.empty((trials, N))
        for s in _chunks(N, trials * x.shape[1]):
            after[:, s] = ((x[None, s] - candidates[:, None]) ** 2).sum(-1)
        after = np.minimum(d2, after)                     # D^2 with each candidate added
        best = int(after.sum(axis=1).argmin())
        chosen.append(candidates[best])
        d2 = after[best]
    return np.array(chosen)


# --------------------------------------------------------------------------- the module

class GaussianMixture(nn.Module):
    """A Gaussian mixture p(x) = sum_k pi_k N(x | mu_k, Sigma_k), eq. (1), fitted by EM.

    The parameters are buffers (float64 Tensors, saved by ``state_dict``; there is no
    gradient in EM): ``pi`` (K,), ``mu`` (K, D), ``Sigma`` (K, D, D) full or the variances
    (K, D) diagonal. A new mixture has pi = 1/K, mu = 0, Sigma = I: call ``initialize``
    before EM (identical components would stay identical).

    Args:
        num_components: K >= 1.
        dim: D >= 1, the dimension of the points.
        covariance_type: "full" or "diag".
        reg_covar: epsilon > 0, the floor on every covariance's eigenvalues, eq. (7)
            (1e-6: for data of unit scale, far below any real spread; what it rules out
            is a component collapsing onto a point or a subspace).

    Raises ValueError for K or D not a positive integer, an unknown covariance_type or
    reg_covar <= 0.

    Points are NumPy arrays (or Tensors) (N, D); results are NumPy float64.
    """

    def __init__(self, num_components: int, dim: int, covariance_type: str = "full",
                 reg_covar: float = 1e-6):
        super().__init__()
        for name, value in (("num_components", num_components), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GaussianMixture: {name} must be a positive integer; got "
                                 f"{value!r}")
        _check_covariance_type(covariance_type, "GaussianMixture")
        _check_reg_covar(reg_covar, "GaussianMixture")
        K, D = int(num_components), int(dim)
        self.num_components, self.dim = K, D
        self.covariance_type, self.reg_covar = covariance_type, float(reg_covar)
        self.register_buffer("pi", tensor(np.full(K, 1.0 / K)))
        self.register_buffer("mu", tensor(np.zeros((K, D))))
        Sigma = np.tile(np.eye(D), (K, 1, 1)) if covariance_type == "full" else np.ones((K, D))
        self.register_buffer("Sigma", tensor(Sigma))

    def extra_repr(self):
        return (f"num_components={self.num_components}, dim={self.dim}, "
                f"covariance_type={self.covariance_type!r}, reg_covar={self.reg_covar:g}")

    # ---- the parameters as arrays
    @property
    def params(self) -> MixtureParameters:
        """(pi, mu, Sigma) as NumPy float64 arrays (views of the buffers)."""
        return MixtureParameters(self.pi.numpy(), self.mu.numpy(), self.Sigma.numpy())

    def set_parameters(self, pi, mu, Sigma) -> None:
        """Replace the parameters (copied, as float64).

        Raises ValueError for shapes other than this mixture's, pi off the simplex (entries
        < 0 or a sum off 1 by more than 1e-6), non-finite values, or a covariance that is
        not positive definite."""
        p = _check_parameters(pi, mu, Sigma, self.covariance_type, "set_parameters")
        K, D = self.num_components, self.dim
        if p.mu.shape != (K, D):
            raise ValueError(f"set_parameters: mu must be ({K}, {D}); got {p.mu.shape}")
        if not all(np.isfinite(a).all() for a in p):
            raise ValueError("set_parameters: the parameters must be finite")
        if (p.pi < 0).any() or abs(p.pi.sum() - 1) > 1e-6:
            raise ValueError(f"set_parameters: pi must be >= 0 and sum to 1; got {p.pi}")
        cholesky(p.Sigma, self.covariance_type)   # raises if one is not positive definite
        self.pi.data[...] = p.pi
        self.mu.data[...] = p.mu
        self.Sigma.data[...] = p.Sigma

    def copy(self) -> "GaussianMixture":
        """An independent mixture with the same settings and parameters."""
        other = GaussianMixture(self.num_components, self.dim, self.covariance_type,
                                self.reg_covar)
        other.set_parameters(*self.params)
        return other

    def _x(self, x, fn):
        return _check_points(x, f"GaussianMixture.{fn}", self.dim)

    # ---- densities, eqs. (2)-(4)
    def log_gaussians(self, x):
        """log N(x_n | mu_k, Sigma_k), eq. (2): (N, D) -> (N, K) nats."""
        p = self.params
        return log_gaussian(self._x(x, "log_gaussians"), p.mu, p.Sigma, self.covariance_type)

    def log_prob(self, x):
        """log p(x_n), eq. (3) per point: (N, D) -> (N,) nats.

        Raises ValueError for x not (N, D) with this D, or holding NaN or inf."""
        return log_prob(self._x(x, "log_prob"), *self.params, self.covariance_type)

    forward = log_prob

    def log_likelihood(self, x) -> float:
        """The mean log-likelihood (1/N) log p(X), eq. (3): nats per point."""
        return float(self.log_prob(x).mean())

    def responsibilities(self, x):
        """gamma_nk = p(z_n = k | x_n), eq. (4): (N, D) -> (N, K), rows summing to 1."""
        return self.e_step(x)[0]

    # ---- EM
    def e_step(self, x):
        """The E-step, eq. (4): (gamma (N, K), log p(x_n) (N,) nats)."""
        return e_step(self._x(x, "e_step"), *self.params, self.covariance_type)

    def m_step(self, x, gamma) -> None:
        """The M-step, eqs. (6)-(7): set pi, mu, Sigma to the maximisers of Q for gamma
        (N, K)."""
        p = m_step(self._x(x, "m_step"), gamma, self.covariance_type, self.reg_covar)
        if p.pi.shape != (self.num_components,):
            raise ValueError(f"GaussianMixture.m_step: gamma has {len(p.pi)} components, "
                             f"the mixture {self.num_components}")
        self.pi.data[...], self.mu.data[...], self.Sigma.data[...] = p

    def em_step(self, x) -> float:
        """One EM iteration on all of x (N, D): E-step then M-step. Returns the mean
        log-likelihood (nats per point) of the parameters it started from (the E-step
        computes it on the way); it never exceeds that of the parameters it leaves."""
        x = self._x(x, "em_step")
        gamma, log_px = self.e_step(x)
        self.m_step(x, gamma)
        return float(log_px.mean())

    def fit(self, x, max_iter: int = 100, tol: float = 1e-6, init: str | None = "kmeans++",
            seed=None):
        """Initialise (``init``; None keeps the current parameters) and run EM until the
        mean log-likelihood gains less than ``tol`` nats per point in an iteration, or for
        max_iter iterations.

        Returns the mean log-likelihoods [L(theta_0), ..., L(theta_T)], nats per point, a
        NumPy array (T + 1,) (non-decreasing: the EM guarantee).

        Raises ValueError for max_iter < 0, a negative tol, or what ``initialize`` and
        ``em_step`` raise."""
        if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) \
                or max_iter < 0:
            raise ValueError(f"GaussianMixture.fit: max_iter must be an integer >= 0; got "
                             f"{max_iter!r}")
        if not tol >= 0:
            raise ValueError(f"GaussianMixture.fit: tol must be >= 0; got {tol!r}")
        x = self._x(x, "fit")
        if init is not None:
            self.initialize(x, init, seed)
        history = []
        for _ in range(max_iter):
            history.append(self.em_step(x))
            if len(history) > 1 and history[-1] - history[-2] < tol:
                break
        history.append(self.log_likelihood(x))
        return np.array(history)

    # ---- initialisation
    def initialize(self, x, method: str = "kmeans++", seed=None) -> None:
        """Set the starting point of EM from the data x (N, D), N >= K: K seeds chosen by
        k-means++ seeding or uniformly without replacement (``method`` "kmeans++" or
        "random", drawn from ``tinygen.random.generator(seed)``: seeded, or from the
        global generator with seed=None), each point assigned to its nearest seed, then
        one M-step (eqs. (6)-(7)) on those hard responsibilities: each component the mean,
        covariance and fraction of its cluster (Bishop, section 9.2.2).

        Raises ValueError for an unknown method, fewer points than components, or bad x."""
        if method not in INIT_METHODS:
            raise ValueError(f"GaussianMixture.initialize: method must be one of "
                             f"{', '.join(INIT_METHODS)}; got {method!r}")
        x = self._x(x, "initialize")
        K, N = self.num_components, len(x)
        if N < K:
            raise ValueError(f"GaussianMixture.initialize: needs at least K = {K} points; "
                             f"got {N}")
        rng = new_generator(seed)
        if method == "kmeans++":
            seeds = kmeans_plusplus(x, K, rng)
        else:
            seeds = x[rng.choice(N, size=K, replace=False)]
        nearest = np.empty(N, np.int64)
        for s in _chunks(N, K * self.dim):
            nearest[s] = ((x[s, None, :] - seeds[None]) ** 2).sum(-1).argmin(axis=1)
        gamma = np.zeros((N, K))
        gamma[np.arange(N), nearest] = 1.0
        self.m_step(x, gamma)

    # ---- sampling
    def sample(self, n: int, generator=None):
        """n points by ancestral sampling: z ~ Categorical(pi), x = mu_z + L_z epsilon.
        Returns (x (n, D) float64, z (n,) int64). ``generator``: a NumPy Generator
        (default: one drawn from tinygen's global generator, which manual_seed controls).

        Raises ValueError for n not an integer >= 0."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"GaussianMixture.sample: n must be an integer >= 0; got {n!r}")
        rng = generator if generator is not None else new_generator()
        pi, mu, Sigma = self.params
        z = rng.choice(self.num_components, size=n, p=pi / pi.sum())
        eps = rng.standard_normal((n, self.dim))
        L = cholesky(Sigma, self.covariance_type)
        x = np.empty((n, self.dim))
        if self.covariance_type == "diag":
            x[:] = mu[z] + L[z] * eps
        else:
            for s in _chunks(n, self.dim * self.dim):
                x[s] = mu[z[s]] + (L[z[s]] @ eps[s, :, None])[..., 0]
        return x, z.astype(np.int64)


# --------------------------------------------------------------------------- eq. (8)

class GradientMixture(nn.Module):
    """The mixture (1) with unconstrained parameters for gradient ascent, eq. (8): logits
    ``a`` (K,) (log pi = log_softmax(a)), means ``mu`` (K, D); full covariances as the
    Cholesky factor of the precision, ``s`` (K, D) the log of its diagonal and ``A`` (K,
    D, D) whose strict lower triangle is its off-diagonal part (the rest of A is unused
    and gets a zero gradient); diagonal ones as ``log_sigma`` (K, D). All nn.Parameters
    (float64).

    Args:
        num_components: K >= 1; dim: D >= 1; covariance_type: "full" or "diag".

    Raises ValueError for bad sizes or an unknown covariance_type.
    """

    def __init__(self, num_components: int, dim: int, covariance_type: str = "full"):
        super().__init__()
        template = GaussianMixture(num_components, dim, covariance_type)   # the checks
        K, D = template.num_components, template.dim
        self.num_components, self.dim, self.covariance_type = K, D, covariance_type
        self.a = nn.Parameter(np.zeros(K))
        self.mu = nn.Parameter(np.zeros((K, D)))
        if covariance_type == "full":
            self.s = nn.Parameter(np.zeros((K, D)))
            self.A = nn.Parameter(np.zeros((K, D, D)))
        else:
            self.log_sigma = nn.Parameter(np.zeros((K, D)))
        self._strict_lower = np.tril(np.ones((D, D)), -1)
        self._eye = np.eye(D)

    @classmethod
    def from_mixture(cls, gmm: GaussianMixture) -> "GradientMixture":
        """The same distribution as ``gmm``: a = log pi (an empty component's -inf as
        -1e3), U_k the Cholesky factor of Sigma_k^{-1}, or log sigma = log sqrt(Sigma)."""
        if not isinstance(gmm, GaussianMixture):
            raise TypeError(f"GradientMixture.from_mixture: expects a GaussianMixture; got "
                            f"{type(gmm).__name__}")
        out = cls(gmm.num_components, gmm.dim, gmm.covariance_type)
        pi, mu, Sigma = gmm.params
        with np.errstate(divide="ignore"):
            out.a.data[...] = np.maximum(np.log(pi), -1e3)
        out.mu.data[...] = mu
        if gmm.covariance_type == "full":
            U = np.linalg.cholesky(np.linalg.inv(Sigma))
            out.s.data[...] = np.log(np.diagonal(U, axis1=1, axis2=2))
            out.A.data[...] = U * out._strict_lower
        else:
            out.log_sigma.data[...] = 0.5 * np.log(Sigma)
        return out

    def precision_cholesky(self):
        """U_k of eq. (8), a Tensor (K, D, D): strict lower triangle of A plus diag(exp(s))."""
        return self.A * self._strict_lower + self.s.exp().unsqueeze(-1) * self._eye

    def log_prob(self, x):
        """log p(x_n), eqs. (3) and (8), differentiable: x a Tensor (N, D) -> (N,) nats.
        (Builds an (N, K, D) intermediate: for toy data, not for all of MNIST at once.)"""
        log_pi = log_softmax(self.a, axis=0)                          # (K,)
        diff = x.unsqueeze(1) - self.mu                               # (N, K, D)
        D = self.dim
        if self.covariance_type == "full":
            y = diff.swapaxes(0, 1) @ self.precision_cholesky()       # (K, N, D): U^T d
            log_n = (self.s.sum(axis=-1).unsqueeze(-1) - 0.5 * (y * y).sum(axis=-1)).T
        else:
            y = diff * (-self.log_sigma).exp()
            log_n = -self.log_sigma.sum(axis=-1) - 0.5 * (y * y).sum(axis=-1)
        return logsumexp(log_n + log_pi - 0.5 * D * LOG_2PI, axis=1)

    forward = log_prob

    @no_grad()
    def to_mixture(self, reg_covar: float = 1e-6) -> GaussianMixture:
        """The GaussianMixture of the current parameters: pi = softmax(a), Sigma_k =
        (U_k U_k^T)^{-1} (or exp(2 log sigma)). ``reg_covar`` is the new mixture's floor
        for later EM steps; the covariances are taken as they are."""
        gmm = GaussianMixture(self.num_components, self.dim, self.covariance_type, reg_covar)
        log_pi = log_softmax(self.a, axis=0).numpy()
        if self.covariance_type == "full":
            U = self.precision_cholesky().numpy()
            U_inv = np.linalg.solve(U, np.eye(self.dim))
            Sigma = np.swapaxes(U_inv, 1, 2) @ U_inv
        else:
            Sigma = np.exp(2 * self.log_sigma.numpy())
        pi = np.exp(log_pi)
        gmm.set_parameters(pi / pi.sum(), self.mu.numpy(), Sigma)
        return gmm


class GradientFit(NamedTuple):
    """What ``fit_gradient`` returns: the fitted ``model`` (a GaussianMixture), the mean
    log-likelihoods ``log_likelihood`` (steps + 1,) nats per point after 0, 1, ...,
    steps updates, and ``seconds`` (steps + 1,), the time (by fit_gradient's clock) at
    which each was reached."""
    model: GaussianMixture
    log_likelihood: np.ndarray
    seconds: np.ndarray


def fit_gradient(x, init: GaussianMixture, steps: int = 1000, lr: float = 0.05,
                 callback=None, clock=time.perf_counter) -> GradientFit:
    """Maximise the log-likelihood (3) by full-batch gradient ascent: Adam
    (tinygen.optim) on -(1/N) log p(X) through the parameterisation (8), from the
    parameters of ``init`` (a GaussianMixture, left unchanged), for ``steps`` updates.

    Full batch, so that each update sees the same objective as an EM iteration and
    log_likelihood[t] is exactly (1/N) log p(X) after t updates (the loss of update t + 1,
    recorded on the way). ``callback(t, log_likelihood)``, if given, is called after
    each update's forward pass. ``clock`` gives the seconds: wall-clock time by default,
    ``time.process_time`` for this process's CPU time (the same on an idle machine with
    one thread, and unaffected by other programs sharing the cores).

    Returns GradientFit(model, log_likelihood (steps + 1,), seconds (steps + 1,)).

    Raises ValueError for x not (N, D) with init's D or not finite, steps < 0, lr <= 0,
    and TypeError for an init that is not a GaussianMixture.
    """
    if not isinstance(init, GaussianMixture):
        raise TypeError(f"fit_gradient: init must be a GaussianMixture (its parameters are "
                        f"the starting point); got {type(init).__name__}")
    x = _check_points(x, "fit_gradient", init.dim)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"fit_gradient: steps must be an integer >= 0; got {steps!r}")
    if not lr > 0:
        raise ValueError(f"fit_gradient: lr must be positive; got {lr!r}")
    model = GradientMixture.from_mixture(init)
    opt = optim.Adam(model.parameters(), lr=lr)
    xt = tensor(x)
    history, seconds = [], []
    start = clock()
    for t in range(steps):
        loss = -model.log_prob(xt).mean()
        history.append(-loss.item())
        seconds.append(clock() - start)
        if callback is not None:
            callback(t, history[-1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with no_grad():
        history.append(model.log_prob(xt).mean().item())
    seconds.append(clock() - start)
    return GradientFit(model.to_mixture(init.reg_covar), np.array(history), np.array(seconds))


# --------------------------------------------------------------------------- eq. (9)

class PCA(nn.Module):
    """Principal component analysis by the SVD of the centred data, eq. (9): z = (x -
    x_bar) V_M, x_hat = x_bar + z V_M^T.

    Buffers (float64, saved by ``state_dict``): ``mean`` x_bar (D,), ``V`` (D, M) the
    principal directions (orthonormal columns, by decreasing variance),
    ``explained_variance`` (M,) s_i^2 / N the variance along each, ``total_variance``
    (1,) the data's total variance (the trace of its covariance).

    Args:
        num_features: D; num_components: M, 1 <= M <= D.

    Raises ValueError for sizes that are not positive integers or M > D.
    """

    def __init__(self, num_features: int, num_components: int):
        super().__init__()
        for name, value in (("num_features", num_features), ("num_components", num_components)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PCA: {name} must be a positive integer; got {value!r}")
        if num_components > num_features:
            raise ValueError(f"PCA: num_components ({num_components}) must be at most "
                             f"num_features ({num_features})")
        self.num_features, self.num_components = int(num_features), int(num_components)
        self.register_buffer("mean", tensor(np.zeros(num_features)))
        self.register_buffer("V", tensor(np.eye(num_features)[:, :num_components]))
        self.register_buffer("explained_variance", tensor(np.zeros(num_components)))
        self.register_buffer("total_variance", tensor(np.zeros(1)))

    def extra_repr(self):
        return f"num_features={self.num_features}, num_components={self.num_components}"

    def fit(self, x) -> "PCA":
        """Fit to x (N, D), N >= M: x_bar, then the thin SVD (numpy.linalg.svd) of x - x_bar,
        in float64. Each direction's sign is fixed (its largest entry positive) so that
        the same data give the same directions.

        Raises ValueError for x of another D, fewer than M points, or NaN or inf."""
        x = _check_points(x, "PCA.fit", self.num_features)
        M = self.num_components
        if len(x) < M:
            raise ValueError(f"PCA.fit: needs at least num_components = {M} points; got "
                             f"{len(x)}")
        mean = x.mean(axis=0)
        _, s, Vt = np.linalg.svd(x - mean, full_matrices=False)
        V = Vt[:M].T
        V *= np.sign(V[np.abs(V).argmax(axis=0), np.arange(M)])
        self.mean.data[...] = mean
        self.V.data[...] = V
        self.explained_variance.data[...] = s[:M] ** 2 / len(x)
        self.total_variance.data[...] = (s ** 2).sum() / len(x)
        return self

    def transform(self, x):
        """z = (x - x_bar) V_M: (N, D) -> (N, M)."""
        x = _check_points(x, "PCA.transform", self.num_features)
        return (x - self.mean.numpy()) @ self.V.numpy()

    def inverse_transform(self, z):
        """x_hat = x_bar + z V_M^T: (N, M) -> (N, D)."""
        z = _check_points(z, "PCA.inverse_transform", self.num_components, name="z")
        return self.mean.numpy() + z @ self.V.numpy().T
