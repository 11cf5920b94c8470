"""What a trained unconditional DDPM does beyond sampling, with no retraining: filling in
missing pixels (inpainting, imputation) and removing Gaussian noise (denoising).

Inpainting by replacement (Song, Sohl-Dickstein et al. 2021, "Score-Based Generative
Modeling through SDEs", appendix I.2; Lugmayr et al. 2022, "RePaint").
With a mask m (1 where a pixel is known) and the known image x_0^known, every reverse
step makes the known pixels agree with the forward process and lets the model fill the
rest:

    x_{t-1}^known   ~ q(x_{t-1} | x_0^known)        (a fresh draw of Ho et al.'s eq. 4)
    x_{t-1}^unknown ~ p_theta(x_{t-1} | x_t)        (one reverse step from the merged x_t)
    x_{t-1} = m * x_{t-1}^known + (1 - m) * x_{t-1}^unknown.

The unknown pixels only see the known ones through eps_theta, one step at a time, so the
two parts can disagree; RePaint's resampling repeats each step r times, diffusing the
merged x_{t-1} back to x_t by q(x_t | x_{t-1}) in between, to let them harmonise (here
with jumps of one step; RePaint's default jumps 10 steps back, U = 10).

Denoising. An observation y = x_0 + sigma n with n ~ N(0, I) is, after scaling, a draw of
x_t for the t whose noise level matches: x_t / sqrt(alpha_bar_t) = x_0 + sqrt((1 -
alpha_bar_t) / alpha_bar_t) eps, so choose t with sqrt((1 - alpha_bar_t) / alpha_bar_t)
closest to sigma, set x_t = sqrt(alpha_bar_t) y, and run the reverse process from t.

Symbols and code:

    symbol                      code                                        shape
    m, x_0^known                mask, x_known                               like x
    inpainting                  inpaint(diffusion, eps_model, x_known, mask) like x_known
    t matching sigma            noise_level_step(schedule, sigma)           int
    denoising                   denoise(diffusion, eps_model, y, sigma)     like y
"""
from __future__ import annotations

import math

import numpy as np

from ... import no_grad, randn, tensor


@no_grad()
def inpaint(diffusion, eps_model, x_known, mask, resample: int = 1, clip_x0=None,
            progress=None):
    """Fill the pixels where mask is 0 by the replacement method (module docstring),
    with RePaint's ``resample`` passes per step (1: none).

    Args:
        diffusion: a GaussianDiffusion. eps_model: eps_theta(x_t, t).
        x_known: (N, ...) Tensor, the images (their pixels where mask is 1 are kept).
        mask: (N, ...) or broadcastable array or Tensor of 1 (known) and 0 (missing).
        resample: r >= 1. clip_x0: (low, high) for images. progress: wraps the steps.

    Returns x_0 (N, ...): the known pixels exactly as given, the others filled in.

    Raises ValueError for resample < 1 or a mask that is not 0/1."""
    if resample < 1:
        raise ValueError(f"resample must be at least 1, got {resample}")
    m = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask, dtype=np.float64)
    if not np.isin(m, (0.0, 1.0)).all():
        raise ValueError("the mask must hold only 0 (missing) and 1 (known)")
    m = tensor(np.broadcast_to(m, x_known.shape).astype(x_known.dtype), device=x_known.device)
    keep, fill = m, 1 - m
    n, shape = x_known.shape[0], x_known.shape
    x = randn(*shape, device=x_known.device, dtype=x_known.dtype)
    steps = range(diffusion.T, 0, -1)
    for t in (progress(steps) if progress else steps):
        passes = resample if t > 1 else 1     # at t = 1 the step lands on x_0: no going back
        for r in range(passes):
            unknown, _ = diffusion.p_sample_step(eps_model, x, t, clip_x0=clip_x0)
            if t > 1:
                known = diffusion.q_sample(x_known, np.full(n, t - 1),
                                           randn(*shape, device=x_known.device,
                                                 dtype=x_known.dtype))
            else:
                known = x_known
            merged = keep * known + fill * unknown
            if r < passes - 1:   # back to x_t by q(x_t | x_{t-1}), beta_t (RePaint's
                # Algorithm 1 writes beta_{t-1} there, an index slip: the step from x_{t-1}
                # to x_t has variance beta_t), to take the step again
                x = diffusion.q_step(merged, np.full(n, t),
                                     randn(*shape, device=x_known.device, dtype=x_known.dtype))
            else:
                x = merged
    return x


def noise_level_step(schedule, sigma: float) -> int:
    """The t in 1..T whose sqrt((1 - alpha_bar_t) / alpha_bar_t), the noise level of x_t /
    sqrt(alpha_bar_t), is closest to sigma (in log scale).

    Raises ValueError for sigma <= 0."""
    if not sigma > 0:
        raise ValueError(f"the noise level sigma must be positive, got {sigma}")
    a = schedule.alpha_bars[1:]
    levels = np.sqrt((1 - a) / a)
    return int(np.argmin(np.abs(np.log(levels) - math.log(sigma)))) + 1


@no_grad()
def denoise(diffusion, eps_model, y, sigma: float, clip_x0=None, progress=None):
    """Denoise y = x_0 + sigma n (module docstring): x_t = sqrt(alpha_bar_t) y at the t of
    ``noise_level_step``, then ancestral steps t..1. Returns (x_0, t)."""
    t0 = noise_level_step(diffusion.schedule, sigma)
    x = y * math.sqrt(float(diffusion.schedule.alpha_bars[t0]))
    steps = range(t0, 0, -1)
    for t in (progress(steps) if progress else steps):
        x, _ = diffusion.p_sample_step(eps_model, x, t, clip_x0=clip_x0)
    return x, t0
