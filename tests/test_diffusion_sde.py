"""tinygen.models.diffusion.sde: the score-SDE view of a DDPM, proven without training.

- the VP SDE: alpha_bar(t) is the DDPM's alpha_bar_{tT} in the limit (the gap measured
  against its second-order term), and the marginal's mean and variance solve the moment
  ODEs that the SDE's own drift and diffusion give;
- scores: on Gaussian data N(M, S2 I) the score of every marginal q_t is known in closed
  form (checked against the engine's gradient of log q_t); score_from_eps with the exact
  eps-predictor gives it back, on both time correspondences;
- the reverse SDE (Euler-Maruyama, with and without the Langevin corrector) lands on the
  data's moments: the samples match the exact moments of the discretised chain (a
  scalar recursion written out here) within their standard errors, and the chain's own
  bias is stated; the corrector leaves q_t nearly invariant as its step-size rule says;
- the probability-flow ODE is, for Gaussian data, an affine map known in closed form:
  RK4 and Dormand-Prince reproduce it per sample, deterministically, and the solvers
  have their orders on an ODE with a known solution;
- the likelihood: the ODE's log-likelihood equals the model's Gaussian log density
  exactly (and log N(x; M, S2 I) up to the prior's mismatch); the exact divergence
  against finite differences; Hutchinson's estimator is unbiased, with the variance the
  theory gives for Rademacher and Gaussian probes;
- denoising score matching: the target -eps / sigma is the gradient of log q(x_t | x_0),
  and the DSM loss is L_simple / sigma^2 (so weighting by sigma^2 gives L_simple back);
- the refusals of bad arguments.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygen as tg
from tinygen.models.diffusion import MLPDenoiser, NoiseSchedule
from tinygen.models.diffusion.sde import (VPSDE, divergence, dsm_loss,
                                          dsm_target, langevin_step, ode_log_likelihood,
                                          ode_sample, odeint, probability_flow_drift,
                                          reverse_sde_sample, score_from_eps)

BMIN, BMAX = 0.1, 20.0
M, S2 = 0.7, 0.16          # data N(M, S2) in every coordinate
EPS_T = 1e-3


def t64(a):
    return tg.tensor(np.asarray(a, dtype=np.float64))


def ab(t):
    """alpha_bar(t) of the VP SDE with beta linear from 0.1 to 20, written out here."""
    t = np.asarray(t, dtype=np.float64)
    return np.exp(-(BMIN * t + (BMAX - BMIN) * t * t / 2))


def beta(t):
    return BMIN + np.asarray(t, dtype=np.float64) * (BMAX - BMIN)


def q_moments(t):
    """The mean and variance of q_t for data N(M, S2): sqrt(ab) M and ab S2 + 1 - ab."""
    a = ab(t)
    return np.sqrt(a) * M, a * S2 + 1 - a


def col(values, x):
    return tg.tensor(np.asarray(values, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
                     .astype(x.dtype), device=x.device)


def exact_score(x, t):
    """grad_x log q_t(x) = -(x - sqrt(ab) M) / (ab S2 + 1 - ab), t an array (N,)."""
    mean, var = q_moments(t)
    return (x - col(mean, x)) * col(-1 / var, x)


def exact_eps(T=1000):
    """E[eps | x_t] = sigma (x - sqrt(ab) M) / (ab S2 + 1 - ab) at t = step / T: the
    optimal noise predictor of the continuous process, called like a DDPM network."""
    def eps(x, steps):
        t = np.asarray(steps, dtype=np.float64) / T
        mean, var = q_moments(t)
        return (x - col(mean, x)) * col(np.sqrt(1 - ab(t)) / var, x)
    return eps


def gaussian_log_density(x, mean, var):
    return (-0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var)).reshape(len(x), -1).sum(1)


def flow_map_moments():
    """The probability-flow ODE for Gaussian data is x_t = m_t + sqrt(v_t / v_1) (x_1 - m_1)
    (it solves dx/dt = -beta/2 x - beta/2 s(x, t), as d/dt of both sides shows), so
    from x_1 ~ N(0, I) it gives N(m_e - sqrt(v_e / v_1) m_1, v_e / v_1) at eps_t: the
    data's moments up to the prior's mismatch (m_1 = sqrt(ab(1)) M = 0.0046, not 0)."""
    (m_e, v_e), (m_1, v_1) = q_moments(EPS_T), q_moments(1.0)
    return m_e, v_e, m_1, v_1


# ---- the VP SDE
def test_alpha_bar_is_the_ddpm_schedule_in_the_limit():
    """log alpha_bar_k = sum log(1 - beta_k) = -sum beta_k - sum beta_k^2 / 2 - ..., and
    -int_0^{k/T} beta = -sum beta((j - 1/2) / T) / T; the sums of the first terms differ by
    at most (beta_T - beta_1) / 8 = 0.0025 (the midpoints sit half a step off the grid),
    and the cubic terms add at most sum beta_k^3 / 3 < 7e-4. So the gap is sum beta_k^2
    / 2 (up to 0.067 at k = T) within 0.0032: the continuous alpha_bar is the DDPM's to
    7% relative, and exactly its first-order limit."""
    s = NoiseSchedule.linear(1000)
    sde = VPSDE.from_schedule(s)
    assert (sde.beta_min, sde.beta_max) == pytest.approx((BMIN, BMAX), rel=1e-12)
    k = np.arange(1, 1001)
    gap = sde.log_alpha_bar(k / 1000) - np.log(s.alpha_bars[1:])
    second_order = np.cumsum(s.betas[1:] ** 2) / 2
    assert np.abs(gap - second_order).max() < 0.0025 + 7e-4
    assert 0.06 < np.abs(gap).max() < 0.07
    # the formulas, against the closed form written here
    t = np.linspace(0, 1, 101)
    np.testing.assert_allclose(sde.alpha_bar(t), ab(t), rtol=1e-13)
    np.testing.assert_allclose(sde.beta(t), beta(t), rtol=1e-13)
    np.testing.assert_allclose(sde.sigma(t) ** 2 + sde.alpha_bar(t), 1, rtol=1e-13)
    np.testing.assert_allclose(sde.diffusion(t) ** 2, beta(t), rtol=1e-13)
    # sigma keeps its digits near t = 0 (sigma^2 ~ beta_min t, where 1 - alpha_bar cancels)
    assert sde.sigma(1e-12) == pytest.approx(math.sqrt(0.1e-12), rel=1e-9)


@given(t=st.floats(0.01, 0.99), m0=st.floats(-3, 3), v0=st.floats(0, 4))
@settings(max_examples=25, deadline=None)
def test_marginal_solves_the_moment_odes(t, m0, v0):
    """For dx = a(t) x dt + g(t) dw the mean and variance obey dm/dt = a m and dv/dt =
    2 a v + g^2. With a(t) read off sde.drift (its value at x = 1) and g from
    sde.diffusion, the marginal of x_0 ~ N(m0, v0), m = sqrt(ab) m0 and v = ab v0 + 1 -
    ab from sde.alpha_bar, satisfies both, by central differences (error ~ h^2)."""
    sde = VPSDE()

    def moments(s):
        a = float(sde.alpha_bar(s))
        return math.sqrt(a) * m0, a * v0 + 1 - a
    h = 1e-5
    (m_lo, v_lo), (m, v), (m_hi, v_hi) = moments(t - h), moments(t), moments(t + h)
    a_t = sde.drift(t64([[1.0]]), t).item()
    g2 = float(sde.diffusion(t)) ** 2
    assert (m_hi - m_lo) / (2 * h) == pytest.approx(a_t * m, rel=1e-6, abs=1e-8)
    assert (v_hi - v_lo) / (2 * h) == pytest.approx(2 * a_t * v + g2, rel=1e-6, abs=1e-8)
    assert a_t == pytest.approx(-beta(t) / 2, rel=1e-13)


def test_drift_perturb_and_prior_keep_shape_and_dtype():
    sde = VPSDE()
    for dtype in (np.float32, np.float64):
        x = tg.randn(3, 2, 4, dtype=dtype)
        t = np.array([0.1, 0.5, 0.9])
        f = sde.drift(x, t)
        assert f.shape == x.shape and f.dtype == dtype
        np.testing.assert_allclose(f.numpy(), -0.5 * beta(t)[:, None, None] * x.numpy(),
                                   rtol=1e-6)
        eps = tg.randn(3, 2, 4, dtype=dtype)
        xt = sde.perturb(x, t, eps)
        assert xt.dtype == dtype
        np.testing.assert_allclose(
            xt.numpy(), np.sqrt(ab(t))[:, None, None] * x.numpy()
            + np.sqrt(1 - ab(t))[:, None, None] * eps.numpy(), rtol=1e-5, atol=1e-6)
    x = t64(np.random.default_rng(0).standard_normal((5, 3)))
    np.testing.assert_allclose(sde.prior_log_prob(x), gaussian_log_density(x.numpy(), 0, 1),
                               rtol=1e-13)
    assert sde.prior_sample((4, 3), dtype=np.float64).shape == (4, 3)


# ---- scores
def test_exact_score_is_the_gradient_of_log_q_t():
    """The test's own closed-form score, checked once against the engine: grad_x of
    log N(x; sqrt(ab) M, ab S2 + 1 - ab), summed over the batch."""
    rng = np.random.default_rng(1)
    t = rng.uniform(0.01, 1, 6)
    x = t64(rng.standard_normal((6, 2))).requires_grad_()
    mean, var = q_moments(t)
    logq = (-0.5 * (x - col(mean, x)) ** 2 * col(1 / var, x)).sum()
    (g,) = tg.grad(logq, x)
    np.testing.assert_allclose(exact_score(x.detach(), t).numpy(), g.numpy(), rtol=1e-12)


def test_score_from_eps_with_the_exact_eps_is_the_exact_score():
    """-eps*(x, tT) / sigma(t) = grad log q_t, and the network is called at the real steps
    t T (not rounded)."""
    sde = VPSDE()
    seen = []
    inner = exact_eps(1000)

    def spy(x, steps):
        seen.append(np.array(steps))
        return inner(x, steps)
    score = score_from_eps(spy, sde, T=1000)
    t = np.array([EPS_T, 0.0123, 0.5, 1.0])
    x = t64(np.random.default_rng(2).standard_normal((4, 3)))
    np.testing.assert_allclose(score(x, t).numpy(), exact_score(x, t).numpy(), rtol=1e-12)
    np.testing.assert_allclose(seen[0], t * 1000, rtol=1e-15)
    assert score(x, 0.3).shape == (4, 3)          # one time for the whole batch


def test_score_from_eps_can_match_noise_levels_with_the_ddpm_schedule():
    """With the DDPM's schedule the network is called at the real step k whose discrete
    alpha_bar_k equals the continuous alpha_bar(t). At the times t_k solving alpha_bar(t)
    = alpha_bar_k for integer k that is k itself, so the DDPM's own optimal predictor
    E[eps | x_k] (with the discrete alpha_bar_k) gives the exact score of q_{t_k}."""
    s = NoiseSchedule.linear(1000)
    sde = VPSDE.from_schedule(s)
    k = np.array([1, 2, 10, 300, 900])
    # beta_min t + (beta_max - beta_min) t^2 / 2 = -log alpha_bar_k, the positive root
    c = -np.log(s.alpha_bars[k])
    t_k = (-BMIN + np.sqrt(BMIN ** 2 + 2 * (BMAX - BMIN) * c)) / (BMAX - BMIN)
    seen = []

    def ddpm_optimal_eps(x, steps):      # as tests/test_diffusion.py's optimal_eps
        seen.append(np.array(steps))
        a = np.interp(steps, np.arange(1001), s.alpha_bars)
        return (x - col(np.sqrt(a) * M, x)) * col(np.sqrt(1 - a) / (a * S2 + 1 - a), x)
    score = score_from_eps(ddpm_optimal_eps, sde, 1000, schedule=s)
    x = t64(np.random.default_rng(3).standard_normal((5, 2)))
    got = score(x, t_k).numpy()
    np.testing.assert_allclose(seen[0], k, rtol=1e-9)
    np.testing.assert_allclose(got, exact_score(x, t_k).numpy(), rtol=1e-8)
    # the plain time correspondence calls it at t T instead: off by up to 5% in sigma
    plain = score_from_eps(ddpm_optimal_eps, sde, 1000)(x, t_k).numpy()
    assert not np.allclose(plain, got, rtol=1e-3)


def test_score_from_eps_with_a_network():
    """The library's MLP takes real-valued steps; float32 stays float32."""
    net = MLPDenoiser(2, 16, depth=1, time_dim=8)
    score = score_from_eps(net, VPSDE())
    with tg.no_grad():
        out = score(tg.randn(4, 2), np.array([0.001, 0.25, 0.5, 1.0]))
    assert out.shape == (4, 2) and out.dtype == np.float32 and np.isfinite(out.numpy()).all()


# ---- the reverse SDE
def euler_maruyama_moments(steps, denoise=True):
    """The exact mean and variance of the Euler-Maruyama chain (5) with the exact score,
    from x_1 ~ N(0, 1): each step x <- x + (beta/2 x - beta (x - m_t) / v_t) h + sqrt(beta
    h) z is affine in x, so the moments follow a scalar recursion."""
    ts = np.linspace(1.0, EPS_T, steps + 1)
    mean, var = 0.0, 1.0
    for i in range(steps):
        t, h = ts[i], ts[i] - ts[i + 1]
        b, (m_t, v_t) = beta(t), q_moments(t)
        A = 1 + b * h / 2 - b * h / v_t
        mean, var = A * mean + b * h * m_t / v_t, A * A * var
        if not (denoise and i == steps - 1):
            var += b * h
    return mean, var


@pytest.mark.parametrize("via", ["score", "eps"])
def test_reverse_sde_on_gaussian_data(via):
    """Samples match the chain's exact moments within 5 standard errors (3.5% on the
    variance at n = 40,000); and the chain, with 500 steps, lands within 0.001 of M and
    0.3% of S2 (its discretisation bias plus the prior's mismatch, measured by the
    recursion: 7e-4 and 0.15%)."""
    sde = VPSDE()
    score = exact_score if via == "score" else score_from_eps(exact_eps(), sde)
    steps, n = 500, 40_000
    mean, var = euler_maruyama_moments(steps)
    assert abs(mean - M) < 0.001 and abs(var / S2 - 1) < 0.003
    x = reverse_sde_sample(score, sde, (n // 2, 2), steps, dtype=np.float64).numpy().ravel()
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var() - var) < 5 * var * math.sqrt(2 / n)


def test_langevin_corrector_keeps_q_t_nearly_invariant():
    """Langevin steps on exact draws of q_t. The ratio of the batch's mean norms
    ||z|| / ||s|| is v_t / sqrt(var) (s = -(x - m) / v_t, var the current variance), so
    the step is e = 2 alpha snr^2 v_t^2 / var (within 2%: the means' sampling error);
    each step is x - m <- (1 - e / v_t)(x - m) + sqrt(2 e) z, so the mean stays and the
    variance follows var <- (1 - e / v_t)^2 var + 2 e, towards v_t / (1 - e / (2 v_t)):
    2.6% high at snr = 0.16, the corrector's own bias."""
    t, n, snr, alpha = 0.3, 40_000, 0.16, 0.99
    m_t, v_t = q_moments(t)
    x = t64(m_t + math.sqrt(v_t) * np.random.default_rng(4).standard_normal((n, 2)))
    var = v_t
    for _ in range(10):
        x, e = langevin_step(exact_score, x, t, snr, alpha)
        assert e == pytest.approx(2 * alpha * snr ** 2 * v_t ** 2 / var, rel=0.02)
        var = (1 - e / v_t) ** 2 * var + 2 * e
    assert var / v_t - 1 > 0.01            # the corrector's own bias, visible
    y = x.numpy().ravel()
    assert abs(y.mean() - m_t) < 5 * math.sqrt(v_t / y.size)
    assert abs(y.var() - var) < 5 * var * math.sqrt(2 / y.size)


def pc_moments(steps, snr):
    """The moments of predictor-corrector sampling with one corrector step per time, in
    the large-batch limit where the corrector's step is e = 2 alpha snr^2 v_t^2 / var
    (the ratio of the batch's mean norms ||z|| / ||s|| is v_t / sqrt(var)), alpha =
    alpha_bar(t) / alpha_bar(t - h)."""
    ts = np.linspace(1.0, EPS_T, steps + 1)
    mean, var = 0.0, 1.0
    for i in range(steps):
        t, h = ts[i], ts[i] - ts[i + 1]
        b, (m_t, v_t) = beta(t), q_moments(t)
        e = 2 * ab(t) / ab(t - h) * snr ** 2 * v_t ** 2 / var
        A = 1 - e / v_t
        mean, var = A * mean + e * m_t / v_t, A * A * var + 2 * e
        A = 1 + b * h / 2 - b * h / v_t
        mean, var = A * mean + b * h * m_t / v_t, A * A * var
        if i < steps - 1:
            var += b * h
    return mean, var


def test_predictor_corrector_sampling_on_gaussian_data():
    """200 predictor steps, one corrector step each: the samples match the recursion's
    moments (5 standard errors, plus 0.5% on the variance for the spread of the step
    size, computed from the batch: its norms' means vary by about 1 / sqrt(n)), and the
    recursion lands within 0.002 of M and 1.5% of S2 (measured: 0.001 and 0.94%, the
    corrector's bias included)."""
    sde = VPSDE()
    steps, n, snr = 200, 40_000, 0.16
    mean, var = pc_moments(steps, snr)
    assert abs(mean - M) < 0.002 and abs(var / S2 - 1) < 0.015
    x = reverse_sde_sample(exact_score, sde, (n // 2, 2), steps, corrector_steps=1, snr=snr,
                           dtype=np.float64).numpy().ravel()
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var() - var) < 5 * var * math.sqrt(2 / n) + 0.005 * var


def test_reverse_sde_start_and_noise_removal():
    """x_1 is where it starts; with one step and no noise removal the noise is added."""
    sde = VPSDE()
    x1 = t64(np.zeros((3, 2)))
    zero = lambda x, t: x * 0          # noqa: E731
    out = reverse_sde_sample(zero, sde, (3, 2), 1, x_1=x1)
    np.testing.assert_array_equal(out.numpy(), 0)      # f(0) = 0, s = 0, no noise
    out = reverse_sde_sample(zero, sde, (3, 2), 1, x_1=x1, denoise=False)
    assert np.all(out.numpy() != 0)


# ---- the probability-flow ODE
@pytest.mark.parametrize("method, kw, tol", [("rk4", {"steps": 100}, 1e-6),
                                             ("dopri5", {"rtol": 1e-8, "atol": 1e-8}, 1e-7)])
@pytest.mark.parametrize("via", ["score", "eps"])
def test_probability_flow_ode_is_the_exact_transport_map(method, kw, tol, via):
    """Each sample equals x_e = m_e + sqrt(v_e / v_1)(x_1 - m_1) (flow_map_moments) to the
    solver's accuracy (RK4's error at 100 steps measured 1e-7, Dormand-Prince's at
    1e-8 tolerances 1e-8); the same x_1 gives the same x_0 bit for bit; and the samples'
    moments are the map's, which are the data's within 0.002 (the prior's mismatch)."""
    sde = VPSDE()
    score = exact_score if via == "score" else score_from_eps(exact_eps(), sde)
    n = 4000
    x1 = t64(np.random.default_rng(5).standard_normal((n // 2, 2)))
    x, stats = ode_sample(score, sde, (n // 2, 2), method, x_1=x1, return_stats=True, **kw)
    m_e, v_e, m_1, v_1 = flow_map_moments()
    expect = m_e + math.sqrt(v_e / v_1) * (x1.numpy() - m_1)
    np.testing.assert_allclose(x.numpy(), expect, atol=tol, rtol=0)
    again = ode_sample(score, sde, (n // 2, 2), method, x_1=x1, **kw)
    np.testing.assert_array_equal(x.numpy(), again.numpy())
    # RK4: 4 evaluations a step; Dormand-Prince: 50 times more accurate in fewer
    assert stats["nfe"] == 400 if method == "rk4" else stats["nfe"] < 400
    mean, var = m_e - math.sqrt(v_e / v_1) * m_1, v_e / v_1
    assert abs(mean - M) < 0.002 and abs(var / S2 - 1) < 1e-3
    y = x.numpy().ravel()
    assert abs(y.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(y.var() - var) < 5 * var * math.sqrt(2 / n)


def test_ode_solvers_have_their_orders():
    """y' = cos(t) y, y(0) = 1, so y = exp(sin t), on [0, 3] and back. RK4's global error
    falls 16-fold when h halves; Dormand-Prince meets its tolerance (global error within
    20 tol here) and needs fewer evaluations for a looser one; tuple states work."""
    f = lambda t, y: y * math.cos(t)       # noqa: E731
    y0 = t64(np.ones((2, 1)))
    errs = [abs(odeint(f, y0, 0, 3, "rk4", steps=s)[0].numpy()[0, 0] - math.exp(math.sin(3)))
            for s in (20, 40, 80)]
    assert 12 < errs[0] / errs[1] < 20 and 12 < errs[1] / errs[2] < 20
    nfe = []
    for tol in (1e-4, 1e-7, 1e-10):
        y, stats = odeint(f, y0, 0, 3, "dopri5", rtol=tol, atol=tol)
        assert abs(y.numpy()[0, 0] - math.exp(math.sin(3))) < 20 * tol
        nfe.append(stats["nfe"])
    assert nfe[0] < nfe[1] < nfe[2]
    back, _ = odeint(f, t64([[math.exp(math.sin(3))]]), 3, 0, "dopri5", rtol=1e-9, atol=1e-9)
    assert back.item() == pytest.approx(1.0, abs=1e-7)
    (a, b), _ = odeint(lambda t, y: (y[1], -y[0]), (t64([[1.0]]), t64([[0.0]])), 0, math.pi,
                       "dopri5", rtol=1e-9, atol=1e-9)               # cos, -sin
    assert a.item() == pytest.approx(-1.0, abs=1e-7) and b.item() == pytest.approx(0, abs=1e-7)


def test_probability_flow_drift_formula():
    sde = VPSDE()
    x = t64(np.random.default_rng(6).standard_normal((3, 2)))
    t = np.array([0.2, 0.5, 0.8])
    F = probability_flow_drift(exact_score, sde)(x, t).numpy()
    expect = -0.5 * beta(t)[:, None] * (x.numpy() + exact_score(x, t).numpy())
    np.testing.assert_allclose(F, expect, rtol=1e-12)


# ---- the likelihood
def test_ode_log_likelihood_of_gaussian_data_is_exact():
    """With the exact score the model's density at eps_t is the push-forward of N(0, I) by
    the flow map: N(x; m_e - sqrt(v_e / v_1) m_1, v_e / v_1) per coordinate. The ODE's
    log-likelihood (exact divergence in 2-D) equals it to 1e-6 nats with Dormand-Prince
    at 1e-9 (and to 3e-5 with RK4 in 100 steps), and log N(x; M, S2 I) within the
    mismatch's first-order size, |x - M| |dm| / S2 + (1 + (x - M)^2 / S2) |dv| / (2 S2)
    per coordinate (dm, dv: the model's moments minus the data's)."""
    sde = VPSDE()
    rng = np.random.default_rng(7)
    x = M + math.sqrt(S2) * rng.standard_normal((12, 2))
    x[0] = [M, M]
    x[1] = [M - 3, M + 2]              # far out: a larger mismatch, still bounded
    m_e, v_e, m_1, v_1 = flow_map_moments()
    mean, var = m_e - math.sqrt(v_e / v_1) * m_1, v_e / v_1
    expect = gaussian_log_density(x, mean, var)
    ll, stats = ode_log_likelihood(exact_score, sde, t64(x), rtol=1e-9, atol=1e-9,
                                   return_stats=True)
    assert ll.shape == (12,) and ll.dtype == np.float64
    np.testing.assert_allclose(ll, expect, atol=1e-6, rtol=0)
    x_1 = m_1 + math.sqrt(v_1 / v_e) * (x - m_e)       # the flow map's inverse
    np.testing.assert_allclose(stats["x_1"].numpy(), x_1, atol=1e-7)
    np.testing.assert_allclose(stats["delta_log_prob"], 2 * 0.5 * math.log(v_1 / v_e),
                               atol=1e-6)
    rk4 = ode_log_likelihood(exact_score, sde, t64(x), method="rk4", steps=100)
    np.testing.assert_allclose(rk4, expect, atol=3e-5, rtol=0)
    dm, dv = mean - M, var - S2
    bound = (np.abs(x - M) * abs(dm) / S2 + (1 + (x - M) ** 2 / S2) * abs(dv) / (2 * S2)).sum(1)
    assert np.all(np.abs(ll - gaussian_log_density(x, M, S2)) < 1.2 * bound + 1e-6)


def field(x, t):
    """A nonlinear field with a full Jacobian: F(x) = tanh(x W) + t sin(x) x_0 (per row)."""
    W = tg.tensor(np.array([[0.5, -1.0, 0.3], [0.8, 0.2, -0.7], [-0.4, 0.9, 1.1]]).astype(x.dtype))
    return (x @ W).tanh() + x.sin() * x[:, 0:1] * float(t)


def field_np(x, t):
    W = np.array([[0.5, -1.0, 0.3], [0.8, 0.2, -0.7], [-0.4, 0.9, 1.1]])
    return np.tanh(x @ W) + np.sin(x) * x[:, 0:1] * t


def test_exact_divergence_against_finite_differences():
    x = np.random.default_rng(8).standard_normal((5, 3))
    value, div = divergence(field, t64(x), 0.7)
    np.testing.assert_allclose(value.numpy(), field_np(x, 0.7), rtol=1e-12)
    h, fd = 1e-6, np.zeros(5)
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        fd += (field_np(x + e, 0.7)[:, j] - field_np(x - e, 0.7)[:, j]) / (2 * h)
    np.testing.assert_allclose(div.numpy(), fd, rtol=1e-7, atol=1e-8)
    # inside no_grad too (the samplers' context)
    with tg.no_grad():
        np.testing.assert_allclose(divergence(field, t64(x), 0.7)[1].numpy(), div.numpy())


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_on_a_linear_field(probe):
    """F(x) = x A^T: v^T A v has mean tr A for E[v v^T] = I, and variance sum_{i<j}
    (A_ij + A_ji)^2 for Rademacher v, 2 ||(A + A^T) / 2||_F^2 for Gaussian v. 20,000
    rows, each its own probe: the mean within 4 standard errors, the variance within 5%."""
    from tinygen.models.diffusion.sde import _draw_probe
    rng = np.random.default_rng(9)
    A = rng.standard_normal((4, 4))
    n = 20_000
    x = t64(rng.standard_normal((n, 4)))
    lin = lambda x, t: x @ tg.tensor(A.T)          # noqa: E731
    v = _draw_probe(probe, x)
    value, est = divergence(lin, x, 0.5, "hutchinson", v)
    np.testing.assert_allclose(value.numpy(), x.numpy() @ A.T, rtol=1e-12)
    Sym = A + A.T
    var = (np.triu(Sym, 1) ** 2).sum() if probe == "rademacher" else 2 * ((Sym / 2) ** 2).sum()
    est = est.numpy()
    assert abs(est.mean() - np.trace(A)) < 4 * math.sqrt(var / n)
    assert est.var() == pytest.approx(var, rel=0.05)
    if probe == "rademacher":
        assert set(np.unique(v.numpy())) == {-1.0, 1.0}


def test_hutchinson_matches_the_exact_divergence_of_a_nonlinear_field():
    x = np.random.default_rng(10).standard_normal((1, 3))
    exact = divergence(field, t64(x), 0.4)[1].item()
    n = 8000
    xs = t64(np.repeat(x, n, axis=0))
    est = divergence(field, xs, 0.4, "hutchinson", tg.randn(n, 3, dtype=np.float64))[1].numpy()
    assert abs(est.mean() - exact) < 4 * est.std() / math.sqrt(n)


def test_hutchinson_log_likelihood_is_unbiased():
    """On the isotropic Gaussian the Jacobian of F is c(t) I, so a Rademacher probe gives
    v^T c I v = c D exactly and the estimate is the exact log-likelihood; a Gaussian
    probe gives c ||v||^2, right on average: one point, 2,000 probes, 4 standard errors."""
    sde = VPSDE()
    x = np.array([[0.3, 1.1]])
    exact = ode_log_likelihood(exact_score, sde, t64(x), rtol=1e-7, atol=1e-7)[0]
    rad = ode_log_likelihood(exact_score, sde, t64(x), rtol=1e-7, atol=1e-7,
                             divergence_method="hutchinson")[0]
    assert rad == pytest.approx(exact, abs=1e-5)
    n = 2000
    est = ode_log_likelihood(exact_score, sde, t64(np.repeat(x, n, axis=0)), rtol=1e-6,
                             atol=1e-6, divergence_method="hutchinson", probe="gaussian")
    assert est.std() > 0.1
    assert abs(est.mean() - exact) < 4 * est.std() / math.sqrt(n)


def test_ode_log_likelihood_with_a_network():
    """The pieces compose with the library's MLP in float32 (a smoke test: shapes,
    finiteness, Hutchinson's one vector-Jacobian product through the network)."""
    net = MLPDenoiser(2, 16, depth=1, time_dim=8)
    score = score_from_eps(net, VPSDE())
    x = tg.randn(3, 2)
    for div in ("exact", "hutchinson"):
        ll = ode_log_likelihood(score, VPSDE(), x, method="rk4", steps=2,
                                divergence_method=div)
        assert ll.shape == (3,) and ll.dtype == np.float64 and np.isfinite(ll).all()
    assert not any(p.grad is not None for p in net.parameters())


def test_the_samplers_and_the_likelihood_on_every_device(device):
    """The same numbers on the GPU (or the NumPy stand-in for CuPy, which refuses to mix
    host and device arrays) as on the CPU, for the same starting noise."""
    sde = VPSDE()
    x1 = np.random.default_rng(13).standard_normal((6, 2))
    results = {}
    for dev in ("cpu", device):
        x = tg.tensor(x1, device=dev)
        ode = ode_sample(exact_score, sde, (6, 2), "rk4", steps=5, x_1=x)
        ada = ode_sample(exact_score, sde, (6, 2), rtol=1e-6, atol=1e-6, x_1=x)
        ll = ode_log_likelihood(exact_score, sde, x, "rk4", steps=3)
        hutch = ode_log_likelihood(exact_score, sde, x, "rk4", steps=3,
                                   divergence_method="hutchinson")  # Rademacher: exact here
        sde_out = reverse_sde_sample(exact_score, sde, (6, 2), 3, corrector_steps=1, x_1=x)
        assert ode.device == dev and sde_out.device == dev and sde_out.shape == (6, 2)
        results[dev] = (ode.numpy(), ada.numpy(), ll, hutch)
    for a, b in zip(results["cpu"], results[device]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[device][2], results[device][3], rtol=1e-10)


# ---- denoising score matching
def test_dsm_target_is_the_gradient_of_log_q_xt_given_x0():
    sde = VPSDE()
    rng = np.random.default_rng(11)
    t = rng.uniform(0.01, 1, 4)
    x0, eps = t64(rng.standard_normal((4, 3))), t64(rng.standard_normal((4, 3)))
    xt = sde.perturb(x0, t, eps).detach().requires_grad_()
    a = ab(t)
    logq = (-0.5 * (xt - x0 * col(np.sqrt(a), x0)) ** 2 * col(1 / (1 - a), x0)).sum()
    (g,) = tg.grad(logq, xt)
    np.testing.assert_allclose(dsm_target(sde, eps, t).numpy(), g.numpy(), rtol=1e-9)


def test_dsm_loss_is_l_simple_over_sigma_squared():
    """With s = -eps_theta / sigma, (s + eps / sigma)^2 = (eps - eps_theta)^2 / sigma^2 entry
    by entry: at one t the unweighted DSM loss is L_simple / sigma(t)^2, and weighted by
    sigma^2 (per example t) it is L_simple itself; "likelihood" weights by beta(t)."""
    sde = VPSDE()
    rng = np.random.default_rng(12)
    n = 6
    x0, eps = t64(rng.standard_normal((n, 3))), t64(rng.standard_normal((n, 3)))
    C, c = rng.standard_normal((3, 3)), rng.standard_normal(3)

    def eps_model(x, steps):       # an arbitrary (wrong) predictor depending on x and t
        return (x @ tg.tensor(C)) * col(np.asarray(steps) / 1000, x) + tg.tensor(c)
    score = score_from_eps(eps_model, sde)

    def l_simple(t):               # computed here, from x_t = sqrt(ab) x_0 + sigma eps
        a = ab(t)[:, None]
        xt = np.sqrt(a) * x0.numpy() + np.sqrt(1 - a) * eps.numpy()
        out = eps_model(t64(xt), np.asarray(t) * 1000).numpy()
        return ((eps.numpy() - out) ** 2).mean(axis=1)           # per example
    t = np.full(n, 0.37)
    got = dsm_loss(score, sde, x0, t, eps, weighting="none").item()
    assert got == pytest.approx(l_simple(t).mean() / (1 - ab(0.37)), rel=1e-10)
    t = rng.uniform(0.01, 1, n)
    got = dsm_loss(score, sde, x0, t, eps, weighting="sigma2").item()
    assert got == pytest.approx(l_simple(t).mean(), rel=1e-10)
    got = dsm_loss(score, sde, x0, t, eps, weighting="likelihood").item()
    assert got == pytest.approx((l_simple(t) * beta(t) / (1 - ab(t))).mean(), rel=1e-10)
    got = dsm_loss(score, sde, x0, t, eps, weighting=lambda t: np.ones_like(t)).item()
    assert got == pytest.approx((l_simple(t) / (1 - ab(t))).mean(), rel=1e-10)
    # drawn t and eps: a finite scalar that trains (a gradient reaches a parameter)
    w = t64(np.eye(3)).requires_grad_()
    loss = dsm_loss(lambda x, t: x @ w * -1.0, sde, x0)
    (gw,) = tg.grad(loss, w)
    assert np.isfinite(loss.item()) and np.abs(gw.numpy()).sum() > 0


# ---- refusals
def test_bad_arguments_are_refused():
    sde = VPSDE()
    x = t64(np.zeros((2, 2)))
    cases = [
        (lambda: VPSDE(0.0, 20.0), "beta_min"),
        (lambda: VPSDE(5.0, 1.0), "beta_min"),
        (lambda: VPSDE.from_schedule(NoiseSchedule.cosine(100)), "linear"),
        (lambda: score_from_eps(exact_eps(), sde, T=0), "T must"),
        (lambda: score_from_eps(exact_eps(), sde, 100, schedule=NoiseSchedule.linear(50)),
         "schedule"),
        (lambda: score_from_eps(exact_eps(), sde)(x, 0.0), r"\(0, 1\]"),
        (lambda: score_from_eps(exact_eps(), sde)(x, np.array([0.5, 1.5])), r"\(0, 1\]"),
        (lambda: score_from_eps(exact_eps(), sde)(x, np.array([0.5, 0.5, 0.5])), "2 times"),
        (lambda: reverse_sde_sample(exact_score, sde, (2, 2), 0), "steps"),
        (lambda: reverse_sde_sample(exact_score, sde, (2, 2), 2.5), "steps"),
        (lambda: reverse_sde_sample(exact_score, sde, (2, 2), 5, eps_t=0.0), "eps_t"),
        (lambda: reverse_sde_sample(exact_score, sde, (2, 2), 5, eps_t=1.0), "eps_t"),
        (lambda: reverse_sde_sample(exact_score, sde, (2, 2), 5, corrector_steps=-1),
         "corrector_steps"),
        (lambda: reverse_sde_sample(exact_score, sde, (2, 2), 5, corrector_steps=1, snr=0),
         "snr"),
        (lambda: reverse_sde_sample(exact_score, sde, (3, 2), 5, x_1=x), "x_1"),
        (lambda: langevin_step(exact_score, x, 0.5, snr=-1), "snr"),
        (lambda: langevin_step(exact_score, x, 0.5, alpha=0.0), "alpha"),
        (lambda: ode_sample(exact_score, sde, (2, 2), "euler"), "ODE method"),
        (lambda: ode_sample(exact_score, sde, (2, 2), "rk4", steps=0), "steps"),
        (lambda: ode_sample(exact_score, sde, (2, 2), rtol=0), "rtol"),
        (lambda: ode_sample(exact_score, sde, (2, 2), eps_t=-0.1), "eps_t"),
        (lambda: ode_log_likelihood(exact_score, sde, x, divergence_method="trace"),
         "divergence method"),
        (lambda: ode_log_likelihood(exact_score, sde, x, divergence_method="hutchinson",
                                    probe="uniform"), "probe"),
        (lambda: ode_log_likelihood(exact_score, sde, x, eps_t=2.0), "eps_t"),
        (lambda: divergence(field, t64(np.zeros((2, 3))), 0.5, "hutchinson"), "probe"),
        (lambda: divergence(lambda x, t: x[:, :1], x, 0.5), "shape"),
        (lambda: dsm_loss(exact_score, sde, x, weighting="snr"), "weighting"),
    ]
    for make, match in cases:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(RuntimeError, match="max_steps"):
        odeint(lambda t, y: y * 50.0, x + 1, 0, 1, "dopri5", rtol=1e-10, atol=1e-10,
               max_steps=3)
