"""The score-SDE view of a DDPM (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021,
"Score-Based Generative Modeling through Stochastic Differential Equations"): the
forward process as a stochastic differential equation in continuous time, sampling by
solving its reverse in time (stochastically, or deterministically through the
probability-flow ODE), and exact log-likelihoods through that ODE.

The VP SDE. As T -> infinity the DDPM's steps x_k = sqrt(1 - beta_k) x_{k-1} +
sqrt(beta_k) eps become, with t = k / T in [0, 1] and beta(t) = T beta_{tT},

    dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw = f(x, t) dt + g(t) dw,              (1)

w a Wiener process. The DDPM's linear schedule 1e-4..0.02 with T = 1000 gives beta(t)
linear from beta_min = 0.1 to beta_max = 20. (1) is linear, so x_t given x_0 is Gaussian:

    x_t | x_0 ~ N(sqrt(alpha_bar(t)) x_0, sigma(t)^2 I),
    alpha_bar(t) = exp(-int_0^t beta(s) ds) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2)),
    sigma(t)^2 = 1 - alpha_bar(t),                                                   (2)

the continuous counterpart of q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I):
alpha_bar(k / T) is close to the DDPM's alpha_bar_k (their logs differ by about
sum_k beta_k^2 / 2, under 0.07 at t = 1 for the schedule above; relatively, sigma(k / T)
differs most at k = 1, by 5%: beta(t) = T beta_{tT} sits half a step off the discrete
schedule, which ``score_from_eps`` can correct by matching noise levels instead of
times).

The score from the noise predictor. x_t = sqrt(alpha_bar) x_0 + sigma eps, so
grad_{x_t} log q(x_t | x_0) = -eps / sigma(t), and the minimiser of L_simple, E[eps | x_t],
gives the score of the marginal q_t:

    s_theta(x, t) = -eps_theta(x, tT) / sigma(t)  ~  grad_x log q_t(x).            (3)

Training the score directly by denoising score matching (Vincent 2011),
E || s_theta(x_t, t) + eps / sigma(t) ||^2, is L_simple divided by sigma(t)^2: weighting
it by lambda(t) = sigma(t)^2 gives L_simple back.

The reverse-time SDE (Anderson 1982): running time backwards from x_1 ~ N(0, I),

    dx = [f(x, t) - g(t)^2 s(x, t)] dt + g(t) dw_bar,                                (4)

dt < 0, w_bar a Wiener process in reverse time, has the same marginals q_t. Euler-
Maruyama on t_0 = 1 > t_1 > ... > t_N = eps_t, h = t_i - t_{i+1} > 0:

    x_{i+1} = x_i - [f(x_i, t_i) - g(t_i)^2 s(x_i, t_i)] h + g(t_i) sqrt(h) z,       (5)

no noise on the last step (Song et al.'s "noise removal", as in the DDPM's last step).
Predictor-corrector sampling adds Langevin steps at each t_i (the corrector),

    x <- x + e s(x, t) + sqrt(2 e) z,   e = 2 alpha (r ||z|| / ||s(x, t)||)^2,        (6)

r the signal-to-noise ratio ``snr`` (0.16 in Song et al. for the VP SDE), alpha =
alpha_bar(t_i) / alpha_bar(t_{i+1}) = exp(-int beta over the step) (their 1 - beta_i, the
DDPM's alpha of the step, positive however coarse the step), the norms per example and
averaged over the batch (as in their code).

The probability-flow ODE: the deterministic process

    dx/dt = F(x, t) = f(x, t) - 1/2 g(t)^2 s(x, t)                                    (7)

has the same marginals q_t as (1). Solving it from t = 1 to eps_t maps noise to data
deterministically (DDIM is a discretisation of it), with a fixed-step Runge-Kutta 4 or an
adaptive Dormand-Prince 5(4) that picks its steps to meet rtol and atol.

Exact likelihood. Along a solution of (7) the density obeys the instantaneous change of
variables (Chen et al. 2018, "Neural Ordinary Differential Equations"),
d/dt log p_t(x_t) = -div_x F(x_t, t), so

    log p_{eps_t}(x) = log N(x_1; 0, I) + int_{eps_t}^{1} div_x F(x_t, t) dt,        (8)

x_t solving (7) forwards from x_{eps_t} = x. The ODE is solved for [x; delta] together,
d delta / dt = div F. The divergence exactly, div F = sum_j dF_j / dx_j, one backward
pass per dimension (for 2-D points), or by Hutchinson's estimator div F = E_v[v^T (dF/dx)
v] with E[v v^T] = I (Rademacher or Gaussian v, drawn once per example and held fixed
through the solve), one vector-Jacobian product (for images). The data are treated as
x_{eps_t} (the density of the model at t = eps_t). For 8-bit images scaled to [-1, 1]
and dequantised, ``tinygen.metrics.bits_per_dim(-log_p, D, scale_bits=7)`` gives bits per
dimension of the discrete image (log2 of 256 / 2, the scaling).

Times t are reals in [0, 1] (a float for the whole batch, or a float64 NumPy array
(N,)); x are Tensors (N, ...); everything keeps x's dtype and device.

Symbols and code:

    symbol                      code                                        shape
    beta(t)                     sde.beta(t)                                 like t, float64
    alpha_bar(t), sigma(t)      sde.alpha_bar(t), sde.sigma(t)              like t, float64
    f(x, t), g(t)               sde.drift(x, t), sde.diffusion(t)           like x, like t
    x_t from (2)                sde.perturb(x_0, t, eps)                    like x_0
    log N(x; 0, I)              sde.prior_log_prob(x)                       (N,) float64
    s_theta (3)                 score_from_eps(eps_model, sde, T[, schedule])  score(x, t): like x
    -eps / sigma                dsm_target(sde, eps, t)                     like eps
    DSM loss                    dsm_loss(score, sde, x_0, ...)              scalar
    (5), with (6)               reverse_sde_sample(score, sde, shape, ...)  (n, ...)
    (6), one step               langevin_step(score, x, t, snr, alpha)      like x, float
    F (7)                       probability_flow_drift(score, sde)          F(x, t): like x
    an ODE solve                odeint(f, y0, t0, t1, method, ...)          like y0, stats
    (7), 1 -> eps_t             ode_sample(score, sde, shape, ...)          (n, ...)
    div_x F                     divergence(F, x, t, method, probe)          like x, (N,)
    (8)                         ode_log_likelihood(score, sde, x, ...)      (N,) nats
"""
from __future__ import annotations

import math

import numpy as np

from ... import enable_grad, grad, maximum, no_grad, rand, randint, randn, tensor, zeros
from .schedule import NoiseSchedule

ODE_METHODS = ("rk4", "dopri5")
DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")
WEIGHTINGS = ("none", "sigma2", "likelihood")


# ---------------------------------------------------------------- checks and helpers
def _check_steps(steps, name="steps"):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{name} must be a positive integer, got {steps!r}")
    return int(steps)


def _check_eps_t(eps_t):
    if not (isinstance(eps_t, (int, float, np.floating)) and 0 < eps_t < 1):
        raise ValueError(f"eps_t, the time the solvers stop at, must lie in (0, 1), got "
                         f"{eps_t!r}")
    return float(eps_t)


def _check_tolerances(rtol, atol):
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got rtol={rtol!r}, atol={atol!r}")


def _check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _times(t, n, name="t"):
    """t as a float64 array (n,) in (0, 1] (a single number is repeated)."""
    t = np.asarray(t, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(n, float(t))
    if t.shape != (n,):
        raise ValueError(f"{name} must be a number or an array of {n} times, got shape "
                         f"{t.shape}")
    if not np.all((t > 0) & (t <= 1)):
        raise ValueError(f"{name} must hold times in (0, 1], got values in "
                         f"[{t.min()}, {t.max()}]")
    return t


def _column(values, like):
    """values (N,) as a Tensor (N, 1, ..., 1) in like's dtype and device, to broadcast over
    each example's entries."""
    v = np.asarray(values, dtype=np.float64).astype(like.dtype)
    return tensor(v.reshape((-1,) + (1,) * (like.ndim - 1)), device=like.device)


def _scale(x, c):
    """x times c: a number for the whole batch, or an array (N,) of one factor each."""
    if np.ndim(c) == 0:
        return x * float(c)
    return x * _column(c, x)


def _check_shape(x, shape, name):
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {tuple(shape)}")


# ---------------------------------------------------------------- the VP SDE
class VPSDE:
    """The variance-preserving SDE dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw on t in [0, 1],
    beta(t) = beta_min + t (beta_max - beta_min) (module docstring, (1) and (2)).

    Args:
        beta_min, beta_max: beta(0) and beta(1), with 0 < beta_min <= beta_max (per unit
            time: T beta_1 and T beta_T of the DDPM's linear schedule).

    The scalar methods take t as a float or a NumPy array and return float64 of its
    shape. Raises ValueError for beta_min <= 0 or beta_max < beta_min.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not (np.isfinite(beta_min) and np.isfinite(beta_max)
                and 0 < beta_min <= beta_max):
            raise ValueError(f"VPSDE needs 0 < beta_min <= beta_max, got beta_min="
                             f"{beta_min!r}, beta_max={beta_max!r}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    @classmethod
    def from_schedule(cls, schedule: NoiseSchedule) -> "VPSDE":
        """The VP SDE whose discretisation with T steps is a linear NoiseSchedule:
        beta_min = T beta_1, beta_max = T beta_T (so beta(k / T) / T is about beta_k).

        Raises ValueError when the schedule is not linear (e.g. cosine) or has T < 2."""
        betas = schedule.betas[1:]
        T = schedule.T
        if T < 2 or not np.allclose(betas, np.linspace(betas[0], betas[-1], T),
                                    rtol=1e-9, atol=0):
            raise ValueError(f"VPSDE.from_schedule needs a linear schedule with T >= 2, "
                             f"got {schedule!r}")
        return cls(T * float(betas[0]), T * float(betas[-1]))

    def beta(self, t):
        """beta(t) = beta_min + t (beta_max - beta_min), per unit time."""
        return self.beta_min + np.asarray(t, dtype=np.float64) * (self.beta_max - self.beta_min)

    def log_alpha_bar(self, t):
        """log alpha_bar(t) = -int_0^t beta(s) ds
                            = -(beta_min t + (beta_max - beta_min) t^2 / 2)."""
        t = np.asarray(t, dtype=np.float64)
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)

    def alpha_bar(self, t):
        """alpha_bar(t) = exp(log_alpha_bar(t)): the signal's squared scale in x_t."""
        return np.exp(self.log_alpha_bar(t))

    def sigma(self, t):
        """sigma(t) = sqrt(1 - alpha_bar(t)), the standard deviation of the noise in x_t
        (through expm1: accurate near t = 0, where it is about sqrt(beta_min t))."""
        return np.sqrt(-np.expm1(self.log_alpha_bar(t)))

    def drift(self, x, t):
        """f(x, t) = -1/2 beta(t) x: a Tensor like x; t a float or an array (N,)."""
        return _scale(x, -0.5 * self.beta(t))

    def diffusion(self, t):
        """g(t) = sqrt(beta(t)), float64 like t."""
        return np.sqrt(self.beta(t))

    def perturb(self, x_0, t, eps):
        """x_t = sqrt(alpha_bar(t)) x_0 + sigma(t) eps, a draw of (2) for each example's
        time t (float or (N,)); a Tensor like x_0."""
        return _scale(x_0, np.sqrt(self.alpha_bar(t))) + _scale(eps, self.sigma(t))

    def prior_sample(self, shape, device="cpu", dtype=np.float32):
        """x_1 ~ N(0, I), the prior the reverse processes start from."""
        return randn(*shape, device=device, dtype=dtype)

    def prior_log_prob(self, x):
        """log N(x; 0, I) of each example, summed over its D entries: (N,) float64 nats."""
        z = np.asarray(x.numpy(), dtype=np.float64).reshape(x.shape[0], -1)
        return -0.5 * (z.shape[1] * math.log(2 * math.pi) + (z * z).sum(axis=1))

    def __repr__(self):
        return f"VPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"


# ---------------------------------------------------------------- scores
def score_from_eps(eps_model, sde: VPSDE, T: int = 1000, schedule: NoiseSchedule | None = None,
                   **model_kwargs):
    """s_theta(x, t) = -eps_theta(x, k) / sigma(t), (3): the score of a DDPM's noise
    predictor, called at a real-valued step k (its sinusoidal embedding takes reals).

    Which step k stands for time t:
    - schedule None: k = t T, the notes' correspondence. beta(t) = T beta_{tT} is off by
      half a step from the discrete schedule, so at small t the x_t the network is given
      is noisier, by up to 5% in sigma, than what it was trained on at step tT (for the
      linear 1e-4..0.02 schedule, T = 1000: sigma(1e-3) = 0.0105, sqrt(1 - alpha_bar_1)
      = 0.0100).
    - schedule, the DDPM's NoiseSchedule: k is the real step at which the discrete
      noise level matches, log alpha_bar_k = log alpha_bar(t) (log alpha_bar_k linearly
      interpolated between integer steps), so q(x_t | x_0) is exactly the network's
      training distribution at integer k; k is clipped to T where alpha_bar(t) <
      alpha_bar_T.

    Args:
        eps_model: eps_theta(x, steps), steps a float64 array (N,) of real steps in (0, T].
        sde: the VPSDE matching the schedule the network was trained on.
        T: the DDPM's number of steps (schedule.T when a schedule is given).
        schedule: see above.
        model_kwargs: passed to the model (e.g. y, the class labels).

    Returns score(x, t): x a Tensor (N, ...), t a float or an array (N,) in (0, 1]; a
    Tensor like x, in units of 1 / (units of x). The returned score raises ValueError
    for times outside (0, 1] (sigma(0) = 0). Raises ValueError for T < 1 or a schedule
    whose T differs from T.
    """
    T = _check_steps(T, "T")
    if schedule is not None and schedule.T != T:
        raise ValueError(f"score_from_eps: T = {T} but the schedule has T = {schedule.T}")
    if schedule is not None:
        neg_log_ab = -np.log(schedule.alpha_bars)          # (T + 1,), increasing from 0

    def steps_at(t):
        if schedule is None:
            return t * T
        return np.interp(-sde.log_alpha_bar(t), neg_log_ab, np.arange(T + 1.0))

    def score(x, t):
        t = _times(t, x.shape[0])
        eps = eps_model(x, steps_at(t), **model_kwargs)
        return eps * _column(-1.0 / sde.sigma(t), eps)
    return score


def dsm_target(sde: VPSDE, eps, t):
    """grad_{x_t} log q(x_t | x_0) = -eps / sigma(t) for x_t = sde.perturb(x_0, t, eps):
    the target of denoising score matching. eps a Tensor (N, ...), t float or (N,)."""
    t = _times(t, eps.shape[0])
    return eps * _column(-1.0 / sde.sigma(t), eps)


def dsm_loss(score, sde: VPSDE, x_0, t=None, eps=None, weighting="sigma2",
             eps_t: float = 1e-3):
    """Denoising score matching, mean over the batch and the entries of
    lambda(t) (s(x_t, t) + eps / sigma(t))^2, x_t = sde.perturb(x_0, t, eps).

    Args:
        score: s(x, t). x_0: a Tensor (N, ...).
        t: (N,) times in (0, 1]; drawn uniform on [eps_t, 1) when None.
        eps: the noise, like x_0; drawn when None.
        weighting: lambda(t): "sigma2" (sigma(t)^2: with s = -eps_theta / sigma this is
            L_simple exactly), "none" (1: L_simple / sigma^2, dominated by small t),
            "likelihood" (g(t)^2 = beta(t), Song et al.'s likelihood weighting), or a
            callable t (N,) -> (N,) weights.

    Returns a scalar Tensor. Raises ValueError for an unknown weighting or bad times.
    """
    n = x_0.shape[0]
    if t is None:
        t = eps_t + (1 - _check_eps_t(eps_t)) * rand(n, dtype=np.float64).numpy()
    t = _times(t, n)
    if callable(weighting):
        w = np.asarray(weighting(t), dtype=np.float64)
    else:
        _check_choice(weighting, WEIGHTINGS, "weighting")
        w = {"none": np.ones(n), "sigma2": sde.sigma(t) ** 2,
             "likelihood": sde.beta(t)}[weighting]
    if eps is None:
        eps = randn(*x_0.shape, device=x_0.device, dtype=x_0.dtype)
    x_t = sde.perturb(x_0, t, eps)
    err = score(x_t, t) - dsm_target(sde, eps, t)
    return (err * err * _column(w, err)).mean()


# ---------------------------------------------------------------- the reverse SDE
def langevin_step(score, x, t: float, snr: float = 0.16, alpha: float = 1.0, z=None):
    """One Langevin corrector step (6) at time t: x + e s(x, t) + sqrt(2 e) z with
    e = 2 alpha (snr ||z|| / ||s||)^2, ||.|| each example's Euclidean norm averaged over
    the batch (Song et al.'s code; per example, in low dimension, ||s|| near 0 would
    make e explode). e = 0 when the score is zero everywhere.

    Args:
        score: s(x, t). x: Tensor (N, ...). t: float in (0, 1].
        snr: r > 0. alpha: the step's alpha in (0, 1] (the sampler's: alpha_bar(t_i) /
            alpha_bar(t_{i+1})).
        z: the noise, like x (drawn when None).

    Returns (x', e): a Tensor like x and the step size e (float, units of x^2).
    Raises ValueError for snr <= 0 or alpha <= 0.
    """
    if not snr > 0:
        raise ValueError(f"the corrector's snr must be positive, got {snr!r}")
    if not alpha > 0:
        raise ValueError(f"the corrector's alpha must be positive, got {alpha!r}")
    n = x.shape[0]
    s = score(x, _times(t, n))
    if z is None:
        z = randn(*x.shape, device=x.device, dtype=x.dtype)
    s_norm = float((s * s).reshape(n, -1).sum(axis=1).sqrt().mean().item())
    z_norm = float((z * z).reshape(n, -1).sum(axis=1).sqrt().mean().item())
    e = 0.0 if s_norm == 0 else 2 * alpha * (snr * z_norm / s_norm) ** 2
    return x + s * e + z * math.sqrt(2 * e), e


@no_grad()
def reverse_sde_sample(score, sde: VPSDE, shape, steps: int = 1000, eps_t: float = 1e-3,
                       corrector_steps: int = 0, snr: float = 0.16, denoise: bool = True,
                       x_1=None, device="cpu", dtype=np.float32, progress=None):
    """Samples by the reverse-time SDE (4), Euler-Maruyama (5) from t = 1 to eps_t in
    ``steps`` equal steps, optionally with ``corrector_steps`` Langevin steps (6) at each
    t_i before its predictor step (predictor-corrector sampling, Song et al. section 4.2).

    Args:
        score: s(x, t), t an array (n,) of times.
        sde: the VPSDE. shape: (n, ...) of the samples.
        steps: N, the predictor steps (score evaluations: N (1 + corrector_steps)).
        eps_t: the last time, in (0, 1) (sigma(0) = 0 makes the score blow up at 0).
        corrector_steps: Langevin steps per time, >= 0. snr: the corrector's r.
        denoise: no noise on the last predictor step (the sample is then its mean).
        x_1: the starting noise (a Tensor of ``shape``) instead of a draw of N(0, I).
        device, dtype: of the samples when x_1 is not given.
        progress: a callable wrapping the iterator of steps (e.g. tqdm), or None.

    Returns x_{eps_t}, a Tensor of ``shape``.

    Raises ValueError for steps < 1, eps_t outside (0, 1), corrector_steps < 0 or not an
    integer, snr <= 0, or x_1 of the wrong shape.
    """
    steps, eps_t = _check_steps(steps), _check_eps_t(eps_t)
    if isinstance(corrector_steps, bool) or not isinstance(corrector_steps, (int, np.integer)) \
            or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be a non-negative integer, got "
                         f"{corrector_steps!r}")
    if corrector_steps and not snr > 0:
        raise ValueError(f"the corrector's snr must be positive, got {snr!r}")
    if x_1 is None:
        x = sde.prior_sample(shape, device, dtype)
    else:
        _check_shape(x_1, shape, "x_1")
        x = x_1
    n = x.shape[0]
    ts = np.linspace(1.0, eps_t, steps + 1)
    order = range(steps)
    for i in (progress(order) if progress else order):
        t, h = float(ts[i]), float(ts[i] - ts[i + 1])
        beta = float(sde.beta(t))
        alpha = math.exp(float(sde.log_alpha_bar(t) - sde.log_alpha_bar(ts[i + 1])))
        for _ in range(corrector_steps):
            x, _ = langevin_step(score, x, t, snr, alpha)
        # x - [f - g^2 s] h: the drift of (4) times dt = -h
        mean = x - (sde.drift(x, t) - score(x, np.full(n, t)) * beta) * h
        if denoise and i == steps - 1:
            x = mean
        else:
            x = mean + randn(*x.shape, device=x.device, dtype=x.dtype) * math.sqrt(beta * h)
    return x


# ---------------------------------------------------------------- ODE solvers
# Dormand & Prince (1980): 7 stages, the 5th-order solution for the step (the
# coefficients of its last stage, FSAL: "first same as last", so k7 is the next k1) and
# an embedded 4th-order one whose difference estimates the error.
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = ((),
         (1 / 5,),
         (3 / 40, 9 / 40),
         (44 / 45, -56 / 15, 32 / 9),
         (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
         (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
         (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_DP_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_DP_E = tuple(b5 - b4 for b5, b4 in zip(_DP_B5, _DP_B4))
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


def _combine(y, h, coefs, ks):
    """y + h sum_j coefs[j] ks[j], for states that are tuples of Tensors."""
    out = []
    for p, y_p in enumerate(y):
        acc = y_p
        for c, k in zip(coefs, ks):
            if c:
                acc = acc + k[p] * (h * c)
        out.append(acc)
    return tuple(out)


def _norm(parts, scales):
    """max over examples of the RMS over each example's entries of parts / scales, all
    parts of the state together: one number, <= 1 when every example meets tolerance."""
    n = parts[0].shape[0]
    total, count = 0.0, 0
    for p, s in zip(parts, scales):
        q = (p / s).reshape(n, -1)
        total = total + (q * q).sum(axis=1)
        count += q.shape[1]
    return float(((total / count).max() ** 0.5).item())


def _scales(y, y_new, rtol, atol):
    return tuple(maximum(a.abs(), b.abs()) * rtol + atol for a, b in zip(y, y_new))


def _rk4(f, y, t0, t1, steps):
    ts = np.linspace(t0, t1, steps + 1)
    for i in range(steps):
        t, h = float(ts[i]), float(ts[i + 1] - ts[i])
        k1 = f(t, y)
        k2 = f(t + h / 2, _combine(y, h / 2, (1,), (k1,)))
        k3 = f(t + h / 2, _combine(y, h / 2, (1,), (k2,)))
        k4 = f(t + h, _combine(y, h, (1,), (k3,)))
        y = _combine(y, h / 6, (1, 2, 2, 1), (k1, k2, k3, k4))
    return y, {"nfe": 4 * steps, "steps": steps}


def _initial_step(f, y, k1, t0, t1, rtol, atol):
    """A first step size after Hairer, Norsett & Wanner (II.4): small enough that an
    Euler step changes y by about 1% of its tolerance scale, then refined by the change
    of the slope over that step (one extra evaluation)."""
    span = abs(t1 - t0)
    direction = math.copysign(1.0, t1 - t0)
    scales = _scales(y, y, rtol, atol)
    d0, d1 = _norm(y, scales), _norm(k1, scales)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, span)
    k_next = f(t0 + direction * h0, _combine(y, direction * h0, (1,), (k1,)))
    d2 = _norm(tuple(a - b for a, b in zip(k_next, k1)), scales) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** 0.2
    return direction * min(100 * h0, h1, span)


def _dopri5(f, y, t0, t1, rtol, atol, max_steps, first_step):
    k1 = f(t0, y)
    nfe, accepted, rejected = 1, 0, 0
    if first_step is None:
        h = _initial_step(f, y, k1, t0, t1, rtol, atol)
        nfe += 1
    else:
        h = math.copysign(abs(first_step), t1 - t0)
    t = t0
    while t != t1:
        if accepted + rejected >= max_steps:
            raise RuntimeError(f"odeint: dopri5 took more than max_steps = {max_steps} "
                               f"steps at t = {t:.6g}; loosen rtol/atol or raise max_steps")
        if abs(h) < 1e-12 * max(1.0, abs(t)):
            raise RuntimeError(f"odeint: dopri5's step size underflowed at t = {t:.6g}")
        last = abs(h) >= abs(t1 - t)
        if last:
            h = t1 - t
        ks = [k1]
        for i in range(1, 7):
            ks.append(f(t + _DP_C[i] * h, _combine(y, h, _DP_A[i], ks)))
        nfe += 6
        y_new = _combine(y, h, _DP_A[6], ks[:6])      # the 5th-order solution, = stage 7's y
        err = _combine(tuple(k * 0 for k in y), h, _DP_E, ks)
        err_norm = _norm(err, _scales(y, y_new, rtol, atol))
        if err_norm <= 1:
            t = t1 if last else t + h
            y, k1 = y_new, ks[6]
            accepted += 1
            factor = _MAX_FACTOR if err_norm == 0 else min(
                _MAX_FACTOR, max(_MIN_FACTOR, _SAFETY * err_norm ** -0.2))
        else:
            rejected += 1
            factor = max(_MIN_FACTOR, _SAFETY * err_norm ** -0.2)
        h *= factor
    return y, {"nfe": nfe, "accepted": accepted, "rejected": rejected}


@no_grad()
def odeint(f, y0, t0: float, t1: float, method: str = "dopri5", steps: int = 100,
           rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 10_000,
           first_step: float | None = None):
    """Solves dy/dt = f(t, y) from t0 to t1 (either direction).

    Args:
        f: f(t, y) -> dy/dt, t a float; y and the result are like y0.
        y0: a Tensor, or a tuple of Tensors (the parts of one state; each part's first
            axis is the batch, N).
        method: "rk4", classical Runge-Kutta with ``steps`` equal steps (4 evaluations
            each), or "dopri5", Dormand-Prince 5(4) with adaptive steps: a step is
            accepted when, for every example, the RMS over its entries of error /
            (atol + rtol max(|y|, |y_new|)) is <= 1; the next step is the current one
            times 0.9 err^(-1/5), kept within [0.2, 10] (at most 1 after a rejection).
        rtol, atol: the tolerances (dopri5), > 0. max_steps: the most step attempts.
        first_step: dopri5's first step size (chosen automatically when None).

    Returns (y1, stats): y1 like y0 at t1, and stats a dict with "nfe" (evaluations of
    f) and "steps" (rk4) or "accepted" and "rejected" (dopri5).

    Raises ValueError for an unknown method, steps < 1, or rtol, atol <= 0, and
    RuntimeError when dopri5 needs more than max_steps steps or its step underflows.
    """
    _check_choice(method, ODE_METHODS, "ODE method")
    single = not isinstance(y0, (tuple, list))
    y = (y0,) if single else tuple(y0)
    g = (lambda t, s: (f(t, s[0]),)) if single else (lambda t, s: tuple(f(t, s)))
    t0, t1 = float(t0), float(t1)
    if method == "rk4":
        y, stats = _rk4(g, y, t0, t1, _check_steps(steps))
    else:
        _check_tolerances(rtol, atol)
        y, stats = (y, {"nfe": 0, "accepted": 0, "rejected": 0}) if t0 == t1 else \
            _dopri5(g, y, t0, t1, rtol, atol, _check_steps(max_steps, "max_steps"), first_step)
    return (y[0] if single else y), stats


# ---------------------------------------------------------------- the probability-flow ODE
def probability_flow_drift(score, sde: VPSDE):
    """F(x, t) = f(x, t) - 1/2 g(t)^2 s(x, t), (7): returns a callable F(x, t) (t a float
    or an array (N,)) giving a Tensor like x, in units of x per unit time."""
    def F(x, t):
        ts = np.full(x.shape[0], float(t)) if np.ndim(t) == 0 else t
        return sde.drift(x, t) - _scale(score(x, ts), 0.5 * sde.beta(t))
    return F


@no_grad()
def ode_sample(score, sde: VPSDE, shape, method: str = "dopri5", steps: int = 100,
               rtol: float = 1e-5, atol: float = 1e-5, eps_t: float = 1e-3, x_1=None,
               device="cpu", dtype=np.float32, return_stats: bool = False):
    """Deterministic samples: the probability-flow ODE (7) solved from x_1 at t = 1 to
    t = eps_t (``odeint``: "rk4" with ``steps`` steps, or adaptive "dopri5" with rtol and
    atol). The same x_1 always gives the same sample.

    Args:
        score: s(x, t), t an array (n,). sde: the VPSDE. shape: (n, ...).
        x_1: the starting noise (a Tensor of ``shape``); drawn from N(0, I) when None.
        device, dtype: of the samples when x_1 is not given.
        return_stats: also return odeint's stats (the number of score evaluations).

    Returns x_{eps_t}, a Tensor of ``shape`` (and the stats dict if asked).

    Raises ValueError for an unknown method, steps < 1, rtol or atol <= 0, eps_t
    outside (0, 1), or x_1 of the wrong shape.
    """
    eps_t = _check_eps_t(eps_t)
    if x_1 is None:
        x = sde.prior_sample(shape, device, dtype)
    else:
        _check_shape(x_1, shape, "x_1")
        x = x_1
    F = probability_flow_drift(score, sde)
    x, stats = odeint(lambda t, y: F(y, t), x, 1.0, eps_t, method, steps, rtol, atol)
    return (x, stats) if return_stats else x


def divergence(F, x, t, method: str = "exact", probe=None):
    """div_x F(x, t) = sum_j dF_j / dx_j for each example, through the engine's autograd
    (with grad enabled even inside ``no_grad``). F must treat examples independently
    (no batch statistics): the Jacobian of the batch is then block-diagonal.

    Args:
        F: F(x, t) -> a Tensor like x. x: Tensor (N, ...). t: a float or an array (N,).
        method: "exact": one backward pass per entry of an example (D in all); or
            "hutchinson": v^T (dF/dx) v for the given probe v, one vector-Jacobian
            product, an unbiased estimate when E[v v^T] = I.
        probe: v, a Tensor like x (hutchinson only).

    Returns (F(x, t), div): F's value (detached, like x) and div, a Tensor (N,) in units
    of 1 / time.

    Raises ValueError for an unknown method, a missing probe or one of the wrong shape,
    or an F whose output is not shaped like x.
    """
    _check_choice(method, DIVERGENCES, "divergence method")
    if method == "hutchinson" and (probe is None or tuple(probe.shape) != tuple(x.shape)):
        raise ValueError(f"divergence: hutchinson needs a probe shaped like x {tuple(x.shape)}")
    n = x.shape[0]
    with enable_grad():
        xg = x.detach().requires_grad_()
        y = F(xg, t)
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(f"divergence: F(x, t) has shape {tuple(y.shape)}, x has "
                             f"{tuple(x.shape)}")
        if method == "hutchinson":
            (vjp,) = grad(y, xg, grad_outputs=probe)                   # v^T dF/dx
            div = (vjp * probe).reshape(n, -1).sum(axis=1)
        else:
            d = int(np.prod(x.shape[1:], dtype=np.int64))
            div = zeros(n, dtype=x.dtype, device=x.device)
            for j in range(d):
                e = np.zeros(d, dtype=x.dtype)
                e[j] = 1
                e = tensor(np.broadcast_to(e.reshape(x.shape[1:]), x.shape).copy(),
                           device=x.device)
                (row,) = grad(y, xg, grad_outputs=e, retain_graph=j < d - 1)   # dF_j/dx
                div = div + row.reshape(n, -1)[:, j]
    return y.detach(), div.detach()


def _draw_probe(probe, x):
    _check_choice(probe, PROBES, "probe")
    if probe == "gaussian":
        return randn(*x.shape, device=x.device, dtype=x.dtype)
    return (randint(0, 2, size=x.shape, device=x.device) * 2 - 1).astype(x.dtype)


@no_grad()
def ode_log_likelihood(score, sde: VPSDE, x, method: str = "dopri5", steps: int = 100,
                       rtol: float = 1e-5, atol: float = 1e-5, eps_t: float = 1e-3,
                       divergence_method: str = "exact", probe: str = "rademacher",
                       return_stats: bool = False):
    """log p(x) of each example under the probability-flow ODE's model, (8): the
    augmented ODE d[x; delta]/dt = [F(x, t); div_x F(x, t)] solved from x at t = eps_t
    (taken as the data's time) to t = 1, then log N(x_1; 0, I) + delta(1).

    Args:
        score: s(x, t), t an array (N,). sde: the VPSDE. x: a Tensor (N, ...).
        method, steps, rtol, atol: the solver (``odeint``); dopri5's error control covers
            delta as well as x.
        divergence_method: "exact" (D backward passes per evaluation; for low D) or
            "hutchinson" (one vector-Jacobian product; x's path does not depend on the
            probe, so the result is an unbiased estimate of log p, though exp of it is
            not one of p).
        probe: "rademacher" or "gaussian", Hutchinson's v: one per example, drawn once
            and held fixed along the solve.
        return_stats: also return a dict with "nfe", "prior_log_prob" (N,),
            "delta_log_prob" (N,) (the integral of div F) and "x_1" (Tensor like x).

    Returns the log-likelihoods, (N,) float64, in nats per example (sum over its D
    entries; for bits per dimension see ``bits_per_dim``).

    Raises ValueError for an unknown method, divergence_method or probe, steps < 1,
    rtol or atol <= 0, or eps_t outside (0, 1).
    """
    eps_t = _check_eps_t(eps_t)
    _check_choice(divergence_method, DIVERGENCES, "divergence method")
    _check_choice(method, ODE_METHODS, "ODE method")
    v = _draw_probe(probe, x) if divergence_method == "hutchinson" else None
    F = probability_flow_drift(score, sde)

    def augmented(t, state):
        value, div = divergence(F, state[0], t, divergence_method, v)
        return value, div                                # d x/dt = F, d delta/dt = div F

    start = (x.detach(), zeros(x.shape[0], dtype=x.dtype, device=x.device))
    (x_1, delta), stats = odeint(augmented, start, eps_t, 1.0, method, steps, rtol, atol)
    prior = sde.prior_log_prob(x_1)
    delta = np.asarray(delta.numpy(), dtype=np.float64)
    log_p = prior + delta
    if return_stats:
        return log_p, {**stats, "prior_log_prob": prior, "delta_log_prob": delta, "x_1": x_1}
    return log_p
