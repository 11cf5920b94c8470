"""tinygen.models.diffusion: the DDPM's math, proven without training.

- the schedules: alpha_bar_0 = 1, alpha_bar_T near 0, the cosine schedule's formula;
- q(x_t | x_0) in closed form equals t steps of q(x_t | x_{t-1}) (exactly for the mean
  part, in moments for the noise);
- the posterior q(x_{t-1} | x_t, x_0) equals Bayes' rule for the two Gaussians, computed
  here independently; mu_theta with the true noise is the posterior mean;
- on Gaussian data N(m, s^2) the optimal eps-predictor is known in closed form; with it
  the ancestral sampler's moments follow the exact linear-Gaussian recursion (and land
  near m and s^2), DDIM (eta = 0) is the deterministic map that recursion gives, and DDIM
  with S = T and eta = 1 is ancestral sampling with sigma_t^2 = beta~_t, draw for draw;
- the variational bound: its expectation, for a 1-pixel model with T = 2, equals the
  expectation of log q(x_1, x_2 | x_0) - log p(x_0, x_1, x_2) computed by quadrature from
  the joint densities; each KL against the distributions module; the discretised
  Gaussian decoder sums to 1 over the 256 levels and keeps its tails;
- the mistakes other diffusion code keeps making: training t covers exactly 1..T, the
  sampler visits T..1 once each, DDIM's step after the first lands on alpha_bar = 1.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygen as tg
from tinygen.distributions import Normal, kl_divergence
from tinygen.models.diffusion import (GaussianDiffusion, MLPDenoiser, NoiseSchedule, UNet,
                                      discretized_gaussian_log_likelihood,
                                      timestep_embedding)
from tinygen.models.diffusion.ddim import ddim_sample, ddim_step, ddim_timesteps


def t64(a):
    return tg.tensor(np.asarray(a, dtype=np.float64))


# ---- the schedules
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedule_ends(name):
    s = NoiseSchedule.named(name, 1000)
    assert s.T == 1000 and len(s.betas) == 1001
    assert s.betas[0] == 0 and s.alpha_bars[0] == 1
    assert s.alpha_bars[-1] < 1e-4              # x_T is almost pure noise
    assert np.all(np.diff(s.alpha_bars) < 0)
    np.testing.assert_allclose(s.alpha_bars[1:], np.cumprod(1 - s.betas[1:]), rtol=1e-12)


def test_linear_schedule_is_ho_et_al():
    s = NoiseSchedule.linear()
    assert s.betas[1] == pytest.approx(1e-4) and s.betas[1000] == pytest.approx(0.02)
    assert s.alpha_bars[-1] == pytest.approx(4.04e-5, rel=0.01)
    # fewer steps, larger betas: x_T is as close to noise as with T = 1000
    short = NoiseSchedule.linear(100)
    assert short.betas[1] == pytest.approx(1e-3) and short.betas[100] == pytest.approx(0.2)
    assert short.alpha_bars[-1] < 1e-4


def test_cosine_schedule_formula():
    T, off = 1000, 0.008
    s = NoiseSchedule.cosine(T)
    t = np.arange(T + 1)
    f = np.cos((t / T + off) / (1 + off) * math.pi / 2) ** 2
    unclipped = s.betas < 0.999
    # where no beta was clipped alpha_bar_t is f(t) / f(0) itself
    first_clipped = np.argmax(~unclipped[1:]) + 1 if (~unclipped[1:]).any() else T + 1
    np.testing.assert_allclose(s.alpha_bars[:first_clipped], (f / f[0])[:first_clipped],
                               rtol=1e-9)


@pytest.mark.parametrize("betas", [[], [0.1, 1.0], [0.0, 0.1], [[0.1]]])
def test_schedule_refuses_bad_betas(betas):
    with pytest.raises(ValueError, match="beta"):
        NoiseSchedule(betas)


def test_schedule_refuses_bad_T():
    with pytest.raises(ValueError, match="positive integer"):
        NoiseSchedule.linear(0)
    with pytest.raises(ValueError, match="choose one of"):
        NoiseSchedule.named("quadratic")


# ---- the forward process
@given(t=st.integers(1, 50), x0=st.floats(-1, 1))
@settings(max_examples=20, deadline=None)
def test_closed_form_mean_equals_iterated_steps(t, x0):
    """With the noise switched off both give the mean part: prod sqrt(alpha_s) x_0 =
    sqrt(alpha_bar_t) x_0."""
    d = GaussianDiffusion(NoiseSchedule.linear(50, 1e-3, 0.2))
    x = t64([[x0]])
    zero = t64([[0.0]])
    for s in range(1, t + 1):
        x = d.q_step(x, s, zero)
    np.testing.assert_allclose(x.numpy(), d.q_sample(t64([[x0]]), t, zero).numpy(), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("t", [1, 7, 30])
def test_closed_form_moments_equal_iterated_steps(t):
    """Iterating q(x_t | x_{t-1}) from a fixed x_0 gives mean sqrt(alpha_bar_t) x_0 and
    variance 1 - alpha_bar_t (within 5 standard errors)."""
    d = GaussianDiffusion(NoiseSchedule.linear(30, 1e-2, 0.2))
    n, x0 = 200_000, 0.8
    x = t64(np.full((n, 1), x0))
    for s in range(1, t + 1):
        x = d.q_step(x, s, tg.randn(n, 1, dtype=np.float64))
    x = x.numpy().ravel()
    a = d.schedule.alpha_bars[t]
    var = 1 - a
    assert abs(x.mean() - math.sqrt(a) * x0) < 5 * math.sqrt(var / n)
    assert abs(x.var() - var) < 5 * var * math.sqrt(2 / n)
    # and the closed form's own draws, for comparison
    y = d.q_sample(t64(np.full((n, 1), x0)), t, tg.randn(n, 1, dtype=np.float64)).numpy()
    assert abs(y.mean() - math.sqrt(a) * x0) < 5 * math.sqrt(var / n)


@given(t=st.integers(2, 100), x0=st.floats(-2, 2), xt=st.floats(-3, 3))
@settings(max_examples=40, deadline=None)
def test_posterior_is_bayes_rule(t, x0, xt):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): precision is the sum of
    the precisions, mean the precision-weighted means."""
    s = NoiseSchedule.linear(100, 1e-3, 0.1)
    d = GaussianDiffusion(s)
    a_prev, alpha, beta = s.alpha_bars[t - 1], s.alphas[t], s.betas[t]
    # prior x_{t-1} ~ N(sqrt(a_prev) x0, 1 - a_prev); likelihood x_t ~ N(sqrt(alpha) x_{t-1}, beta)
    precision = 1 / (1 - a_prev) + alpha / beta
    mean = (math.sqrt(a_prev) * x0 / (1 - a_prev) + math.sqrt(alpha) * xt / beta) / precision
    m, v = d.q_posterior(t64([[x0]]), t64([[xt]]), t)
    assert m.item() == pytest.approx(mean, rel=1e-5, abs=1e-6)
    assert v.item() == pytest.approx(1 / precision, rel=1e-5)


def test_posterior_at_t1_is_x0():
    """At t = 1 the prior is x_0 itself (alpha_bar_0 = 1): mean x_0, variance 0."""
    d = GaussianDiffusion(NoiseSchedule.linear(10))
    m, v = d.q_posterior(t64([[0.3]]), t64([[-1.2]]), 1)
    assert m.item() == pytest.approx(0.3, abs=1e-6) and v.item() == 0


@given(t=st.integers(1, 1000), seed=st.integers(0, 100))
@settings(max_examples=30, deadline=None)
def test_p_mean_with_true_noise_is_posterior_mean(t, seed):
    """mu_theta(x_t, t) = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) with the
    eps that made x_t is mu~_t(x_t, x_0); clipping x_0 to a range it lies in changes
    nothing; predict_x0 inverts q_sample."""
    d = GaussianDiffusion()
    rng = np.random.default_rng(seed)
    x0, eps = t64(rng.uniform(-1, 1, (3, 5))), t64(rng.standard_normal((3, 5)))
    xt = d.q_sample(x0, t, eps)
    np.testing.assert_allclose(d.predict_x0(xt, t, eps).numpy(), x0.numpy(), atol=1e-6)
    post, _ = d.q_posterior(x0, xt, t)
    np.testing.assert_allclose(d.p_mean(xt, t, eps).numpy(), post.numpy(), atol=1e-5)
    np.testing.assert_allclose(d.p_mean(xt, t, eps, clip_x0=(-1, 1)).numpy(), post.numpy(),
                               atol=1e-5)


def test_timesteps_are_checked():
    d = GaussianDiffusion(NoiseSchedule.linear(10))
    x = t64(np.zeros((2, 1)))
    for bad in (0, 11, np.array([1, 2, 3]), np.array([0.5, 1.0])):
        with pytest.raises(ValueError, match="t must"):
            d.q_sample(x, bad, x)
    with pytest.raises(ValueError, match="variance"):
        GaussianDiffusion(variance="learned")


# ---- Gaussian data: the optimal eps-predictor in closed form
M, S2 = 0.7, 0.16     # data N(M, S2) in every coordinate


def optimal_eps(diffusion):
    """E[eps | x_t] for x_0 ~ N(M, S2): x_t ~ N(sqrt(a) M, a S2 + 1 - a) jointly Gaussian
    with eps, so E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) M) / (a S2 + 1 - a)."""
    ab = diffusion.schedule.alpha_bars

    def eps(x, t):
        a = ab[np.asarray(t)].reshape((-1,) + (1,) * (x.ndim - 1))
        c = np.sqrt(1 - a) / (a * S2 + 1 - a)
        return x * tg.tensor(c.astype(x.dtype)) - tg.tensor((c * np.sqrt(a) * M).astype(x.dtype))
    return eps


def ancestral_moments(diffusion):
    """The exact mean and variance of the ancestral sampler's x_0 with optimal_eps, by the
    scalar recursion of Algorithm 2: x_{t-1} = A_t x_t + B_t + sigma_t z is linear."""
    s = diffusion.schedule
    mean, var = 0.0, 1.0
    for t in range(s.T, 0, -1):
        a, alpha, beta = s.alpha_bars[t], s.alphas[t], s.betas[t]
        c = math.sqrt(1 - a) / (a * S2 + 1 - a)           # eps = c x_t - c sqrt(a) M
        k = beta / math.sqrt(1 - a)
        A, B = (1 - k * c) / math.sqrt(alpha), k * c * math.sqrt(a) * M / math.sqrt(alpha)
        mean, var = A * mean + B, A * A * var
        if t > 1:   # sigma_t^2 by hand: beta_t, or beta~_t = (1 - a_{t-1}) / (1 - a_t) beta_t
            var += beta if diffusion.variance == "beta" else \
                (1 - s.alpha_bars[t - 1]) / (1 - a) * beta
    return mean, var


@pytest.mark.parametrize("eta", [0.3, 0.8])
def test_stochastic_ddim_on_gaussian_data(eta):
    """0 < eta < 1 and S < T: each step of eq. (12) is x' = A x + B + sigma z with
    sigma = eta sqrt((1 - a') / (1 - a)) sqrt(1 - a / a'); the samples' moments match
    that recursion's, computed here by hand."""
    d = GaussianDiffusion(NoiseSchedule.linear(1000))
    S, s = 50, d.schedule
    taus = ddim_timesteps(1000, S)
    mean, var = 0.0, 1.0
    for i in range(S - 1, -1, -1):
        t, tp = taus[i], (taus[i - 1] if i > 0 else 0)
        a, ap = s.alpha_bars[t], s.alpha_bars[tp]
        c = math.sqrt(1 - a) / (a * S2 + 1 - a)               # eps = c x - c sqrt(a) M
        sigma2 = eta ** 2 * (1 - ap) / (1 - a) * (1 - a / ap)
        k = math.sqrt(1 - ap - sigma2)
        # x0 = (x - sqrt(1 - a) eps) / sqrt(a); x' = sqrt(a') x0 + k eps + sigma z
        A = math.sqrt(ap) * (1 - math.sqrt(1 - a) * c) / math.sqrt(a) + k * c
        B = -(math.sqrt(ap) * (-math.sqrt(1 - a) * c) / math.sqrt(a) + k * c) * math.sqrt(a) * M
        mean, var = A * mean + B, A * A * var + sigma2
    n = 60_000
    x = ddim_sample(d, optimal_eps(d), (n // 4, 4), S, eta=eta).numpy().ravel()
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var() - var) < 5 * var * math.sqrt(2 / n)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ancestral_sampling_on_gaussian_data(schedule, variance):
    d = GaussianDiffusion(NoiseSchedule.named(schedule, 1000), variance)
    mean, var = ancestral_moments(d)
    # the recursion lands near the data's moments (the discretisation's bias is small)
    assert mean == pytest.approx(M, abs=1e-3) and var == pytest.approx(S2, rel=0.03)
    n = 60_000
    x = d.sample(optimal_eps(d), (n // 4, 4)).numpy().ravel()
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var() - var) < 5 * var * math.sqrt(2 / n)


@pytest.mark.parametrize("steps", [10, 50, 1000])
def test_ddim_deterministic_on_gaussian_data(steps):
    """DDIM with eta = 0 is a deterministic affine map of x_T here: the scalar recursion
    of eq. (12) predicts every output to float precision, and with S = T the samples'
    moments are the data's."""
    d = GaussianDiffusion(NoiseSchedule.linear(1000))
    s, taus = d.schedule, ddim_timesteps(1000, steps)
    xT = np.random.default_rng(0).standard_normal((500, 1))
    expect = xT.copy()
    for i in range(steps - 1, -1, -1):
        t, tp = taus[i], (taus[i - 1] if i > 0 else 0)
        a, ap = s.alpha_bars[t], s.alpha_bars[tp]
        c = math.sqrt(1 - a) / (a * S2 + 1 - a)
        eps = c * expect - c * math.sqrt(a) * M
        x0 = (expect - math.sqrt(1 - a) * eps) / math.sqrt(a)
        expect = math.sqrt(ap) * x0 + math.sqrt(1 - ap) * eps
    out = ddim_sample(d, optimal_eps(d), (500, 1), steps, x_T=t64(xT)).numpy()
    np.testing.assert_allclose(out, expect, rtol=1e-9, atol=1e-9)
    again = ddim_sample(d, optimal_eps(d), (500, 1), steps, x_T=t64(xT)).numpy()
    np.testing.assert_array_equal(out, again)
    if steps == 1000:
        x = ddim_sample(d, optimal_eps(d), (20_000, 2), steps).numpy().ravel()
        assert abs(x.mean() - M) < 5 * math.sqrt(S2 / x.size) + 2e-3
        assert x.var() == pytest.approx(S2, rel=0.03)


def test_ddim_with_all_steps_and_eta_1_is_ancestral_sampling():
    """S = T, eta = 1: sigma^2 = beta~_t and the same mean, so with the same random draws
    the two samplers agree (Song et al., section 4.1)."""
    d = GaussianDiffusion(NoiseSchedule.linear(200, 1e-3, 0.05), "beta_tilde")
    tg.manual_seed(3)
    a = d.sample(optimal_eps(d), (64, 3)).numpy()
    tg.manual_seed(3)
    b = ddim_sample(d, optimal_eps(d), (64, 3), 200, eta=1.0).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_ddim_last_step_lands_on_clean_data():
    """The step after the first of the subsequence goes to alpha_bar_0 = 1 (not a wrapped
    index): x_0 is then the predicted x_0 exactly, with no noise even for eta = 1."""
    d = GaussianDiffusion(NoiseSchedule.linear(100))
    assert ddim_timesteps(100, 10)[0] == 10 and ddim_timesteps(100, 10)[-1] == 100
    np.testing.assert_array_equal(ddim_timesteps(7, 7), np.arange(1, 8))
    x = t64(np.random.default_rng(1).standard_normal((4, 3)))
    eps = t64(np.random.default_rng(2).standard_normal((4, 3)))
    x_prev, x0 = ddim_step(d, eps, x, 10, 0, eta=1.0)
    np.testing.assert_array_equal(x_prev.numpy(), x0.numpy())
    np.testing.assert_allclose(x0.numpy(), d.predict_x0(x, 10, eps).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_timesteps(100, 0)
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_timesteps(100, 101)


# ---- the mistakes other diffusion code keeps making
def test_training_t_covers_exactly_1_to_T():
    d = GaussianDiffusion(NoiseSchedule.linear(5, 0.1, 0.3))
    seen = []

    def spy(x, t):
        seen.extend(np.asarray(t).tolist())
        return x * 0
    for _ in range(200):
        d.loss_simple(spy, t64(np.zeros((16, 2))))
    assert set(seen) == {1, 2, 3, 4, 5}


def test_sampler_visits_T_to_1_once_each():
    d = GaussianDiffusion(NoiseSchedule.linear(6, 0.1, 0.3))
    seen = []

    def spy(x, t):
        assert len(set(np.asarray(t).tolist())) == 1
        seen.append(int(np.asarray(t)[0]))
        return x * 0
    d.sample(spy, (3, 2))
    assert seen == [6, 5, 4, 3, 2, 1]
    seen.clear()
    ddim_sample(d, spy, (3, 2), 3)
    assert seen == [6, 4, 2]


def test_last_ancestral_step_adds_no_noise():
    d = GaussianDiffusion(NoiseSchedule.linear(4, 0.1, 0.3))
    x = t64(np.ones((2, 2)))
    out, _ = d.p_sample_step(lambda x, t: x * 0, x, 1)
    np.testing.assert_allclose(out.numpy(), d.p_mean(x, 1, x * 0).numpy())


# ---- the variational bound
def test_prior_and_kl_terms_against_the_distributions_module():
    d = GaussianDiffusion(NoiseSchedule.linear(20, 1e-3, 0.2), "beta")
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (3, 4))
    a = d.schedule.alpha_bars[-1]
    expect = kl_divergence(Normal(t64(math.sqrt(a) * x0), t64(np.full_like(x0, math.sqrt(1 - a)))),
                           Normal(t64(np.zeros_like(x0)), t64(np.ones_like(x0)))).numpy()
    np.testing.assert_allclose(d.prior_kl(t64(x0)), expect.sum(axis=1), rtol=1e-9)
    # L_{t-1} for a fixed eps draw and a fixed (wrong) eps_theta
    t, eps = 7, rng.standard_normal((3, 4))
    model = lambda x, ts: x * 0.3 + 0.1      # noqa: E731
    got = d.bound_term(model, t64(x0), t, eps=t64(eps))
    xt = d.q_sample(t64(x0), t, t64(eps))
    post, _ = d.q_posterior(t64(x0), xt, t)
    mean = d.p_mean(xt, t, model(xt, t))
    v1, v2 = d.schedule.posterior_variance[t], d.schedule.betas[t]
    expect = kl_divergence(Normal(post, t64(np.full_like(x0, math.sqrt(v1)))),
                           Normal(mean, t64(np.full_like(x0, math.sqrt(v2))))).numpy()
    np.testing.assert_allclose(got, expect.sum(axis=1), rtol=1e-9)


def test_discretized_decoder_is_a_distribution_over_the_256_levels():
    levels = np.arange(256) / 255 * 2 - 1
    for mean, std in [(0.0, 0.5), (0.93, 0.01), (-1.2, 0.05), (1.0, 0.002), (0.3, 3.0)]:
        logp = discretized_gaussian_log_likelihood(levels.reshape(256, 1),
                                                   np.full((256, 1), mean), std)
        assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-9)
    # a wide Gaussian: a bin's mass is about the density times the width 2/255
    x = levels[100:101].reshape(1, 1)
    logp = discretized_gaussian_log_likelihood(x, np.zeros((1, 1)), 0.5)
    density = math.exp(-0.5 * (x.item() / 0.5) ** 2) / (0.5 * math.sqrt(2 * math.pi))
    assert logp.item() == pytest.approx(math.log(density * 2 / 255), abs=1e-4)


def test_discretized_decoder_keeps_its_tails():
    """A level far above the mean: the bin's mass from the upper tail, not 1 - 1."""
    x = np.array([[200 / 255 * 2 - 1]])
    std = 0.03           # about 19 standard deviations: 1 - Phi rounds to 0 in float64
    lo, hi = (x.item() - 1 / 255) / std, (x.item() + 1 / 255) / std
    expect = math.log(0.5 * math.erfc(lo / math.sqrt(2)) - 0.5 * math.erfc(hi / math.sqrt(2)))
    got = discretized_gaussian_log_likelihood(x, np.zeros((1, 1)), std).item()
    assert expect < -150 and got == pytest.approx(expect, rel=1e-9)
    with pytest.raises(ValueError, match="256 levels"):
        discretized_gaussian_log_likelihood(np.array([[0.001]]), np.zeros((1, 1)), 0.1)


def test_decoder_variance_is_beta_tilde_2():
    """beta~_1 = 0 would make the decoder a point mass; Ho et al.'s code uses beta~_2 for
    both variances (their posterior_variance[1])."""
    s = NoiseSchedule.linear(10, 0.01, 0.1)
    assert s.posterior_variance[1] == 0
    expect = (1 - s.alpha_bars[1]) / (1 - s.alpha_bars[2]) * s.betas[2]   # beta~_2 by hand
    for variance in ("beta", "beta_tilde"):
        assert GaussianDiffusion(s, variance).decoder_variance() == pytest.approx(expect,
                                                                                rel=1e-12)


def _log_normal(x, mean, var):
    return -0.5 * (math.log(2 * math.pi * var) + (x - mean) ** 2 / var)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_bound_equals_its_definition_by_quadrature(variance):
    """For one pixel and T = 2: E_q[L] from the code (L_T + L_1 + L_0, the KL closed forms)
    equals E_q[log q(x_1, x_2 | x_0) - log p(x_0, x_1, x_2)] integrated on a grid from the
    joint densities themselves, eq. (3) of Ho et al. before any rewriting."""
    s = NoiseSchedule([0.15, 0.4])
    d = GaussianDiffusion(s, variance)
    x0 = 150 / 255 * 2 - 1

    def eps_model(x, t):   # any fixed eps_theta: linear in x_t, different per t
        t = np.asarray(t).reshape(-1, 1)
        return x * tg.tensor(np.where(t == 2, 0.8, 0.5)) + tg.tensor(np.where(t == 2, -0.1, 0.2))

    def mu(x, t):          # mu_theta on a grid, from the notes' formula
        e = (0.8 * x - 0.1) if t == 2 else (0.5 * x + 0.2)
        return (x - s.betas[t] / math.sqrt(1 - s.alpha_bars[t]) * e) / math.sqrt(s.alphas[t])

    x1 = np.linspace(math.sqrt(s.alphas[1]) * x0 - 9 * math.sqrt(s.betas[1]),
                     math.sqrt(s.alphas[1]) * x0 + 9 * math.sqrt(s.betas[1]), 1201)
    u = np.linspace(-9, 9, 1201)                       # x_2 = sqrt(alpha_2) x_1 + sqrt(beta_2) u
    X1, U = np.meshgrid(x1, u, indexing="ij")
    X2 = math.sqrt(s.alphas[2]) * X1 + math.sqrt(s.betas[2]) * U
    log_q1 = _log_normal(X1, math.sqrt(s.alphas[1]) * x0, s.betas[1])
    log_q2 = _log_normal(X2, math.sqrt(s.alphas[2]) * X1, s.betas[2])
    log_p2 = _log_normal(X2, 0.0, 1.0)
    log_p1 = _log_normal(X1, mu(X2, 2), float(d.sigma2(2)))
    log_p0 = discretized_gaussian_log_likelihood(
        np.full((len(x1), 1), x0), mu(x1, 1).reshape(-1, 1), math.sqrt(d.decoder_variance()))
    integrand = log_q1 + log_q2 - log_p2 - log_p1 - log_p0[:, None]
    weight = np.exp(log_q1) * np.exp(-0.5 * U ** 2) / math.sqrt(2 * math.pi)   # q(x_1) N(u)
    expect = np.trapezoid(np.trapezoid(weight * integrand, u, axis=1), x1)
    n = 100_000
    xs = t64(np.full((n, 1), x0))
    terms = d.prior_kl(xs) + d.bound_term(eps_model, xs, 2) + d.bound_term(eps_model, xs, 1)
    assert abs(terms.mean() - expect) < 5 * terms.std() / math.sqrt(n)
    total = d.variational_bound(eps_model, xs[:2000])["total"]
    assert abs(total.mean() - expect) < 5 * total.std() / math.sqrt(2000)


# ---- the networks
def test_timestep_embedding():
    e = timestep_embedding(np.array([0, 5]), 8).numpy()
    np.testing.assert_allclose(e[0], [0, 0, 0, 0, 1, 1, 1, 1])
    freqs = np.exp(-math.log(10000) * np.arange(4) / 4)
    np.testing.assert_allclose(e[1], np.concatenate([np.sin(5 * freqs), np.cos(5 * freqs)]),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(np.array([1]), 7)


def test_unet_shapes_and_conditioning():
    x = tg.randn(3, 1, 28, 28)
    t = np.array([1, 500, 1000])
    plain = UNet(channels=8, time_dim=16)
    assert plain(x, t).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="unconditional"):
        plain(x, t, np.array([0, 1, 2]))
    cond = UNet(channels=8, time_dim=16, attention=True, num_classes=10)
    with tg.no_grad():
        a, b = cond(x, t, np.array([0, 1, 2])).numpy(), cond(x, t, np.array([3, 1, 2])).numpy()
        null = cond(x, t).numpy()           # no label: the extra "null" embedding
    assert not np.allclose(a[0], b[0]) and np.allclose(a[1:], b[1:], atol=1e-6)
    assert not np.allclose(null, a)
    with pytest.raises(IndexError):
        cond(x, t, np.array([0, 1, 11]))
    m = MLPDenoiser(2, 16)
    assert m(tg.randn(5, 2), np.arange(1, 6)).shape == (5, 2)


def test_unet_time_changes_the_output_and_the_gradient_flows():
    net = UNet(channels=8, time_dim=16)
    x = tg.randn(2, 1, 28, 28)
    with tg.no_grad():
        early, late = net(x, np.array([1, 1])), net(x, np.array([900, 900]))
        assert not np.allclose(early.numpy(), late.numpy())
    d = GaussianDiffusion(NoiseSchedule.linear(100))
    loss = d.loss_simple(net, x)
    loss.backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all()
               for p in net.parameters())


# ---- inpainting and denoising with the exact eps of Gaussian data
def correlated_eps(diffusion, C):
    """E[eps | x_t] for x_0 ~ N(0, C): sqrt(1 - a) (a C + (1 - a) I)^{-1} x_t."""
    ab = diffusion.schedule.alpha_bars

    def eps(x, t):
        a = ab[np.asarray(t)][:, None, None]
        S = a * C[None] + (1 - a) * np.eye(len(C))[None]
        return tg.tensor(np.sqrt(1 - a[:, :, 0]) *
                         np.linalg.solve(S, x.numpy()[:, :, None])[:, :, 0])
    return eps


def test_repaint_resamples_every_step_but_the_last():
    """r passes at every t > 1, each from x_t (the merged x_{t-1} diffused back by
    q(x_t | x_{t-1})); one pass at t = 1, from x_1, never from the finished x_0."""
    from tinygen.models.diffusion.applications import inpaint
    d = GaussianDiffusion(NoiseSchedule.linear(4, 0.1, 0.3))
    calls = []

    def spy(x, t):
        calls.append(int(np.asarray(t)[0]))
        return x * 0
    inpaint(d, spy, t64(np.full((3, 2), 0.3)), np.array([[1.0, 0.0]]), resample=3)
    assert calls == [4, 4, 4, 3, 3, 3, 2, 2, 2, 1]


def test_inpainting_keeps_the_known_pixels_and_fills_the_rest():
    from tinygen.models.diffusion.applications import inpaint
    d = GaussianDiffusion(NoiseSchedule.linear(1000))
    n, k = 5000, 1.0
    known = t64(np.tile([[k, 0.0]], (n, 1)))
    mask = np.array([[1.0, 0.0]])
    # independent coordinates: the known one says nothing, the filled one is N(0, 0.5)
    out = inpaint(d, correlated_eps(d, np.diag([0.5, 0.5])), known, mask).numpy()
    assert (out[:, 0] == k).all()
    assert abs(out[:, 1].mean()) < 5 * math.sqrt(0.5 / n)
    assert out[:, 1].var() == pytest.approx(0.5, rel=0.06)
    # correlation 0.8: p(x_2 | x_1 = 1) = N(0.8, 0.18). Replacement pulls the filled
    # pixel toward 0.8 but falls short (the two parts meet only through eps_theta, one
    # step at a time); RePaint's resampling closes part of the gap.
    C = 0.5 * np.array([[1, 0.8], [0.8, 1]])
    gaps = []
    for r in (1, 3):
        tg.manual_seed(0)
        out = inpaint(d, correlated_eps(d, C), known, mask, resample=r).numpy()
        assert (out[:, 0] == k).all()
        gaps.append(0.8 - out[:, 1].mean())
    assert 0 < gaps[1] < gaps[0] < 0.5
    with pytest.raises(ValueError, match="resample"):
        inpaint(d, correlated_eps(d, C), known, mask, resample=0)
    with pytest.raises(ValueError, match="only 0"):
        inpaint(d, correlated_eps(d, C), known, np.array([[0.5, 1.0]]))


def test_denoising_samples_the_posterior_of_the_clean_image():
    """y = x_0 + sigma n with x_0 ~ N(M, S2): the reverse process from the matching t draws
    p(x_0 | y) = N(M + S2 / (S2 + sigma^2) (y - M), S2 sigma^2 / (S2 + sigma^2))."""
    from tinygen.models.diffusion.applications import denoise, noise_level_step
    d = GaussianDiffusion(NoiseSchedule.linear(1000))
    sigma, y, n = 0.3, 1.2, 20000
    t = noise_level_step(d.schedule, sigma)
    a = d.schedule.alpha_bars
    assert math.sqrt((1 - a[t]) / a[t]) == pytest.approx(sigma, rel=0.02)
    out, t0 = denoise(d, optimal_eps(d), t64(np.full((n, 1), y)), sigma)
    assert t0 == t
    mean, var = M + S2 / (S2 + sigma ** 2) * (y - M), S2 * sigma ** 2 / (S2 + sigma ** 2)
    x = out.numpy().ravel()
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n) + 0.005
    assert x.var() == pytest.approx(var, rel=0.05)
    with pytest.raises(ValueError, match="sigma must be positive"):
        noise_level_step(d.schedule, 0.0)
