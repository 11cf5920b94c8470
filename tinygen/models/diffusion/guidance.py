"""Guiding a diffusion model toward a class c: classifier guidance (Dhariwal & Nichol
2021, "Diffusion Models Beat GANs on Image Synthesis") and classifier-free guidance (Ho &
Salimans 2022, "Classifier-Free Diffusion Guidance").

Classifier guidance. A classifier p_phi(c | x_t, t) trained on noisy images tilts each
reverse step toward images it reads as c: the mean of p_theta(x_{t-1} | x_t) moves along
the classifier's gradient (Dhariwal & Nichol, Algorithm 1),

    mu' = mu + s Sigma grad_{x_t} log p_phi(c | x_t),        Sigma = sigma_t^2 I,       (1)

with the guidance scale s (s = 1 samples p(x | c) in the small-step limit; larger s
sharpens it toward the classifier's modes). For DDIM, which has no Sigma, the same tilt
enters through the noise prediction, since eps = -sqrt(1 - alpha_bar_t) grad log p(x_t)
(Dhariwal & Nichol, Algorithm 2):

    eps'(x_t) = eps_theta(x_t, t) - s sqrt(1 - alpha_bar_t) grad_{x_t} log p_phi(c | x_t).  (1')

Classifier-free guidance. One network eps_theta(x_t, t, c) learns both the conditional
and the unconditional noise: during training the label is replaced by a "no label"
token with probability p_uncond. At sampling the two predictions are mixed,

    eps^(x_t, c) = (1 + omega) eps_theta(x_t, t, c) - omega eps_theta(x_t, t),           (2)

omega = 0 the conditional model itself, omega > 0 pushing away from the unconditional
prediction, i.e. along grad log p(c | x_t) of the classifier implicit in the two
(Ho & Salimans, section 3.2), at the price of diversity: omega corresponds to a
classifier-guidance scale s = 1 + omega. -1 < omega < 0 weakens the conditioning, and
omega = -1 is the unconditional model.

Symbols and code:

    symbol                      code                                        shape
    label dropout, p_uncond     drop_labels(y, p_uncond, num_classes, rng)  (N,) ints
    eps^ of (2)                 classifier_free_eps(eps_model, omega)       a callable
    grad log p_phi(c | x_t)     classifier_gradient(log_prob, x_t, t, y)    like x_t
    mu' of (1)                  classifier_guided_mean(mu, sigma2, grad, s) like x_t
    eps' of (1')                classifier_guided_eps(...)                  a callable
    sampling with (1)           classifier_guided_sample(...)               (n, ...)
"""
from __future__ import annotations

import math

import numpy as np

from ... import enable_grad, grad, no_grad, randn, tensor


def drop_labels(y, p_uncond: float, num_classes: int, rng):
    """The labels y (N,) with each replaced by the "no label" token ``num_classes`` with
    probability p_uncond, for training one network conditionally and unconditionally
    (Ho & Salimans 2022, Algorithm 1). rng: a NumPy Generator. Returns a new int64 array.

    Raises ValueError for p_uncond outside [0, 1]."""
    if not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond}")
    y = np.array(y.numpy() if hasattr(y, "numpy") else y, dtype=np.int64, copy=True)
    y[rng.random(len(y)) < p_uncond] = num_classes
    return y


def classifier_free_eps(eps_model, omega: float):
    """eps^(x_t, t, y) = (1 + omega) eps_theta(x_t, t, y) - omega eps_theta(x_t, t), eq. (2):
    a callable with the eps_model's signature (x_t, t, y), y the labels (N,). The
    unconditional prediction is the model called with y = None. omega = 0 returns the
    conditional prediction alone (one network evaluation).

    Raises ValueError for omega < -1 (past the unconditional model)."""
    if omega < -1:
        raise ValueError(f"the guidance weight omega must be >= -1, got {omega}")

    def guided(x_t, t, y=None):
        conditional = eps_model(x_t, t, y)
        if omega == 0:
            return conditional
        return (1 + omega) * conditional - omega * eps_model(x_t, t, None)
    return guided


def classifier_gradient(log_prob, x_t, t, y):
    """grad_{x_t} log p_phi(y | x_t, t) for each example, through the engine: log_prob(x_t,
    t, y) -> (N,) log-probabilities of the labels. Returns a Tensor like x_t, without a
    graph (examples are independent, so the gradient of the sum is each one's own)."""
    with enable_grad():
        x = x_t.detach().requires_grad_()
        (g,) = grad(log_prob(x, t, y).sum(), [x])
    return g.detach()


def classifier_guided_mean(mean, sigma2: float, gradient, scale: float):
    """mu' = mu + s sigma_t^2 grad_{x_t} log p_phi(c | x_t), eq. (1) with Sigma = sigma_t^2 I."""
    return mean + (scale * sigma2) * gradient


def classifier_guided_eps(diffusion, eps_model, log_prob, y, scale: float):
    """eps'(x_t, t) = eps_theta(x_t, t) - s sqrt(1 - alpha_bar_t) grad log p_phi(y | x_t, t),
    eq. (1'): a callable (x_t, t) -> eps' for DDIM (or any eps-based sampler), y the
    classes (N,) of the batch it will be called on."""
    abar = diffusion.schedule.alpha_bars

    def guided(x_t, t):
        eps = eps_model(x_t, t)
        if not scale:
            return eps
        g = classifier_gradient(log_prob, x_t, t, y)
        coef = (scale * np.sqrt(1 - abar[np.asarray(t)])).reshape((-1,) + (1,) * (x_t.ndim - 1))
        return eps - tensor(coef.astype(x_t.dtype), device=x_t.device) * g
    return guided


@no_grad()
def classifier_guided_sample(diffusion, eps_model, log_prob, y, scale: float, shape,
                             device="cpu", x_T=None, clip_x0=None, progress=None):
    """Ancestral sampling (Algorithm 2 of Ho et al.) with every mean shifted by eq. (1)
    (Dhariwal & Nichol, Algorithm 1).

    Args:
        diffusion: a GaussianDiffusion. eps_model: eps_theta(x_t, t) (unconditional).
        log_prob: log p_phi(y | x_t, t) -> (N,), differentiable in x_t.
        y: the classes (n,) to draw. scale: s. shape: (n, ...).
        x_T, clip_x0, progress: as in ``GaussianDiffusion.sample``.

    Returns x_0, a Tensor of ``shape``."""
    x = randn(*shape, device=device) if x_T is None else x_T
    steps = range(diffusion.T, 0, -1)
    for t in (progress(steps) if progress else steps):
        ts = np.full(shape[0], t)
        mean = diffusion.p_mean(x, ts, eps_model(x, ts), clip_x0)
        sigma2 = float(diffusion.sigma2(t))
        if scale:
            mean = classifier_guided_mean(mean, sigma2, classifier_gradient(log_prob, x, ts, y),
                                          scale)
        x = mean if t == 1 else mean + math.sqrt(sigma2) * randn(*shape, device=device,
                                                                 dtype=x.dtype)
    return x
