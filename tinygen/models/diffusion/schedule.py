"""Noise schedules of a diffusion model: beta_1..beta_T and every quantity derived from
them (Ho, Jain & Abbeel 2020, section 2; the cosine schedule of Nichol & Dhariwal 2021,
"Improved Denoising Diffusion Probabilistic Models", eq. 17).

The forward process adds Gaussian noise in T steps,

    q(x_t | x_{t-1}) = N(x_t; sqrt(alpha_t) x_{t-1}, beta_t I),     alpha_t = 1 - beta_t,

and since Gaussians compose, x_t given x_0 is Gaussian too:

    q(x_t | x_0) = N(x_t; sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),
    alpha_bar_t = prod_{s=1}^{t} alpha_s.

Its posterior given x_0 (Bayes' rule for two Gaussians) is what the reverse process
learns to imitate:

    q(x_{t-1} | x_t, x_0) = N(x_{t-1}; mu~_t(x_t, x_0), beta~_t I),
    mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
            + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t,
    beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t.

Indexing. t runs over 1..T as in the notes. Every array here has T + 1 entries indexed
by t itself; entry 0 stands for t = 0, the clean data: beta_0 = 0 and alpha_bar_0 = 1.
So alpha_bar_{t-1} is ``alpha_bar[t - 1]`` for every t >= 1, with no wrapped index
(``alpha_bar[-1]`` would be alpha_bar_T, a classic bug at t = 1).

Symbols and code (float64 NumPy arrays of shape (T + 1,)):

    beta_t              betas
    alpha_t             alphas
    alpha_bar_t         alpha_bars
    beta~_t             posterior_variance      (beta~_0 = beta~_1 = 0)
    the two weights     posterior_coef_x0, posterior_coef_xt
      of mu~_t
"""
from __future__ import annotations

import math

import numpy as np

SCHEDULES = ("linear", "cosine")


class NoiseSchedule:
    """beta_1..beta_T and the quantities derived from them (module docstring).

    Args:
        betas: (T,) the variances beta_1..beta_T, each in (0, 1).

    Raises ValueError when betas is empty, not one-dimensional, or has an entry outside
    (0, 1).
    """

    def __init__(self, betas):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError(f"NoiseSchedule: betas must be a non-empty 1-D array, got "
                             f"shape {betas.shape}")
        if not np.all((betas > 0) & (betas < 1)):
            bad = betas[~((betas > 0) & (betas < 1))][0]
            raise ValueError(f"NoiseSchedule: every beta_t must lie in (0, 1), got {bad}")
        self.T = int(betas.size)
        self.betas = np.concatenate([[0.0], betas])
        self.alphas = 1.0 - self.betas
        self.alpha_bars = np.cumprod(self.alphas)           # alpha_bar_0 = 1
        prev = np.concatenate([[1.0], self.alpha_bars[:-1]])  # alpha_bar_{t-1}; t = 0: 1
        one_minus = 1.0 - self.alpha_bars
        with np.errstate(divide="ignore", invalid="ignore"):  # t = 0 has no posterior
            self.posterior_variance = np.where(
                np.arange(self.T + 1) > 0, (1.0 - prev) / one_minus * self.betas, 0.0)
            self.posterior_coef_x0 = np.where(
                np.arange(self.T + 1) > 0, np.sqrt(prev) * self.betas / one_minus, 0.0)
            self.posterior_coef_xt = np.where(
                np.arange(self.T + 1) > 0, np.sqrt(self.alphas) * (1.0 - prev) / one_minus,
                0.0)

    @classmethod
    def linear(cls, T: int = 1000, beta_1: float | None = None, beta_T: float | None = None):
        """beta_t rising linearly from beta_1 to beta_T (Ho et al. 2020, section 4:
        1e-4 to 0.02 with T = 1000, so that alpha_bar_T = 4e-5 and x_T is almost pure
        noise). Unset, both scale with 1000 / T (as in Nichol & Dhariwal's code), so
        that sum beta_t stays that of T = 1000 and alpha_bar_T about as small (3e-5 for
        T = 200, 8e-6 for T = 50): with T = 200 and the unscaled 1e-4..0.02, alpha_bar_T
        would be 0.13, far from noise. At T = 20 and below the scaled betas reach 1:
        they are clipped at 0.999 (such short chains are for tests and quick trials),
        as are given ones."""
        _check_T(T)
        scale = 1000 / T
        beta_1 = 1e-4 * scale if beta_1 is None else beta_1
        beta_T = 0.02 * scale if beta_T is None else beta_T
        return cls(np.minimum(np.linspace(beta_1, beta_T, T), 0.999))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999):
        """alpha_bar_t = f(t) / f(0), f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2
        (Nichol & Dhariwal 2021, eq. 17): alpha_bar falls linearly in the middle and
        slowly at both ends, so fewer steps are spent on almost-pure noise. beta_t =
        1 - alpha_bar_t / alpha_bar_{t-1}, clipped at max_beta = 0.999 to avoid the
        singularity at t = T."""
        _check_T(T)
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return cls(np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta))

    @classmethod
    def named(cls, name: str, T: int = 1000):
        """``NoiseSchedule.linear(T)`` or ``NoiseSchedule.cosine(T)`` by name."""
        if name not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {name!r}; choose one of "
                             f"{', '.join(SCHEDULES)}")
        return getattr(cls, name)(T)

    def snr(self, t):
        """The signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) at t (int or array)."""
        a = self.alpha_bars[np.asarray(t)]
        return a / (1.0 - a)

    def __repr__(self):
        return (f"NoiseSchedule(T={self.T}, beta_1={self.betas[1]:.3g}, "
                f"beta_T={self.betas[-1]:.3g}, alpha_bar_T={self.alpha_bars[-1]:.3g})")


def _check_T(T):
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"the number of diffusion steps T must be a positive integer, "
                         f"got {T!r}")
