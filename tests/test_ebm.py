"""tinygen.models.ebm: the math of energy-based models, proven mostly without training.

- Langevin dynamics on a quadratic energy E(x) = 1/2 (x - m)^T A (x - m) reaches the
  exact stationary law of the discretised chain, N(m, C) with C = B C B^T + sigma^2 I,
  B = I - (epsilon / 2) A (not A^{-1}: the step's bias is large enough to see, and the
  test checks that it could see it); without noise it is gradient descent, exactly
  x_K - m = B^K (x_0 - m); it clips, keeps parameters out of it, refuses bad arguments;
- the Gaussian energy's log density is the normal's and integrates to 1, its samples
  have its moments;
- the contrastive gradient with exact model samples equals the analytic gradient of
  the mean log-likelihood (within Monte Carlo error), and training on it reaches the
  maximum-likelihood estimate;
- score matching: the exact estimator equals its closed form on a sample, differs from
  the Fisher divergence only by Hyvarinen's constant, agrees with finite differences on
  a neural energy and is stationary at the sample's mean and precision; the sliced
  estimators average to it; denoising score matching estimates its closed form and is
  stationary at the score of the blurred data N(mu, S + sigma^2 I), not of the data;
- the replay buffer restarts the fraction reinit_prob, stores and returns chains,
  round-trips through a checkpoint, and is persistent contrastive divergence at
  reinit_prob = 0, capacity = n;
- an MLP energy trained by contrastive divergence with short Langevin chains from a
  replay buffer on 8gaussians puts a well on every mode.

Tolerances: where an estimate is random, the bound is 4 standard errors (computed in
the test from the same samples, or in closed form as stated beside it); where it is
not, float64 rounding.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygen as tg
from conftest import DEVICES
from tinygen.data import toy, toy_modes
from tinygen.models.ebm import (ConvEnergy, GaussianEnergy, MLPEnergy, ReplayBuffer,
                                contrastive_loss, denoising_score_matching_loss, langevin,
                                quadratic_energy, score, score_matching_loss,
                                sliced_score_matching_loss)
from tinygen.optim import Adam

Z = 4.0  # standard errors allowed for a Monte Carlo estimate (two-sided p ~ 6e-5)

# A non-diagonal precision and a mean, used throughout: eigenvalues 2.28 and 0.72.
A2 = np.array([[2.0, 0.6], [0.6, 1.0]])
M2 = np.array([0.5, -1.0])


def to_float64(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def leaf(a):
    return tg.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def stationary_covariance(B, Q):
    """C with C = B C B^T + Q, by vectorising: (I - B kron B) vec C = vec Q."""
    D = B.shape[0]
    vec = np.linalg.solve(np.eye(D * D) - np.kron(B, B), Q.reshape(-1))
    return vec.reshape(D, D)


def covariance_standard_error(C, n):
    """The standard error of each entry of a sample covariance of n Gaussian draws:
    Var(u_i u_j) = C_ii C_jj + C_ij^2 for u ~ N(0, C)."""
    d = np.diag(C)
    return np.sqrt((np.outer(d, d) + C ** 2) / n)


def random_spd(draw, D):
    L = np.tril(np.array(draw(st.lists(st.floats(-1, 1), min_size=D * D, max_size=D * D)))
                .reshape(D, D), -1)
    L += np.diag(np.exp(draw(st.lists(st.floats(-0.7, 0.7), min_size=D, max_size=D))))
    return L @ L.T


@st.composite
def gaussians(draw, max_dim=3):
    D = draw(st.integers(1, max_dim))
    m = np.array(draw(st.lists(st.floats(-2, 2), min_size=D, max_size=D)))
    return m, random_spd(draw, D)


# --------------------------------------------------------------------------- Langevin

@pytest.mark.parametrize("noise", [None, 0.2])
def test_langevin_reaches_the_exact_stationary_law_of_a_quadratic_energy(noise):
    # x' = x - (eps/2) A (x - m) + sigma xi is linear: its stationary law is N(m, C),
    # C = B C B^T + sigma^2 I, B = I - (eps/2) A; with sigma = sqrt(eps) this is
    # A^{-1} (I - eps A / 4)^{-1}, A^{-1} only as eps -> 0.
    eps, steps, n = 0.2, 300, 50000
    sigma2 = eps if noise is None else noise ** 2
    B = np.eye(2) - eps / 2 * A2
    C = stationary_covariance(B, sigma2 * np.eye(2))
    if noise is None:
        np.testing.assert_allclose(C, np.linalg.inv(A2 @ (np.eye(2) - eps * A2 / 4)),
                                   rtol=1e-12)
    m, A = tg.tensor(M2), tg.tensor(A2)
    tg.manual_seed(1)
    # From x_0 = 0 the mean's offset shrinks by |1 - eps 0.72 / 2|^300 ~ 2e-10 and the
    # covariance's by its square: far below the standard errors.
    x = langevin(lambda x: quadratic_energy(x, m, A), tg.zeros(n, 2, dtype=np.float64),
                 steps, eps, noise=noise).numpy()
    assert x.dtype == np.float64
    se_mean = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(x.mean(0) - M2) < Z * se_mean), (x.mean(0), M2, se_mean)
    se_cov = covariance_standard_error(C, n)
    C_hat = np.cov(x.T, bias=True)
    assert np.all(np.abs(C_hat - C) < Z * se_cov), (C_hat, C, se_cov)
    # The test can tell the chain's law from the target: the target's covariance (for
    # the noise of the math) or T A^{-1}, T = sigma^2 / eps (for a separate noise, the
    # tempered target of the module docstring) is off by many standard errors.
    target = np.linalg.inv(A2) * sigma2 / eps
    assert np.max(np.abs(C - target) / se_cov) > 2 * Z


def test_langevin_without_noise_is_gradient_descent():
    # x_{k+1} - m = (I - eps/2 A)(x_k - m): exactly B^K (x_0 - m) after K steps
    m, A = tg.tensor(M2), tg.tensor(A2)
    x0 = np.random.default_rng(0).normal(size=(5, 2)) * 3
    for eps, K in [(0.1, 7), (0.5, 40)]:
        x = langevin(lambda x: quadratic_energy(x, m, A), tg.tensor(x0), K, eps, noise=0)
        B = np.eye(2) - eps / 2 * A2
        expected = M2 + (x0 - M2) @ np.linalg.matrix_power(B, K).T
        np.testing.assert_allclose(x.numpy(), expected, rtol=1e-12, atol=1e-12)
    x = langevin(lambda x: quadratic_energy(x, m, A), tg.tensor(x0), 400, 0.5, noise=0)
    np.testing.assert_allclose(x.numpy(), np.tile(M2, (5, 1)), atol=1e-10)  # the minimum


def test_langevin_chain_and_clip():
    # E = -|x|^2 pushes every point outwards: without the clip it would leave [-1, 1]
    x0 = tg.tensor(np.random.default_rng(1).uniform(-0.5, 0.5, (200, 2)))
    x, chain = langevin(lambda x: -(x * x).sum(axis=1), x0, 30, 0.1, noise=0.05,
                        clip=(-1.0, 1.0), return_chain=True)
    assert len(chain) == 31
    np.testing.assert_array_equal(chain[0].numpy(), x0.numpy())
    np.testing.assert_array_equal(chain[-1].numpy(), x.numpy())
    for state in chain:
        assert state.numpy().min() >= -1 and state.numpy().max() <= 1
    assert np.mean(np.abs(x.numpy()) == 1) > 0.5  # most coordinates sit on the bounds
    assert not x.requires_grad and x.grad_fn is None
    # zero steps: the start, detached
    x0.requires_grad_()
    x = langevin(lambda x: (x * x).sum(axis=1), x0, 0, 0.1)
    np.testing.assert_array_equal(x.numpy(), x0.numpy())
    assert not x.requires_grad


def test_langevin_leaves_the_parameters_alone():
    tg.manual_seed(0)
    E = MLPEnergy(2, hidden=8)
    E.net[0].bias.requires_grad_(False)   # a frozen parameter stays frozen
    flags = [p.requires_grad for p in E.parameters()]
    x = langevin(E, tg.randn(16, 2), 5, 0.01)
    assert [p.requires_grad for p in E.parameters()] == flags
    assert all(p.grad is None for p in E.parameters())
    x = langevin(lambda x: E(x), x, 5, 0.01)  # any callable: the parameters still unused
    assert all(p.grad is None for p in E.parameters())
    assert [p.requires_grad for p in E.parameters()] == flags


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=-1), "steps"), (dict(steps=2.5), "steps"), (dict(steps=True), "steps"),
    (dict(step_size=0.0), "step_size"), (dict(step_size=-1.0), "step_size"),
    (dict(step_size=float("nan")), "step_size"), (dict(noise=-0.1), "noise"),
    (dict(clip=(1.0, -1.0)), "clip"), (dict(clip=(0.0, 0.0)), "clip"),
    (dict(clip=1.0), "clip"), (dict(clip=(0, float("inf"))), "clip"),
])
def test_langevin_refuses_bad_arguments(kwargs, match):
    args = dict(steps=3, step_size=0.1, noise=None, clip=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        langevin(lambda x: (x * x).sum(axis=1), tg.zeros(4, 2), **args)


def test_energies_of_the_wrong_shape_are_refused():
    x = tg.zeros(4, 2)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        langevin(lambda x: x * x, x, 1, 0.1)              # (n, 2): not one per example
    with pytest.raises(ValueError, match="energy"):
        contrastive_loss(lambda x: (x * x).sum(), x, x)   # a scalar
    # (n, 1), a network ending in Linear(., 1), is accepted
    assert langevin(lambda x: (x * x).sum(axis=1, keepdims=True), x, 1, 0.1).shape == (4, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_langevin_contrastive_and_buffer_on_every_device(device):
    tg.manual_seed(0)
    E = MLPEnergy(2, hidden=8).to(device)
    buf = ReplayBuffer(32, (2,), seed=0)
    x = langevin(E, buf.sample(16, device=device), 3, 0.01, clip=(-1, 1))
    assert x.device == device and x.shape == (16, 2)
    buf.push(x)
    loss = contrastive_loss(E, tg.randn(8, 2, device=device), x, alpha=0.1)
    loss.backward()
    assert loss.device == device and all(p.grad is not None for p in E.parameters())
    x = tg.randn(4, 2, device=device)
    for loss in (score_matching_loss(E, x), sliced_score_matching_loss(E, x, 2),
                 denoising_score_matching_loss(E, x, 0.1)):
        assert loss.device == device and np.isfinite(loss.item())
    G = GaussianEnergy(2).to(device)
    assert G.sample(3).device == device and G.log_prob(x).device == device


# --------------------------------------------------------------------------- the Gaussian energy

@settings(max_examples=10)
@given(gaussians())
def test_gaussian_energy_log_prob_is_the_normal_log_density(params):
    m, A = params
    D = len(m)
    model = GaussianEnergy.from_mean_precision(m, A)
    np.testing.assert_allclose(model.precision.numpy(), A, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.covariance.numpy(), np.linalg.inv(A), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.mean.numpy(), m)
    x = np.random.default_rng(0).normal(size=(6, D)) * 2
    u = x - m
    expected = (-0.5 * np.einsum("ni,ij,nj->n", u, A, u) - D / 2 * math.log(2 * math.pi)
                + 0.5 * np.linalg.slogdet(A)[1])
    np.testing.assert_allclose(model.log_prob(tg.tensor(x)).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(model(tg.tensor(x)).numpy(),
                               quadratic_energy(tg.tensor(x), tg.tensor(m), tg.tensor(A)).numpy(),
                               rtol=1e-10)


def test_gaussian_energy_density_integrates_to_one():
    model = GaussianEnergy.from_mean_precision(M2, A2)
    # a grid over +-9 standard deviations (of the wider axis) in steps of 0.03: the
    # midpoint rule is then exact to far below 1e-6 for a smooth, vanishing integrand
    h = 0.03
    g = np.arange(-9 * 1.4, 9 * 1.4, h) + h / 2
    X, Y = np.meshgrid(g + M2[0], g + M2[1], indexing="ij")
    pts = tg.tensor(np.stack([X.ravel(), Y.ravel()], axis=1))
    total = np.exp(model.log_prob(pts).numpy()).sum() * h * h
    assert abs(total - 1) < 1e-6, total


def test_gaussian_energy_samples_have_its_moments():
    model = GaussianEnergy.from_mean_precision(M2, A2)
    tg.manual_seed(3)
    n = 100000
    x = model.sample(n).numpy()
    assert x.shape == (n, 2) and x.dtype == np.float64
    C = np.linalg.inv(A2)
    assert np.all(np.abs(x.mean(0) - M2) < Z * np.sqrt(np.diag(C) / n))
    assert np.all(np.abs(np.cov(x.T, bias=True) - C) < Z * covariance_standard_error(C, n))


def test_gaussian_energy_refuses_bad_input():
    with pytest.raises(ValueError, match="positive definite"):
        GaussianEnergy.from_mean_precision([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="symmetric"):
        GaussianEnergy.from_mean_precision([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        GaussianEnergy(2)(tg.zeros(3, 3))
    with pytest.raises(ValueError):
        GaussianEnergy(0)


# --------------------------------------------------------------------------- contrastive gradient

def test_contrastive_loss_value_and_detached_negatives():
    E = lambda x: (x * x).sum(axis=1, keepdims=True)  # noqa: E731
    x_pos = tg.tensor([[1.0, 0.0], [0.0, 2.0]])
    x_neg = tg.tensor([[3.0, 0.0]], requires_grad=True)
    loss, stats = contrastive_loss(E, x_pos, x_neg, alpha=0.5, return_energies=True)
    # mean E+ = 2.5, mean E- = 9; alpha (mean E+^2 + mean E-^2) = 0.5 (8.5 + 81)
    assert loss.item() == pytest.approx(2.5 - 9 + 0.5 * (8.5 + 81))
    assert stats["energy_pos"].item() == pytest.approx(2.5)
    assert stats["energy_neg"].item() == pytest.approx(9.0)
    assert loss.grad_fn is None and not loss.requires_grad  # x_neg was detached
    with pytest.raises(ValueError, match="alpha"):
        contrastive_loss(E, x_pos, x_neg, alpha=-1)


def test_contrastive_gradient_with_exact_samples_is_the_log_likelihood_gradient():
    # For the quadratic energy, with u = x - m, the mean log-likelihood of the data
    #   l(m, A) = mean[-1/2 u^T A u] + 1/2 log det A - D/2 log 2 pi
    # has  dl/dm = A (x_bar - m)  and  dl/dA = -1/2 mean[u u^T] + 1/2 A^{-1}
    # (entries of A taken as free; A^{-T} = A^{-1}). The contrastive loss with exact
    # samples x^- ~ N(m, A^{-1}) must give minus these, up to Monte Carlo error in the
    # x^- terms: mean A (x^- - m) has standard error sqrt(A_ii / N) (its covariance is
    # A A^{-1} A / N), and -1/2 mean u^- u^-T has 1/2 covariance_standard_error.
    rng = np.random.default_rng(5)
    x_pos = rng.multivariate_normal([1.0, 0.0], [[1.0, -0.3], [-0.3, 0.6]], size=300)
    m, A = leaf(M2), leaf(A2)
    tg.manual_seed(4)
    N = 200000
    x_neg = GaussianEnergy.from_mean_precision(M2, A2).sample(N)
    loss = contrastive_loss(lambda x: quadratic_energy(x, m, A), tg.tensor(x_pos), x_neg)
    g_m, g_A = tg.grad(loss, [m, A])
    u = x_pos - M2
    dl_dm = A2 @ (x_pos.mean(0) - M2)
    dl_dA = -0.5 * u.T @ u / len(u) + 0.5 * np.linalg.inv(A2)
    C = np.linalg.inv(A2)
    assert np.all(np.abs(g_m.numpy() + dl_dm) < Z * np.sqrt(np.diag(A2) / N))
    assert np.all(np.abs(g_A.numpy() + dl_dA) < Z * 0.5 * covariance_standard_error(C, N))


def test_contrastive_gradient_in_the_module_parameters():
    # The same identity through GaussianEnergy's own parameters (m, the Cholesky
    # factor's entries), against the engine's gradient of the exact negative
    # log-likelihood -mean log p(x) = mean E(x) + log Z. The standard error of the x^-
    # term comes from 20 independent batches of negatives.
    rng = np.random.default_rng(6)
    x_pos = tg.tensor(rng.normal(size=(200, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]]))
    model = GaussianEnergy.from_mean_precision(M2, A2)
    params = list(model.parameters())

    def flat(grads):
        return np.concatenate([g.numpy().ravel() for g in grads])

    nll = -model.log_prob(x_pos).mean()
    expected = flat(tg.grad(nll, params))
    tg.manual_seed(7)
    estimates = np.stack([flat(tg.grad(contrastive_loss(model, x_pos, model.sample(10000)),
                                       params)) for _ in range(20)])
    mean, se = estimates.mean(0), estimates.std(0, ddof=1) / np.sqrt(len(estimates))
    used = np.abs(expected) + se > 0   # the unused upper triangle of `lower`: exactly 0
    assert np.all(np.abs(mean - expected)[used] < Z * se[used]), (mean, expected, se)
    assert np.all(mean[~used] == 0)


def test_contrastive_training_with_exact_samples_reaches_the_maximum_likelihood_estimate():
    # The MLE of a Gaussian is the sample mean and the inverse of the (1/n) sample
    # covariance. Adam on the contrastive loss with fresh exact negatives, then the
    # average of the last T iterates (Polyak-Ruppert): near the optimum the averaged
    # iterate solves the averaged moment equations, so its error is that of moments
    # estimated from all T n negatives: standard errors sqrt(S_ii / (T n)) for the mean
    # and covariance_standard_error(S, T n) for the covariance A^{-1}.
    rng = np.random.default_rng(1)
    data = rng.multivariate_normal([1.0, -0.5], [[1.0, 0.6], [0.6, 0.5]], size=400)
    x_bar = data.mean(0)
    S = (data - x_bar).T @ (data - x_bar) / len(data)
    tg.manual_seed(1)
    model = GaussianEnergy.from_mean_precision(np.zeros(2), np.eye(2))
    opt = Adam(model.parameters(), lr=0.05)
    x_pos, n, T = tg.tensor(data), 1000, 300
    means, precisions = [], []
    for step in range(600):
        if step == 300:
            opt.param_groups[0]["lr"] = 0.01
        loss = contrastive_loss(model, x_pos, model.sample(n))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 600 - T:
            means.append(model.mean.numpy().copy())
            precisions.append(model.precision.numpy().copy())
    m, C = np.mean(means, 0), np.linalg.inv(np.mean(precisions, 0))
    assert np.all(np.abs(m - x_bar) < Z * np.sqrt(np.diag(S) / (T * n))), (m, x_bar)
    assert np.all(np.abs(C - S) < Z * covariance_standard_error(S, T * n)), (C, S)


# --------------------------------------------------------------------------- score matching

def gaussian_score_matching_closed_form(x, m, A):
    """J on a sample: mean[1/2 |A (x - m)|^2] - tr A (the score is -A (x - m), its
    Jacobian -A) = 1/2 tr(A^2 S_m) - tr A with S_m = mean (x - m)(x - m)^T."""
    u = x - m
    S_m = u.T @ u / len(u)
    return 0.5 * np.trace(A @ A @ S_m) - np.trace(A)


@settings(max_examples=10)
@given(gaussians(), st.integers(0, 2 ** 16))
def test_score_matching_loss_equals_its_closed_form_for_a_gaussian(params, seed):
    m, A = params
    x = np.random.default_rng(seed).normal(size=(7, len(m))) * 1.5 + 0.3
    model = GaussianEnergy.from_mean_precision(m, A)
    J = score_matching_loss(model, tg.tensor(x))
    np.testing.assert_allclose(J.item(), gaussian_score_matching_closed_form(x, m, A),
                               rtol=1e-9, atol=1e-9)
    # the score is -A (x - m)
    np.testing.assert_allclose(score(model, tg.tensor(x)).numpy(), -(x - m) @ A, rtol=1e-9,
                               atol=1e-12)


def test_score_matching_is_the_fisher_divergence_minus_a_constant():
    # Hyvarinen's Theorem 1: J = 1/2 E|s_theta - s_data|^2 - 1/2 E|s_data|^2. Data
    # N(mu, S), so s_data = -S^{-1}(x - mu); the model is some other Gaussian. On one
    # sample the two sides differ by the mean of the per-example quantity
    #   d = tr(grad s_theta) + s_theta . s_data = -tr A + (x - m)^T A S^{-1} (x - mu),
    # which has expectation 0 (the integration by parts): |mean d| < Z std(d) / sqrt(n).
    mu, S = np.array([0.3, -0.2]), np.array([[0.8, 0.3], [0.3, 0.5]])
    x = np.random.default_rng(2).multivariate_normal(mu, S, size=50000)
    J = score_matching_loss(GaussianEnergy.from_mean_precision(M2, A2), tg.tensor(x)).item()
    s_theta = -(x - M2) @ A2
    s_data = -(x - mu) @ np.linalg.inv(S)
    fisher = 0.5 * np.mean(np.sum((s_theta - s_data) ** 2, 1))
    constant = 0.5 * np.mean(np.sum(s_data ** 2, 1))
    d = -np.trace(A2) + np.sum(s_theta * s_data, 1)
    assert abs(J - (fisher - constant)) < Z * d.std() / np.sqrt(len(d))
    # and the closed form in expectation: 1/2 tr(A^2 (S + (mu - m)(mu - m)^T)) - tr A
    dm = mu - M2
    population = 0.5 * np.trace(A2 @ A2 @ (S + np.outer(dm, dm))) - np.trace(A2)
    u = x - M2
    per_example = 0.5 * np.sum((u @ A2) ** 2, 1) - np.trace(A2)
    assert abs(J - population) < Z * per_example.std() / np.sqrt(len(x))


def test_score_matching_minimiser_is_the_sample_mean_and_precision():
    # J = 1/2 tr(A^2 S_m) - tr A is stationary in m where A^2 (m - x_bar) = 0 and in A
    # where 1/2 (A S + S A) = I: m = x_bar, A = S^{-1} with S the (1/n) sample
    # covariance. The gradient of the estimator there is 0 (to rounding), elsewhere not;
    # and Adam from N(0, I) finds that point.
    x = np.random.default_rng(3).multivariate_normal([1.0, 2.0], [[0.5, -0.2], [-0.2, 0.3]],
                                                     size=500)
    x_bar = x.mean(0)
    S = (x - x_bar).T @ (x - x_bar) / len(x)
    data = tg.tensor(x)
    best = GaussianEnergy.from_mean_precision(x_bar, np.linalg.inv(S))
    grads = tg.grad(score_matching_loss(best, data), list(best.parameters()))
    assert max(np.abs(g.numpy()).max() for g in grads) < 1e-9
    off = GaussianEnergy.from_mean_precision(x_bar + 0.1, np.linalg.inv(S))
    grads = tg.grad(score_matching_loss(off, data), list(off.parameters()))
    assert max(np.abs(g.numpy()).max() for g in grads) > 0.1
    model = GaussianEnergy.from_mean_precision(np.zeros(2), np.eye(2))
    opt = Adam(model.parameters(), lr=0.05)
    for _ in range(400):
        loss = score_matching_loss(model, data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(model.mean.numpy(), x_bar, atol=1e-3)
    np.testing.assert_allclose(model.precision.numpy(), np.linalg.inv(S), rtol=1e-2, atol=1e-2)


def finite_difference_score_matching(energy, x, h=1e-4):
    """J on a sample from central differences of the energy alone: per example,
    s_d = -(E(x + h e_d) - E(x - h e_d)) / 2h, ds_d/dx_d = -(E(x + h e_d) - 2 E(x) +
    E(x - h e_d)) / h^2 (errors O(h^2) and, in float64, ~1e-16 / h^2)."""
    with tg.no_grad():
        E0 = energy(tg.tensor(x)).numpy()
        total = np.zeros(len(x))
        for d in range(x.shape[1]):
            e = np.zeros(x.shape[1])
            e[d] = h
            Ep, Em = energy(tg.tensor(x + e)).numpy(), energy(tg.tensor(x - e)).numpy()
            total += 0.5 * ((Ep - Em) / (2 * h)) ** 2 - (Ep - 2 * E0 + Em) / h ** 2
    return total.mean()


def test_score_matching_on_a_neural_energy_matches_finite_differences():
    tg.manual_seed(0)
    E = to_float64(MLPEnergy(3, hidden=16, num_layers=3))
    x = np.random.default_rng(4).normal(size=(10, 3))
    J = score_matching_loss(E, tg.tensor(x))
    np.testing.assert_allclose(J.item(), finite_difference_score_matching(E, x), rtol=1e-5)
    # The loss reaches every parameter but the last bias, with x left alone: a constant
    # added to E leaves the score unchanged (it is log Z's part, which score matching
    # never sees).
    xt = tg.tensor(x, requires_grad=True)
    score_matching_loss(E, xt).backward()
    last_bias = E.net[-1].bias
    assert all(p.grad is not None for p in E.parameters() if p is not last_bias)
    assert last_bias.grad is None and xt.grad is None


@pytest.mark.parametrize("variance_reduction", [False, True])
def test_sliced_score_matching_averages_to_the_exact_objective(variance_reduction):
    # E_v[v^T H v] = tr H and E_v[(v^T s)^2] = |s|^2 for v ~ N(0, I): over 200
    # independent calls (each with 5 projections) the mean is within Z standard errors
    # (their spread / sqrt(200)) of the exact estimator on the same data.
    # The energy: a Gaussian's (a large score away from its mean) plus an MLP's (a
    # Hessian that varies with x), so that both terms of (4) and (5) matter.
    tg.manual_seed(0)
    mlp = to_float64(MLPEnergy(3, hidden=16, num_layers=3))
    gauss = GaussianEnergy.from_mean_precision(np.zeros(3), np.diag([2.0, 1.0, 0.5]))
    E = lambda x: gauss(x) + mlp(x)  # noqa: E731
    x = tg.tensor(np.random.default_rng(5).normal(size=(20, 3)) * 2)
    exact = score_matching_loss(E, x).item()
    tg.manual_seed(1)
    estimates = np.array([sliced_score_matching_loss(E, x, 5, variance_reduction).item()
                          for _ in range(200)])
    se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < Z * se, (estimates.mean(), exact, se)
    assert se > 0
    with pytest.raises(ValueError):
        sliced_score_matching_loss(E, x, 0)


def test_variance_reduction_computes_the_squared_score_exactly():
    """A quadratic energy 1/2 x^T A x (A = 2 I in 10-D) far from its mean: the score s =
    -A x is large and the Hessian constant, v^T (grad s) v = -2 |v|^2. The general form
    (4) carries 1/2 (v^T s)^2, whose spread over v is of order |s|^2 = 4 |x|^2 = 1440;
    the variance-reduced form (5) computes 1/2 |s|^2 exactly, leaving only the trace
    term's spread (about 2 sqrt(2 D) = 9). A flag that changed nothing would fail."""
    gauss = GaussianEnergy.from_mean_precision(np.zeros(10), 2 * np.eye(10))
    x = tg.tensor(np.full((1, 10), 6.0))
    tg.manual_seed(2)
    general = [sliced_score_matching_loss(gauss, x, 1).item() for _ in range(100)]
    reduced = [sliced_score_matching_loss(gauss, x, 1, True).item() for _ in range(100)]
    assert np.std(reduced) < np.std(general) / 20, (np.std(reduced), np.std(general))
    # the exact objective, 1/2 |A x|^2 - tr A = 720 - 20, is the mean of both
    se = np.std(reduced, ddof=1) / 10
    assert abs(np.mean(reduced) - 700.0) < Z * se


def test_sliced_score_matching_trains_the_parameters():
    model = GaussianEnergy.from_mean_precision(M2, A2)
    sliced_score_matching_loss(model, tg.tensor(np.ones((4, 2))), 3).backward()
    assert all(p.grad is not None for p in model.parameters())


def dsm_population(m, A, mu, S, sigma):
    """The denoising objective in closed form for data N(mu, S) and the score
    -A (x~ - m): with u = x - m, x~ = x + sigma eps, the residual
    -A u - (sigma A - I / sigma) eps has E|.|^2 = tr(A^2 (S + dd^T)) +
    tr((sigma A - I / sigma)^2), d = mu - m."""
    d = mu - m
    R = sigma * A - np.eye(len(m)) / sigma
    return 0.5 * (np.trace(A @ A @ (S + np.outer(d, d))) + np.trace(R @ R))


def test_denoising_score_matching_estimates_its_closed_form():
    mu, S, sigma = np.array([0.3, -0.2]), np.array([[0.8, 0.3], [0.3, 0.5]]), 0.4
    rng = np.random.default_rng(6)
    x = rng.multivariate_normal(mu, S, size=40000)
    eps = rng.normal(size=x.shape)
    model = GaussianEnergy.from_mean_precision(M2, A2)
    loss = denoising_score_matching_loss(model, tg.tensor(x), sigma, noise=tg.tensor(eps))
    r = -(x + sigma * eps - M2) @ A2 + eps / sigma   # s(x~) + (x~ - x) / sigma^2
    per_example = 0.5 * np.sum(r ** 2, 1)
    np.testing.assert_allclose(loss.item(), per_example.mean(), rtol=1e-12)
    population = dsm_population(M2, A2, mu, S, sigma)
    assert abs(loss.item() - population) < Z * per_example.std() / np.sqrt(len(x))
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching_loss(model, tg.tensor(x), 0.0)


def test_denoising_score_matching_minimiser_is_the_score_of_the_blurred_data():
    # The gradient of the denoising objective in (m, A) vanishes, in expectation, at
    # m = mu, A = (S + sigma^2 I)^{-1} (the score of N(mu, S + sigma^2 I)): over 40
    # independent batches its mean is within Z standard errors of 0. At the score of
    # the data itself, A = S^{-1}, it is many standard errors away.
    mu, S, sigma = np.array([0.3, -0.2]), np.array([[0.8, 0.3], [0.3, 0.5]]), 0.5
    rng = np.random.default_rng(7)
    tg.manual_seed(8)

    def gradient_stats(A_at):
        m, A = leaf(mu), leaf(A_at)
        grads = []
        for _ in range(40):
            x = tg.tensor(rng.multivariate_normal(mu, S, size=5000))
            loss = denoising_score_matching_loss(lambda x: quadratic_energy(x, m, A), x, sigma)
            grads.append(np.concatenate([g.numpy().ravel() for g in tg.grad(loss, [m, A])]))
        grads = np.array(grads)
        return grads.mean(0), grads.std(0, ddof=1) / np.sqrt(len(grads))

    mean, se = gradient_stats(np.linalg.inv(S + sigma ** 2 * np.eye(2)))
    assert np.all(np.abs(mean) < Z * se), (mean, se)
    mean, se = gradient_stats(np.linalg.inv(S))
    assert np.max(np.abs(mean) / se) > 5 * Z


# --------------------------------------------------------------------------- the replay buffer

def test_replay_buffer_restarts_the_fraction_reinit_prob():
    # Fill every slot with 10 (outside [low, high]); then each sampled point is fresh
    # noise with probability rho, independently: the count of fresh points among N is
    # Binomial(N, rho), standard error sqrt(N rho (1 - rho)).
    rho, N = 0.05, 20000
    buf = ReplayBuffer(1000, (3,), reinit_prob=rho, low=-2, high=2, seed=0)
    buf.push(np.full((1000, 3), 10.0))
    fresh = 0
    for _ in range(N // 100):
        x = buf.sample(100).numpy()
        restarted = np.all(x != 10, axis=1)
        assert np.all(restarted | np.all(x == 10, axis=1))
        assert np.all((x[restarted] >= -2) & (x[restarted] <= 2))
        fresh += restarted.sum()
    assert abs(fresh - N * rho) < Z * math.sqrt(N * rho * (1 - rho)), fresh


def test_replay_buffer_stores_what_is_pushed():
    buf = ReplayBuffer(100, (2,), reinit_prob=0.0, seed=1)
    assert np.all((buf.buffer >= -1) & (buf.buffer <= 1))   # starts as uniform noise
    x = buf.sample(10)
    slots = buf.pending.copy()
    buf.push(x + 100)                        # back into the slots they came from
    np.testing.assert_allclose(buf.buffer[slots], x.numpy() + 100)
    others = np.setdiff1d(np.arange(100), slots)
    assert np.all(np.abs(buf.buffer[others]) <= 1)
    # with every slot sampled, the pushed values come back (in some order)
    small = ReplayBuffer(8, (2,), reinit_prob=0.0, seed=2)
    values = np.arange(16.0).reshape(8, 2)
    small.sample(8)
    small.push(values)
    back = small.sample(8).numpy()
    np.testing.assert_array_equal(back[np.argsort(back[:, 0])], values)


def test_replay_buffer_with_no_restarts_and_capacity_n_is_persistent_chains():
    # PCD: every update continues every chain. A "transition" x -> x + 1 applied five
    # times through the buffer adds 5 to every chain's starting point.
    n = 16
    buf = ReplayBuffer(n, (1, 2, 2), reinit_prob=0.0, seed=3)
    start = buf.buffer.copy()
    for _ in range(5):
        buf.push(buf.sample(n) + 1)
    key = lambda a: a.reshape(n, -1)[np.lexsort(a.reshape(n, -1).T)]  # noqa: E731
    np.testing.assert_allclose(key(buf.buffer), key(start + 5), rtol=1e-6)


def test_replay_buffer_state_dict_round_trip(tmp_path):
    buf = ReplayBuffer(50, (2,), reinit_prob=0.3, seed=4)
    buf.push(buf.sample(20) * 3)
    buf.sample(5)                                  # a pending sample is saved too
    tg.save(buf.state_dict(), tmp_path / "buf.npz")
    other = ReplayBuffer(50, (2,), reinit_prob=0.3, seed=99)
    other.load_state_dict(tg.load(tmp_path / "buf.npz"))
    np.testing.assert_array_equal(other.buffer, buf.buffer)
    np.testing.assert_array_equal(other.pending, buf.pending)
    for _ in range(3):                             # the same future
        np.testing.assert_array_equal(other.sample(7).numpy(), buf.sample(7).numpy())
    with pytest.raises(ValueError, match="shape"):
        ReplayBuffer(10, (2,)).load_state_dict(buf.state_dict())


def test_replay_buffer_refuses_bad_use():
    with pytest.raises(ValueError, match="reinit_prob"):
        ReplayBuffer(10, (2,), reinit_prob=1.5)
    with pytest.raises(ValueError):
        ReplayBuffer(10, (2,), low=1, high=-1)
    buf = ReplayBuffer(10, (2,), seed=0)
    with pytest.raises(ValueError, match="capacity"):
        buf.sample(11)
    buf.sample(4)
    with pytest.raises(ValueError, match="took 4"):
        buf.push(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        buf.push(np.zeros((4, 3)))


# --------------------------------------------------------------------------- the networks

def test_conv_energy_is_the_benchmark_network():
    from benchmarks.workloads.ebm import _energy
    from tinygen import nn
    E = ConvEnergy()
    reference = _energy(nn)
    assert [p.shape for p in E.parameters()] == [p.shape for p in reference.parameters()]
    assert sum(p.size for p in E.parameters()) == 101889  # 320 + 32832 + 65600 + 3137
    assert E(tg.rand(3, 1, 28, 28) * 2 - 1).shape == (3,)
    assert ConvEnergy(channels=3, width=8)(tg.zeros(2, 3, 28, 28)).shape == (2,)


def test_mlp_energy_shape():
    E = MLPEnergy(2, hidden=16, num_layers=3)
    assert E(tg.zeros(5, 2)).shape == (5,)
    assert len([m for m in E.net if isinstance(m, tg.nn.Linear)]) == 3
    assert MLPEnergy(4, hidden=8, num_layers=1)(tg.zeros(2, 4)).shape == (2,)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        E(tg.zeros(5, 3))


# --------------------------------------------------------------------------- learning

def test_contrastive_divergence_with_a_replay_buffer_learns_8gaussians():
    # An MLP energy trained by maximum likelihood (contrastive_loss) with 5 Langevin
    # steps per update from a replay buffer of 4096 chains (each chain thus continues
    # every 32 updates: PCD with restarts). After 1500 updates (about 10 s) the energy
    # has a well on every mode: lower there than at the origin and than halfway to the
    # neighbouring modes (along the circle and along the chord). Margins seen with
    # seeds 0 to 5: 0.7 to 1.8 (between modes), 29 to 35 (origin).
    seed = 0
    tg.manual_seed(seed)
    data = toy("8gaussians", 4096, seed=seed)
    E = MLPEnergy(2, hidden=128, num_layers=3)
    opt = Adam(E.parameters(), lr=5e-3)
    buf = ReplayBuffer(4096, (2,), reinit_prob=0.05, low=-4, high=4, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(1500):
        x_pos = tg.tensor(data[rng.integers(0, len(data), 128)])
        x_neg = langevin(E, buf.sample(128), 5, 0.02, clip=(-5, 5))
        buf.push(x_neg)
        loss = contrastive_loss(E, x_pos, x_neg, alpha=0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()

    centers, std = toy_modes("8gaussians")
    angles = (np.arange(8) + 0.5) * np.pi / 4           # arc midpoint k: modes k, k + 1
    arcs = 2 * math.sqrt(2) * np.stack([np.cos(angles), np.sin(angles)], 1)
    chords = (centers + np.roll(centers, -1, axis=0)) / 2
    with tg.no_grad():
        e_mode, e_arc, e_chord = (E(tg.tensor(p.astype(np.float32))).numpy()
                                  for p in (centers, arcs, chords))
        e_origin = E(tg.zeros(1, 2)).item()
    between = np.minimum.reduce([e_arc, np.roll(e_arc, 1), e_chord, np.roll(e_chord, 1)])
    assert np.all(e_mode < between), (e_mode, between)
    assert np.all(e_mode < e_origin)
    # The chains (the model's samples) sit on the modes, all eight of them: >= 90%
    # within 3 std of a mode (uniform noise on [-4, 4]^2: 44%; seen: 96-97%), and every
    # mode holds at least half its share of those.
    d = np.linalg.norm(buf.buffer[:, None] - centers[None], axis=-1)
    near = d.min(axis=1) < 3 * std
    assert near.mean() > 0.9
    counts = np.bincount(d.argmin(axis=1)[near], minlength=8)
    assert counts.min() > near.sum() / 16, counts
