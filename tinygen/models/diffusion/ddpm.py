"""Denoising diffusion probabilistic models (Ho, Jain & Abbeel 2020, "Denoising Diffusion
Probabilistic Models"): the forward process, the reverse process and its training loss,
ancestral sampling, and the variational bound on the negative log-likelihood.

Forward process (fixed, no parameters; ``schedule.py`` holds beta_t and alpha_bar_t):

    q(x_t | x_{t-1}) = N(x_t; sqrt(alpha_t) x_{t-1}, beta_t I),
    q(x_t | x_0)     = N(x_t; sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I), so
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I).         (1)

((1) is Ho et al.'s eq. 4 written as a draw; the paper's own numbers are given as "eq.".)

Reverse process (learned): x_T ~ N(0, I) and

    p_theta(x_{t-1} | x_t) = N(x_{t-1}; mu_theta(x_t, t), sigma_t^2 I),
    mu_theta(x_t, t) = 1 / sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)),

the posterior mean mu~_t(x_t, x_0) with x_0 replaced by its estimate from the predicted
noise, x_0 = (x_t - sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_bar_t) (invert (1)).
sigma_t^2 is fixed: beta_t or beta~_t, the two extremes Ho et al. found to work equally.

Training (Ho et al., Algorithm 1): draw x_0, t ~ U{1..T} and eps, and descend

    L_simple = E_{x_0, eps, t} || eps - eps_theta(x_t, t) ||^2,   x_t from (1).

Sampling (Algorithm 2): x_T ~ N(0, I); for t = T..1,
x_{t-1} = mu_theta(x_t, t) + sigma_t z with z ~ N(0, I), and z = 0 at t = 1.

The variational bound (Ho et al., eq. 5), in nats per image,

    L = L_T + sum_{t=2}^{T} L_{t-1} + L_0 >= -log p_theta(x_0),
    L_T     = KL(q(x_T | x_0) || N(0, I)),
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)),   x_t ~ q(x_t | x_0),
    L_0     = -log p_theta(x_0 | x_1),

every KL between Gaussians in closed form. For 8-bit images scaled to [-1, 1] the
decoder p_theta(x_0 | x_1) is the discretised Gaussian of Ho et al. (eq. 13): the mass of
N(mu_theta(x_1, 1), sigma_1^2) on each pixel's bin of width 2/255, the two end bins
stretched to -inf and +inf, so L is an upper bound on the NLL of the discrete image.
(sigma_1^2 = beta~_2 for both variances, as in Ho et al.'s code: beta~_1 is 0.)

Symbols and code (x: Tensors (N, ...), t: integer NumPy arrays (N,) in 1..T):

    symbol                      code                                shape
    eps_theta(x_t, t)           eps_model(x_t, t)                   like x_t
    x_t from (1)                q_sample(x_0, t, eps)               like x_0
    q(x_t | x_{t-1})            q_step(x_prev, t, eps)              like x_0
    mu~_t, beta~_t              q_posterior(x_0, x_t, t)            like x_0, (N, 1, ...)
    x_0 from eps                predict_x0(x_t, t, eps)             like x_t
    mu_theta(x_t, t)            p_mean(x_t, t, eps)                 like x_t
    sigma_t^2                   sigma2(t)                           (N,) float64
    sigma_1^2 of the decoder    decoder_variance()                  float
    L_simple                    loss_simple(eps_model, x_0)         scalar
    Algorithm 2                 sample(eps_model, shape)            (n, ...)
    L_T, L_{t-1}, L_0           prior_kl(x_0), bound_term(...)      (N,) nats
    L                           variational_bound(eps_model, x_0)   (N,) nats
"""
from __future__ import annotations

import math

import numpy as np

from ... import no_grad, randint, randn, tensor
from .schedule import NoiseSchedule

VARIANCES = ("beta", "beta_tilde")


def _coef(values, t, like):
    """values[t] as a Tensor of shape (N, 1, ..., 1) with like's dtype and device, to
    broadcast over the pixels of a batch like (N, ...)."""
    t = np.asarray(t)
    v = np.asarray(values, dtype=np.float64)[t].astype(like.dtype)
    return tensor(v.reshape((-1,) + (1,) * (like.ndim - 1)), device=like.device)


def _timesteps(t, n, T, name="t"):
    """t as an int64 array (n,) in 1..T (a single int is repeated)."""
    t = np.asarray(t)
    if t.ndim == 0:
        t = np.full(n, int(t))
    if t.shape != (n,):
        raise ValueError(f"{name} must be an int or an array of {n} steps, got shape {t.shape}")
    if not np.issubdtype(t.dtype, np.integer) or t.min() < 1 or t.max() > T:
        raise ValueError(f"{name} must hold integers in 1..T = 1..{T}, got values in "
                         f"[{t.min()}, {t.max()}]")
    return t.astype(np.int64)


class GaussianDiffusion:
    """The forward and reverse processes of a DDPM over a ``NoiseSchedule`` (module
    docstring); it holds no network: every method that needs eps_theta takes it.

    Args:
        schedule: a NoiseSchedule (default: linear, T = 1000).
        variance: sigma_t^2 of the reverse steps, "beta" (beta_t) or "beta_tilde"
            (beta~_t, the posterior's).

    Raises ValueError for an unknown variance.
    """

    def __init__(self, schedule: NoiseSchedule | None = None, variance: str = "beta"):
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {', '.join(VARIANCES)}, got "
                             f"{variance!r}")
        self.schedule = schedule or NoiseSchedule.linear()
        self.variance = variance

    @property
    def T(self) -> int:
        return self.schedule.T

    # ---- the forward process
    def q_sample(self, x_0, t, eps):
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, a draw of q(x_t | x_0)
        (eq. 1), for each example's own t (N,)."""
        t = _timesteps(t, x_0.shape[0], self.T)
        a = self.schedule.alpha_bars
        return _coef(np.sqrt(a), t, x_0) * x_0 + _coef(np.sqrt(1 - a), t, x_0) * eps

    def q_step(self, x_prev, t, eps):
        """x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps, one step of q(x_t | x_{t-1})."""
        t = _timesteps(t, x_prev.shape[0], self.T)
        s = self.schedule
        return _coef(np.sqrt(s.alphas), t, x_prev) * x_prev + _coef(np.sqrt(s.betas), t,
                                                                    x_prev) * eps

    def q_posterior(self, x_0, x_t, t):
        """The mean mu~_t(x_t, x_0) and variance beta~_t (N, 1, ...) of q(x_{t-1} | x_t, x_0)
        (Ho et al., eqs. 6-7)."""
        t = _timesteps(t, x_t.shape[0], self.T)
        s = self.schedule
        mean = _coef(s.posterior_coef_x0, t, x_t) * x_0 + _coef(s.posterior_coef_xt, t,
                                                                x_t) * x_t
        return mean, _coef(s.posterior_variance, t, x_t)

    # ---- the reverse process
    def predict_x0(self, x_t, t, eps):
        """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), eq. (1) inverted."""
        t = _timesteps(t, x_t.shape[0], self.T)
        a = self.schedule.alpha_bars
        return (x_t - _coef(np.sqrt(1 - a), t, x_t) * eps) * _coef(1 / np.sqrt(a), t, x_t)

    def p_mean(self, x_t, t, eps, clip_x0=None):
        """mu_theta(x_t, t) = 1 / sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps),
        with eps = eps_theta(x_t, t) (Ho et al., eq. 11).

        clip_x0: (low, high) to clip the implied x_0 to the data's range before taking
        the posterior mean mu~_t(x_t, x_0) (as Ho et al.'s code does for images); the
        same mean when nothing is clipped. None: the formula above, unclipped."""
        t = _timesteps(t, x_t.shape[0], self.T)
        s = self.schedule
        if clip_x0 is not None:
            x_0 = self.predict_x0(x_t, t, eps).clip(*clip_x0)
            return self.q_posterior(x_0, x_t, t)[0]
        return _coef(1 / np.sqrt(s.alphas), t, x_t) * (
            x_t - _coef(s.betas / np.sqrt(np.maximum(1 - s.alpha_bars, 1e-300)), t, x_t) * eps)

    def sigma2(self, t):
        """sigma_t^2 of p_theta(x_{t-1} | x_t) at t (int array): beta_t or beta~_t. At
        t = 1 no noise is added in sampling, and the bound's decoder has its own
        variance (``decoder_variance``)."""
        s = self.schedule
        return (s.betas if self.variance == "beta" else s.posterior_variance)[np.asarray(t)]

    def decoder_variance(self) -> float:
        """sigma_1^2 of the decoder p_theta(x_0 | x_1): beta~_2 for both variances, as in
        Ho et al.'s code ("to get a better decoder log likelihood"): beta~_1 = 0 would
        make it a point mass, and beta_1 = 1e-4 is wider than beta~_2 = 5.5e-5, which
        costs about 0.4 bits/dim in L_0 (T = 1000). beta_1 when T = 1."""
        s = self.schedule
        return float(s.posterior_variance[2]) if self.T >= 2 else float(s.betas[1])

    def loss_simple(self, eps_model, x_0, t=None, eps=None, **model_kwargs):
        """L_simple = mean over the batch and the pixels of (eps - eps_theta(x_t, t))^2,
        with t ~ U{1..T} and eps ~ N(0, I) per example unless given (Ho et al., eq. 14;
        Algorithm 1). model_kwargs go to the model (e.g. a class label y)."""
        n = x_0.shape[0]
        t = randint(1, self.T + 1, size=(n,)).numpy() if t is None else t
        if eps is None:
            eps = randn(*x_0.shape, device=x_0.device, dtype=x_0.dtype)
        x_t = self.q_sample(x_0, t, eps)
        return ((eps - eps_model(x_t, t, **model_kwargs)) ** 2).mean()

    def p_sample_step(self, eps_model, x_t, t: int, z=None, clip_x0=None, **model_kwargs):
        """One step of Algorithm 2: x_{t-1} = mu_theta(x_t, t) + sigma_t z (no noise at
        t = 1). Returns (x_{t-1}, eps_theta(x_t, t))."""
        n = x_t.shape[0]
        ts = np.full(n, t)
        eps = eps_model(x_t, ts, **model_kwargs)
        mean = self.p_mean(x_t, ts, eps, clip_x0)
        if t == 1:
            return mean, eps
        if z is None:
            z = randn(*x_t.shape, device=x_t.device, dtype=x_t.dtype)
        return mean + math.sqrt(float(self.sigma2(t))) * z, eps

    @no_grad()
    def sample(self, eps_model, shape, device="cpu", x_T=None, clip_x0=None,
               trajectory_at=(), progress=None, dtype=np.float32, **model_kwargs):
        """Ancestral sampling, Algorithm 2 of Ho et al.: x_T ~ N(0, I), then T steps down.

        Args:
            eps_model: eps_theta(x_t, t), t an int array (n,).
            shape: (n, ...) of the samples.
            x_T: the starting noise instead of a fresh draw (a Tensor of that shape).
            clip_x0: (low, high) for images (see ``p_mean``); None for exact math.
            trajectory_at: steps t whose x_t to return too (0 for the final x_0).
            progress: a callable wrapping the iterator of steps (e.g. tqdm), or None.
            dtype: of the fresh x_T (the noise follows x's dtype).
            model_kwargs: for the model (e.g. y, the class labels).

        Returns x_0 (a Tensor of ``shape``), or (x_0, {t: x_t as NumPy}) when
        trajectory_at is given.
        """
        x = randn(*shape, device=device, dtype=dtype) if x_T is None else x_T
        keep = {}
        steps = range(self.T, 0, -1)
        for t in (progress(steps) if progress else steps):
            if t in trajectory_at:
                keep[t] = x.numpy()
            x, _ = self.p_sample_step(eps_model, x, t, clip_x0=clip_x0, **model_kwargs)
        if 0 in trajectory_at:
            keep[0] = x.numpy()
        return (x, keep) if trajectory_at else x

    # ---- the variational bound
    def prior_kl(self, x_0):
        """L_T = KL(q(x_T | x_0) || N(0, I)), summed over each image's pixels, in nats
        (N,) float64: 1/2 sum (a x_0^2 + (1 - a) - 1 - log(1 - a)), a = alpha_bar_T."""
        a = float(self.schedule.alpha_bars[-1])
        x = _as_numpy64(x_0)
        per_pixel = 0.5 * (a * x ** 2 + (1 - a) - 1 - math.log(1 - a))
        return per_pixel.reshape(len(x), -1).sum(axis=1)

    @no_grad()
    def bound_term(self, eps_model, x_0, t: int, eps=None, clip_x0=None, **model_kwargs):
        """The bound's term at step t for each image, in nats (N,) float64: L_{t-1} =
        KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)) for t >= 2, and the decoder's
        L_0 = -log p_theta(x_0 | x_1) for t = 1, with x_t ~ q(x_t | x_0) drawn from eps.
        x_0 must hold 8-bit values scaled to [-1, 1] for t = 1 (the decoder is
        discrete). clip_x0: as in ``p_mean``, to bound the model that is sampled (Ho et
        al.'s code clips in both)."""
        n = x_0.shape[0]
        ts = np.full(n, t)
        if eps is None:
            eps = randn(*x_0.shape, device=x_0.device, dtype=x_0.dtype)
        x_t = self.q_sample(x_0, ts, eps)
        mean = self.p_mean(x_t, ts, eps_model(x_t, ts, **model_kwargs), clip_x0)
        if t == 1:
            return -discretized_gaussian_log_likelihood(
                _as_numpy64(x_0), _as_numpy64(mean), math.sqrt(self.decoder_variance()))
        post_mean, _ = self.q_posterior(x_0, x_t, ts)
        v1 = float(self.schedule.posterior_variance[t])
        v2 = float(self.sigma2(t))
        sq = (_as_numpy64(post_mean) - _as_numpy64(mean)) ** 2
        per_pixel = 0.5 * (math.log(v2 / v1) + (v1 + sq) / v2 - 1)
        return per_pixel.reshape(n, -1).sum(axis=1)

    def variational_bound(self, eps_model, x_0, progress=None, clip_x0=None, **model_kwargs):
        """L = L_T + sum_{t=2}^T L_{t-1} + L_0 per image, in nats (N,) float64: an upper
        bound on -log p_theta(x_0) of the discrete image (Ho et al., eq. 5), one network
        evaluation per step t (T in all); clip_x0 as in ``bound_term``. Returns a dict
        with "total" (N,), "prior" L_T (N,), "decoder" L_0 (N,) and "per_step" (T,) the
        batch means of L_{t-1}."""
        per_step = np.zeros(self.T)
        total = self.prior_kl(x_0)
        prior = total.copy()
        decoder = None
        steps = range(1, self.T + 1)
        for t in (progress(steps) if progress else steps):
            term = self.bound_term(eps_model, x_0, t, clip_x0=clip_x0, **model_kwargs)
            per_step[t - 1] = term.mean()
            total += term
            if t == 1:
                decoder = term
        return {"total": total, "prior": prior, "decoder": decoder, "per_step": per_step}


def _as_numpy64(x):
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)


# The standard normal CDF through erfc, element by element in float64: NumPy has no erf,
# and the bound's decoder needs tail probabilities to full precision.
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _normal_cdf(z):
    """Phi(z) for an array z, float64, accurate in both tails."""
    return 0.5 * _erfc(-np.asarray(z, dtype=np.float64) / math.sqrt(2)).astype(np.float64)


def discretized_gaussian_log_likelihood(x, mean, std, bins: int = 256):
    """log p(x) of images x whose pixels take the ``bins`` values -1, ..., 1 (8-bit data
    scaled to [-1, 1]) under the discretised Gaussian of Ho et al. (eq. 13): each pixel's
    probability is the mass of N(mean, std^2) on its bin [x - 1/255, x + 1/255], the first
    bin extended to -inf and the last to +inf, so the probabilities of the 256 values sum
    to 1. Summed over each image's pixels: (N,) float64, in nats.

    The mass of a bin is a difference of two CDFs; on the side of the mean where both
    are near 1 it is computed from the other tail, 1 - Phi(a) = Phi(-a), to keep its
    digits.

    Raises ValueError when x holds values off the grid of bins."""
    x = np.asarray(x, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    half = 1.0 / (bins - 1)                       # half a bin: the grid step is 2 / 255
    k = (x + 1) / (2 * half)
    if np.abs(k - np.round(k)).max(initial=0) > 1e-3 or k.min(initial=0) < -1e-3 \
            or k.max(initial=0) > bins - 1 + 1e-3:
        raise ValueError(f"discretized_gaussian_log_likelihood: x must hold {bins} levels "
                         f"scaled to [-1, 1] (k / {bins - 1} * 2 - 1)")
    lo = np.where(x < -1 + half, -np.inf, (x - half - mean) / std)
    hi = np.where(x > 1 - half, np.inf, (x + half - mean) / std)
    upper = lo > 0        # both ends above the mean: use the upper tail
    mass = np.where(upper, _normal_cdf(-lo) - _normal_cdf(-hi),
                    _normal_cdf(hi) - _normal_cdf(lo))
    logp = np.log(np.maximum(mass, 1e-300))
    return logp.reshape(len(x), -1).sum(axis=1)
