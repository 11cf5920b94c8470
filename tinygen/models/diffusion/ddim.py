"""Denoising diffusion implicit models (Song, Meng & Ermon 2021, "Denoising Diffusion
Implicit Models"): sampling a trained DDPM in S << T steps, deterministically or not.

DDIM keeps the marginals q(x_t | x_0) of the DDPM (so the same eps_theta serves) but
uses a family of non-Markovian forward processes whose reverse steps can skip. On a
subsequence tau_1 < ... < tau_S of 1..T, with a = alpha_bar_{tau_i} and a' =
alpha_bar_{tau_{i-1}} (and alpha_bar at tau_0 = 0 equal to 1: the last step lands on
clean data), one step is (Song et al., eq. 12)

    x_0^    = (x_t - sqrt(1 - a) eps_theta(x_t, t)) / sqrt(a)           "predicted x_0"
    x_{t'}  = sqrt(a') x_0^ + sqrt(1 - a' - sigma^2) eps_theta(x_t, t) + sigma z,
    sigma   = eta sqrt((1 - a') / (1 - a)) sqrt(1 - a / a'),                      (16)

eta = 0 gives the deterministic DDIM (an ODE solver in disguise: the same x_T always
gives the same x_0), eta = 1 with S = T gives the DDPM's ancestral sampling with sigma_t^2
= beta~_t exactly.

The subsequence here is tau_i = round(i T / S), i = 1..S: it ends at T (so x_T ~ N(0, I)
is where it starts) and, for S = T, is every step.

Symbols and code:

    symbol          code                                        shape
    tau_1..tau_S    ddim_timesteps(T, S)                        (S,) ints
    one step (16)   ddim_step(diffusion, eps, x_t, t, t_prev, eta)
    sampling        ddim_sample(diffusion, eps_model, shape, S, eta)   (n, ...)
"""
from __future__ import annotations

import math

import numpy as np

from ... import no_grad, randn


def ddim_timesteps(T: int, S: int) -> np.ndarray:
    """tau_i = round(i T / S) for i = 1..S: S increasing steps of 1..T ending at T.

    Raises ValueError unless 1 <= S <= T."""
    if isinstance(S, bool) or not isinstance(S, (int, np.integer)) or not 1 <= S <= T:
        raise ValueError(f"DDIM steps S must be an integer in 1..T = 1..{T}, got {S!r}")
    return np.round(np.arange(1, S + 1) * T / S).astype(np.int64)


def ddim_step(diffusion, eps, x_t, t: int, t_prev: int, eta: float = 0.0, z=None,
              clip_x0=None):
    """x_{t_prev} from x_t and eps = eps_theta(x_t, t) by eq. (12) of Song et al., with
    alpha_bar_0 = 1 when t_prev = 0. clip_x0: (low, high) to clip x_0^ to the data's range
    (eps then re-derived from it, so that the step stays consistent). Returns
    (x_{t_prev}, x_0^)."""
    abar = diffusion.schedule.alpha_bars        # alpha_bar[0] = 1: no wrapped index
    a, a_prev = float(abar[t]), float(abar[t_prev])
    x0 = (x_t - math.sqrt(1 - a) * eps) * (1 / math.sqrt(a))
    if clip_x0 is not None:
        x0 = x0.clip(*clip_x0)
        eps = (x_t - math.sqrt(a) * x0) * (1 / math.sqrt(1 - a))
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a)) * math.sqrt(1 - a / a_prev)
    x_prev = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma ** 2, 0.0)) * eps
    if sigma > 0:
        x_prev = x_prev + sigma * (randn(*x_t.shape, device=x_t.device, dtype=x_t.dtype)
                                   if z is None else z)
    return x_prev, x0


@no_grad()
def ddim_sample(diffusion, eps_model, shape, steps: int = 50, eta: float = 0.0,
                device="cpu", x_T=None, clip_x0=None, noise=None, progress=None,
                dtype=np.float32, **model_kwargs):
    """DDIM sampling in ``steps`` network evaluations (module docstring).

    Args:
        diffusion: the GaussianDiffusion whose schedule eps_model was trained on.
        eps_model: eps_theta(x_t, t), t an int array (n,).
        shape: (n, ...) of the samples. steps: S. eta: 0 deterministic, 1 DDPM-like.
        x_T: starting noise (Tensor) instead of a fresh draw.
        clip_x0: (low, high) for images; None for exact math.
        noise: a callable i -> z for the i-th step's noise (tests); default fresh draws.
        progress: a callable wrapping the iterator of steps (e.g. tqdm).
        dtype: of the fresh x_T (the noise follows x's dtype).
        model_kwargs: for the model (e.g. y).

    Returns x_0, a Tensor of ``shape``.

    Raises ValueError for steps outside 1..T or eta outside [0, 1]."""
    if not 0 <= eta <= 1:
        # beyond 1, sigma^2 can pass 1 - alpha_bar_{t'} and the marginals break
        raise ValueError(f"DDIM eta must lie in [0, 1], got {eta}")
    taus = ddim_timesteps(diffusion.T, steps)
    x = randn(*shape, device=device, dtype=dtype) if x_T is None else x_T
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {x.shape}, the samples {tuple(shape)}")
    order = range(len(taus) - 1, -1, -1)
    for i in (progress(order) if progress else order):
        t, t_prev = int(taus[i]), int(taus[i - 1]) if i > 0 else 0
        eps = eps_model(x, np.full(shape[0], t), **model_kwargs)
        x, _ = ddim_step(diffusion, eps, x, t, t_prev, eta, None if noise is None else noise(i),
                         clip_x0)
    return x
