"""Normal, Bernoulli, Categorical and kl_divergence, against the math.

- log_prob, entropy and KL against the formulas written out by hand in NumPy float64,
  on parameters and values drawn by hypothesis;
- KL and entropy against Monte Carlo estimates, and the discrete ones against exact sums
  over the support;
- the reparameterisation gradient of E[(z - c)^2] against 2 (mu - c) and 2 sigma;
- gradcheck / gradgradcheck of everything differentiable;
- sampling: moments and frequencies, reproducibility, no gradient, shapes, devices, dtypes;
- stability at large logits, and the errors.

Monte Carlo comparisons. An average of n i.i.d. terms t_i estimates E[t] with standard
error SE = std(t) / sqrt(n) (std estimated from the same terms), and by the central limit
theorem |mean - E[t]| > Z SE has probability 2 (1 - Phi(Z)). With Z = 5 that is 6e-7 per
comparison, so a correct implementation fails none of the few dozen made here; the seeds
are fixed, so the outcome is also deterministic. Each such test also asserts that Z SE is
small compared with the effects it must detect (``max_bound``), so that a wrong formula
(a missing 1/2, a swapped argument) cannot hide inside the tolerance.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from conftest import DEVICES
from opcheck import arrays, broadcast_pair, floats
from tinygen.distributions import Bernoulli, Categorical, Independent, Normal, kl_divergence

Z = 5.0
N_MC = 200_000


def t64(a, device="cpu", requires_grad=False):
    return tg.tensor(np.asarray(a, dtype=np.float64), device=device,
                     requires_grad=requires_grad)


def assert_mc_mean(terms, expected, max_bound, what):
    """terms: (n, ...) i.i.d. draws of t; their mean must be within Z SE of E[t] =
    ``expected`` (...), and Z SE must be below ``max_bound`` (the test's power)."""
    terms = np.asarray(terms, dtype=np.float64)
    n = terms.shape[0]
    mean = terms.mean(axis=0)
    se = terms.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(Z * se < max_bound), f"{what}: too few samples, Z SE = {Z * se}"
    err = np.abs(mean - expected)
    assert np.all(err <= Z * se), (f"{what}: Monte Carlo {mean} vs closed form {expected}; "
                                   f"|error| {err} > {Z} SE = {Z * se}")


def p_sigmoid(l):
    """p = 1 / (1 + e^-l) and 1 - p = 1 / (1 + e^l), each without cancellation."""
    return 1 / (1 + np.exp(-l)), 1 / (1 + np.exp(l))


# ======================================================================= log_prob by hand

@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_normal_log_prob_matches_the_density(device, data):
    s_mu, s_sigma, s_x = data.draw(broadcast_pair(3))
    mu = data.draw(arrays(s_mu, floats(-5, 5)), label="mu")
    sigma = data.draw(arrays(s_sigma, floats(0.05, 5)), label="sigma")
    x = data.draw(arrays(s_x, floats(-10, 10)), label="x")
    density = 1 / (sigma * np.sqrt(2 * np.pi)) * np.exp(-(x - mu) ** 2 / (2 * sigma ** 2))
    log_density = -(x - mu) ** 2 / (2 * sigma ** 2) - np.log(sigma * np.sqrt(2 * np.pi))

    out = Normal(t64(mu, device), t64(sigma, device)).log_prob(t64(x, device))
    assert out.dtype == np.float64 and out.shape == log_density.shape
    assert out.device == tg.tensor(0.0, device=device).device
    np.testing.assert_allclose(out.numpy(), log_density, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.exp(out.numpy()), density, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("param", ["logits", "probs"])
@given(data=st.data())
def test_bernoulli_log_prob_matches_the_mass_function(device, param, data):
    s_par, s_x = data.draw(broadcast_pair(2))
    if param == "logits":
        given = data.draw(arrays(s_par, floats(-30, 30)), label="logits")
        p, one_minus_p = p_sigmoid(given)
    else:
        given = p = data.draw(arrays(s_par, floats(1e-3, 1 - 1e-3)), label="probs")
        one_minus_p = 1 - p
    # x in {0, 1}, and grey levels in [0, 1] (the "Bernoulli likelihood" of intensities)
    x = data.draw(arrays(s_x, st.sampled_from([0.0, 1.0]) | floats(0, 1)), label="x")
    mass = p ** x * one_minus_p ** (1 - x)
    log_mass = x * np.log(p) + (1 - x) * np.log(one_minus_p)

    d = Bernoulli(**{param: t64(given, device)})
    out = d.log_prob(t64(x, device))
    assert out.shape == log_mass.shape and out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), log_mass, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.exp(out.numpy()), mass, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(d.probs.numpy(), np.broadcast_to(p, d.batch_shape), rtol=1e-12)


@st.composite
def categorical_case(draw):
    """(batch shape, K, parameter (B..., K), value of shape (n,) + broadcastable batch)."""
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    K = draw(st.integers(1, 5))
    lead = draw(st.sampled_from([(), (2,)]))
    value_batch = tuple(draw(st.sampled_from([1, n])) for n in batch)
    value = draw(hnp.arrays(np.int64, lead + value_batch, elements=st.integers(0, K - 1)))
    return batch, K, value


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("param", ["logits", "probs"])
@given(case=categorical_case(), data=st.data())
def test_categorical_log_prob_matches_the_mass_function(device, param, case, data):
    batch, K, value = case
    if param == "logits":
        a = data.draw(arrays(batch + (K,), floats(-5, 5)), label="logits")
        pi = np.exp(a) / np.exp(a).sum(axis=-1, keepdims=True)
    else:
        a = data.draw(arrays(batch + (K,), floats(0.01, 3)), label="probs (unnormalised)")
        pi = a / a.sum(axis=-1, keepdims=True)
    shape = np.broadcast_shapes(value.shape, batch)
    pi_b = np.broadcast_to(pi, shape + (K,))
    v_b = np.broadcast_to(value, shape)
    expected = np.log(np.take_along_axis(pi_b, v_b[..., None], axis=-1)[..., 0])

    d = Categorical(**{param: t64(a, device)})
    assert d.batch_shape == batch
    out = d.log_prob(tg.tensor(value, device=device))
    assert out.shape == shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.probs.numpy(), pi, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d.logits.numpy(), np.log(pi), rtol=1e-12, atol=1e-12)


# ==================================================================== entropy and KL by hand

def _normal_params(data, shape, label):
    mu = data.draw(arrays(shape, floats(-3, 3)), label=f"mu_{label}")
    sigma = data.draw(arrays(shape, floats(0.1, 3)), label=f"sigma_{label}")
    return mu, sigma


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_normal_entropy_and_kl_match_the_formulas(device, data):
    s1, s2 = data.draw(broadcast_pair(2))
    mu1, s_1 = _normal_params(data, s1, "1")
    mu2, s_2 = _normal_params(data, s2, "2")
    p = Normal(t64(mu1, device), t64(s_1, device))
    q = Normal(t64(mu2, device), t64(s_2, device))

    np.testing.assert_allclose(p.entropy().numpy(), 0.5 * np.log(2 * np.pi * np.e * s_1 ** 2),
                               rtol=1e-12, atol=1e-12)
    kl = np.log(s_2 / s_1) + (s_1 ** 2 + (mu1 - mu2) ** 2) / (2 * s_2 ** 2) - 0.5
    out = kl_divergence(p, q).numpy()
    np.testing.assert_allclose(out, kl, rtol=1e-10, atol=1e-12)
    assert np.all(out >= -1e-12), f"KL must be >= 0, got {out.min()}"
    np.testing.assert_allclose(kl_divergence(p, p).numpy(), 0.0, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_bernoulli_entropy_and_kl_match_the_formulas(device, data):
    s1, s2 = data.draw(broadcast_pair(2))
    l1 = data.draw(arrays(s1, floats(-30, 30)), label="l_p")
    l2 = data.draw(arrays(s2, floats(-30, 30)), label="l_q")
    p1, m1 = p_sigmoid(l1)
    p2, m2 = p_sigmoid(l2)
    p, q = Bernoulli(logits=t64(l1, device)), Bernoulli(logits=t64(l2, device))

    entropy = -p1 * np.log(p1) - m1 * np.log(m1)
    np.testing.assert_allclose(p.entropy().numpy(), entropy, rtol=1e-10, atol=1e-12)
    kl = p1 * np.log(p1 / p2) + m1 * np.log(m1 / m2)
    out = kl_divergence(p, q).numpy()
    np.testing.assert_allclose(out, kl, rtol=1e-9, atol=1e-10)
    assert np.all(out >= -1e-12), f"KL must be >= 0, got {out.min()}"
    np.testing.assert_allclose(kl_divergence(p, p).numpy(), 0.0, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_categorical_entropy_and_kl_match_the_formulas(device, data):
    batch = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    K = data.draw(st.integers(1, 5))
    a = data.draw(arrays(batch + (K,), floats(-5, 5)), label="logits p")
    w = data.draw(arrays(batch + (K,), floats(0.01, 3)), label="probs q")
    pi = np.exp(a) / np.exp(a).sum(axis=-1, keepdims=True)
    rho = w / w.sum(axis=-1, keepdims=True)
    p, q = Categorical(logits=t64(a, device)), Categorical(probs=t64(w, device))

    np.testing.assert_allclose(p.entropy().numpy(), -(pi * np.log(pi)).sum(axis=-1),
                               rtol=1e-10, atol=1e-12)
    out = kl_divergence(p, q).numpy()
    np.testing.assert_allclose(out, (pi * np.log(pi / rho)).sum(axis=-1), rtol=1e-9,
                               atol=1e-12)
    assert out.shape == batch
    assert np.all(out >= -1e-12), f"KL must be >= 0, got {out.min()}"
    np.testing.assert_allclose(kl_divergence(p, p).numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(kl_divergence(q, q).numpy(), 0.0, atol=1e-12)


def _support_sum(d, f, support):
    """sum over x in the support of P(x) f(x), with P(x) = exp(d.log_prob(x))."""
    return sum(np.exp(d.log_prob(x).numpy()) * f(x) for x in support)


@pytest.mark.parametrize("device", DEVICES)
def test_discrete_entropy_and_kl_equal_exact_sums_over_the_support(device):
    # Independent of the closed forms: E_p[.] summed exactly through log_prob.
    lp = tg.randn(3, dtype=np.float64, device=device) * 3
    lq = tg.randn(3, dtype=np.float64, device=device) * 3
    for p, q, support in [
        (Bernoulli(logits=lp), Bernoulli(logits=lq),
         [t64([v] * 3, device) for v in (0.0, 1.0)]),
        (Categorical(logits=tg.randn(2, 4, dtype=np.float64, device=device) * 2),
         Categorical(probs=tg.rand(2, 4, dtype=np.float64, device=device) + 0.1),
         [tg.tensor([k, k], device=device) for k in range(4)]),
    ]:
        entropy = _support_sum(p, lambda x: -p.log_prob(x).numpy(), support)
        kl = _support_sum(p, lambda x: (p.log_prob(x) - q.log_prob(x)).numpy(), support)
        np.testing.assert_allclose(p.entropy().numpy(), entropy, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(kl_divergence(p, q).numpy(), kl, rtol=1e-10, atol=1e-14)
        total = _support_sum(p, lambda x: 1.0, support)
        np.testing.assert_allclose(total, 1.0, rtol=1e-12)  # log_prob is normalised


# ======================================================================= Monte Carlo

def _pairs(device):
    """(name, p, q): a batch of different parameter pairs for each family, float64."""
    return [
        ("normal", Normal(t64([0.0, 1.0, -2.0], device), t64([1.0, 0.5, 2.0], device)),
         Normal(t64([0.5, 0.0, -1.0], device), t64([2.0, 1.0, 1.5], device))),
        ("bernoulli", Bernoulli(logits=t64([-1.0, 0.5, 2.0], device)),
         Bernoulli(probs=t64([0.5, 0.2, 0.6], device))),
        ("categorical", Categorical(logits=t64([[0.0, 1.0, -1.0, 0.5],
                                                [2.0, 0.0, 0.0, -1.0]], device)),
         Categorical(probs=t64([[0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]], device))),
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_kl_matches_monte_carlo(device):
    # KL(p || q) = E_{x ~ p}[log p(x) - log q(x)]
    for name, p, q in _pairs(device):
        x = p.sample((N_MC,))
        terms = (p.log_prob(x) - q.log_prob(x)).numpy()
        assert_mc_mean(terms, kl_divergence(p, q).numpy(), max_bound=0.03, what=f"KL {name}")


@pytest.mark.parametrize("device", DEVICES)
def test_entropy_matches_monte_carlo(device):
    # H[p] = E_{x ~ p}[-log p(x)]
    for name, p, _ in _pairs(device):
        terms = -p.log_prob(p.sample((N_MC,))).numpy()
        assert_mc_mean(terms, p.entropy().numpy(), max_bound=0.03, what=f"entropy {name}")


# ======================================================================= reparameterisation

@pytest.mark.parametrize("device", DEVICES)
def test_rsample_gradient_matches_the_analytic_gradient(device):
    # f(z) = (z - c)^2 with z ~ N(mu, sigma^2): E[f] = (mu - c)^2 + sigma^2, so
    # dE/dmu = 2 (mu - c) and dE/dsigma = 2 sigma. Backward through z = mu + sigma eps
    # averages the per-sample gradients 2 (z - c) and 2 (z - c) eps.
    mu = t64([0.5, -1.0, 2.0], device, requires_grad=True)
    sigma = t64([1.0, 0.3, 2.0], device, requires_grad=True)
    c = t64([0.0, -0.8, 1.0], device)
    z = Normal(mu, sigma).rsample((N_MC,))
    assert z.requires_grad and z.shape == (N_MC, 3)
    ((z - c) ** 2).mean(axis=0).sum().backward()

    z_, mu_, sigma_, c_ = z.numpy(), mu.numpy(), sigma.numpy(), c.numpy()
    eps = (z_ - mu_) / sigma_
    g_mu, g_sigma = 2 * (z_ - c_), 2 * (z_ - c_) * eps  # per sample, for the SE only
    np.testing.assert_allclose(mu.grad.numpy(), g_mu.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(sigma.grad.numpy(), g_sigma.mean(axis=0), rtol=1e-10)
    # power: an error of 5% of the true gradient would be detected
    assert_mc_mean(g_mu, 2 * (mu_ - c_), max_bound=0.05 * np.abs(2 * (mu_ - c_)),
                   what="d/dmu")
    assert_mc_mean(g_sigma, 2 * sigma_, max_bound=0.05 * 2 * sigma_, what="d/dsigma")


@pytest.mark.parametrize("device", DEVICES)
def test_rsample_is_loc_plus_scale_times_standard_normal_noise(device):
    loc, scale = t64([1.0, -2.0], device), t64([0.5, 3.0], device)
    tg.manual_seed(3)
    z = Normal(loc, scale).rsample((4,))
    tg.manual_seed(3)
    eps = tg.randn(4, 2, dtype=np.float64, device=device)
    np.testing.assert_allclose(z.numpy(), loc.numpy() + scale.numpy() * eps.numpy(),
                               rtol=1e-15)


# ======================================================================= gradcheck

def _x64(*shape, device, lo=None, hi=None):
    if lo is None:
        x = tg.randn(*shape, dtype=np.float64, device=device)
    else:
        x = tg.rand(*shape, dtype=np.float64, device=device) * (hi - lo) + lo
    return tg.Tensor(x.data, requires_grad=True)


@pytest.mark.parametrize("device", DEVICES)
def test_normal_gradients(device):
    loc, scale = _x64(3, 1, device=device), _x64(1, 4, device=device, lo=0.3, hi=2.0)
    x = _x64(2, 3, 4, device=device)
    loc2, scale2 = _x64(3, 4, device=device), _x64(4, device=device, lo=0.3, hi=2.0)
    checks = [
        (lambda m, s, v: Normal(m, s).log_prob(v), [loc, scale, x]),
        (lambda s: Normal(0.0, s).entropy(), [scale]),
        (lambda m1, s1, m2, s2: kl_divergence(Normal(m1, s1), Normal(m2, s2)),
         [loc, scale, loc2, scale2]),
    ]
    for fn, inputs in checks:
        assert tg.gradcheck(fn, inputs)
        assert tg.gradgradcheck(fn, inputs)

    def rsample(m, s):  # reseeded, so each evaluation draws the same eps
        tg.manual_seed(11)
        return Normal(m, s).rsample((2,))
    assert tg.gradcheck(rsample, [loc, scale])
    assert tg.gradgradcheck(rsample, [loc, scale])


@pytest.mark.parametrize("device", DEVICES)
def test_bernoulli_gradients(device):
    l, l2 = _x64(2, 3, device=device), _x64(3, device=device)
    p = _x64(2, 3, device=device, lo=0.05, hi=0.95)
    x = t64([[0.0, 1.0, 1.0], [1.0, 0.0, 0.3]], device)
    checks = [
        (lambda l: Bernoulli(logits=l).log_prob(x), [l]),
        (lambda p: Bernoulli(probs=p).log_prob(x), [p]),
        (lambda l: Bernoulli(logits=l).entropy(), [l]),
        (lambda p: Bernoulli(probs=p).entropy(), [p]),
        (lambda a, b: kl_divergence(Bernoulli(logits=a), Bernoulli(logits=b)), [l, l2]),
        (lambda p, b: kl_divergence(Bernoulli(probs=p), Bernoulli(logits=b)), [p, l2]),
    ]
    for fn, inputs in checks:
        assert tg.gradcheck(fn, inputs)
        assert tg.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("device", DEVICES)
def test_categorical_gradients(device):
    a, b = _x64(2, 4, device=device), _x64(4, device=device)
    w = _x64(2, 4, device=device, lo=0.1, hi=2.0)
    value = tg.tensor([[3, 0], [1, 1], [2, 3]], device=device)  # (3, 2): samples x batch
    checks = [
        (lambda a: Categorical(logits=a).log_prob(value), [a]),
        (lambda w: Categorical(probs=w).log_prob(value), [w]),
        (lambda a: Categorical(logits=a).entropy(), [a]),
        (lambda w: Categorical(probs=w).entropy(), [w]),
        (lambda a, b: kl_divergence(Categorical(logits=a), Categorical(logits=b)), [a, b]),
        (lambda w, b: kl_divergence(Categorical(probs=w), Categorical(logits=b)), [w, b]),
    ]
    for fn, inputs in checks:
        assert tg.gradcheck(fn, inputs)
        assert tg.gradgradcheck(fn, inputs)


# ======================================================================= sampling

@pytest.mark.parametrize("device", DEVICES)
def test_normal_sample_moments(device):
    mu, sigma = np.array([0.0, 3.0, -1.0]), np.array([1.0, 0.5, 4.0])
    d = Normal(tg.tensor(mu.astype(np.float32), device=device),
               tg.tensor(sigma.astype(np.float32), device=device))
    x = d.sample((N_MC,)).numpy().astype(np.float64)
    # power: errors of 2% of sigma in the mean and of sigma^2 in the variance show
    assert_mc_mean(x, mu, max_bound=0.02 * sigma, what="Normal mean")
    # the variance: E[(x - mu)^2] = sigma^2
    assert_mc_mean((x - mu) ** 2, sigma ** 2, max_bound=0.02 * sigma ** 2,
                   what="Normal variance")
    np.testing.assert_allclose(d.mean.numpy(), mu)
    np.testing.assert_allclose(d.stddev.numpy(), sigma)
    np.testing.assert_allclose(d.variance.numpy(), sigma ** 2, rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_bernoulli_sample_frequencies(device):
    p = np.array([0.0, 0.1, 0.5, 0.97, 1.0])
    for d in [Bernoulli(probs=tg.tensor(p, device=device)),
              Bernoulli(logits=tg.tensor(np.log(p[1:4] / (1 - p[1:4])), device=device))]:
        x = d.sample((N_MC,)).numpy()
        assert set(np.unique(x)) <= {0.0, 1.0}
        expected = d.probs.numpy()
        if d.batch_shape == (5,):
            assert x[:, 0].max() == 0 and x[:, -1].min() == 1  # p = 0 and p = 1 are exact
            x, expected = x[:, 1:-1], expected[1:-1]
        assert_mc_mean(x, expected, max_bound=0.01, what="Bernoulli frequency")
        np.testing.assert_allclose(d.mean.numpy(), d.probs.numpy())
        np.testing.assert_allclose(d.variance.numpy(), expected_var := d.probs.numpy()
                                   * (1 - d.probs.numpy()))
        assert expected_var.shape == d.batch_shape


@pytest.mark.parametrize("device", DEVICES)
def test_categorical_sample_frequencies(device):
    # Zero-probability classes first, in the middle and last: the inverse CDF must skip
    # them exactly (an off-by-one would hand their neighbours' mass to them).
    pi = np.array([[0.1, 0.2, 0.3, 0.4],
                   [0.0, 0.3, 0.7, 0.0],
                   [0.5, 0.0, 0.0, 0.5]])
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)  # log 0 = -inf
    for d in [Categorical(probs=tg.tensor(pi, device=device)),
              Categorical(logits=tg.tensor(log_pi, device=device))]:
        x = d.sample((N_MC,)).numpy()
        assert x.dtype == np.int64 and x.shape == (N_MC, 3)
        freq = np.stack([(x == k) for k in range(4)], axis=-1).astype(np.float64)
        assert np.all(freq.sum(axis=0)[pi == 0] == 0), "a zero-probability class was drawn"
        positive = pi > 0
        assert_mc_mean(freq[:, positive], pi[positive], max_bound=0.01,
                       what="Categorical frequency")


@pytest.mark.parametrize("device", DEVICES)
def test_samples_are_reproducible_under_manual_seed(device):
    dists = [Normal(tg.zeros(3, device=device), 1.0),
             Bernoulli(probs=tg.full((3,), 0.5, device=device)),
             Categorical(logits=tg.zeros(3, 5, device=device))]
    for d in dists:
        draws = []
        for seed in (5, 5, 6):
            tg.manual_seed(seed)
            draws.append(d.sample((50,)).numpy())
        np.testing.assert_array_equal(draws[0], draws[1])
        assert not np.array_equal(draws[0], draws[2])
    for seed in (5, 5):
        tg.manual_seed(seed)
        draws.append(dists[0].rsample((50,)).numpy())
    np.testing.assert_array_equal(draws[-1], draws[-2])


@pytest.mark.parametrize("device", DEVICES)
def test_sample_carries_no_gradient_and_rsample_does(device):
    loc = t64([0.0, 1.0], device, requires_grad=True)
    scale = t64([1.0, 2.0], device, requires_grad=True)
    logits = t64([[0.0, 1.0, 2.0]], device, requires_grad=True)
    for s in [Normal(loc, scale).sample((4,)), Bernoulli(logits=loc).sample((4,)),
              Bernoulli(probs=tg.sigmoid(loc)).sample(), Categorical(logits=logits).sample()]:
        assert not s.requires_grad and s.grad_fn is None
    z = Normal(loc, scale).rsample((4,))
    assert z.requires_grad and z.grad_fn is not None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sample_shape, expected", [((), ()), (5, (5,)), ((5,), (5,)),
                                                    ((2, 3), (2, 3)), ((0,), (0,))])
def test_shapes_follow_sample_shape_plus_batch_shape(device, sample_shape, expected):
    dists = [
        Normal(tg.zeros(4, 1, device=device), tg.ones(3, device=device)),  # B = (4, 3)
        Bernoulli(logits=tg.zeros(4, 3, device=device)),
        Categorical(logits=tg.zeros(4, 3, 6, device=device)),
    ]
    for d in dists:
        assert d.batch_shape == (4, 3) and d.event_shape == ()
        draws = [d.sample(sample_shape)]
        if d.has_rsample:
            draws.append(d.rsample(sample_shape))
        for x in draws:
            assert x.shape == expected + (4, 3), type(d).__name__
            assert x.device == tg.zeros(1, device=device).device
            assert d.log_prob(x).shape == expected + (4, 3)
        assert d.entropy().shape == (4, 3)
        assert kl_divergence(d, d).shape == (4, 3)


def test_kl_broadcasts_batch_shapes():
    p = Normal(tg.zeros(2, 1), 1.0)
    q = Normal(tg.zeros(3), tg.full((3,), 2.0))
    assert kl_divergence(p, q).shape == (2, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_dtypes(device):
    # Python numbers and lists become float32 ...
    for d in [Normal(0.0, 1.0), Bernoulli(probs=0.3), Bernoulli(logits=[1.0, 2.0]),
              Categorical(probs=[0.2, 0.8])]:
        assert d.log_prob(d.sample((2,))).dtype == np.float32
        assert d.entropy().dtype == np.float32
    assert Normal(0, 1).rsample().dtype == np.float32  # ints too
    assert Normal([0.0, 1.0], np.float64(2.0)).loc.dtype == np.float64  # a NumPy float64
    # ... and a float64 parameter keeps float64, numbers following it
    x64 = t64([0.0, 1.0], device)
    for d in [Normal(x64, 1.0), Normal(0.5, x64 + 1), Bernoulli(logits=x64),
              Bernoulli(probs=x64 * 0.5), Categorical(logits=x64)]:
        x = d.sample((3,))
        if d.has_rsample:
            assert d.rsample((3,)).dtype == np.float64
            assert x.dtype == np.float64
        assert d.log_prob(x).dtype == np.float64
        assert d.entropy().dtype == np.float64
        assert kl_divergence(d, d).dtype == np.float64
    # a float32 and a float64 tensor: the wider wins, and gradients still reach both
    loc = tg.tensor([0.0, 1.0], device=device, requires_grad=True)       # float32
    scale = t64([1.0, 2.0], device, requires_grad=True)
    Normal(loc, scale).log_prob(1.0).sum().backward()
    assert loc.grad.dtype == np.float32 and scale.grad.dtype == np.float64


# ======================================================================= stability

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_is_stable_for_large_logits(device, dtype):
    # sigmoid(100) rounds to 1, so log(1 - sigmoid(100)) would be -inf; from the logits
    # log P(x) = x l - softplus(l) is exact: log P(1 | l=100) = -log(1 + e^-100) ~ -4e-44.
    l = tg.tensor(np.array([100.0, 100.0, -100.0, -100.0], dtype=dtype), device=device,
                  requires_grad=True)
    x = tg.tensor(np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype), device=device)
    d = Bernoulli(logits=l)
    lp = d.log_prob(x)
    np.testing.assert_allclose(lp.numpy(), [0.0, -100.0, 0.0, -100.0], atol=1e-30)
    lp.sum().backward()
    # d/dl [x l - softplus(l)] = x - sigmoid(l)
    np.testing.assert_allclose(l.grad.numpy(), [0.0, -1.0, 0.0, 1.0], atol=1e-30)
    h = d.entropy().numpy()
    assert np.all(np.isfinite(h)) and np.all(h >= 0) and np.all(h < 1e-30)
    # KL(Bern(sigmoid(100)) || Bern(sigmoid(-100))) = log(1 / sigmoid(-100)) + tiny = 100
    kl = kl_divergence(Bernoulli(logits=l[:1]), Bernoulli(logits=l[2:3]))
    np.testing.assert_allclose(kl.numpy(), [100.0], rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_with_probs_zero_and_one_stays_finite(device, dtype):
    # p = 0 or 1 would be a logit of -+inf, and x l - softplus(l) NaN. Clamping p to
    # [eps, 1 - eps] keeps everything finite: the certain outcome gets log P ~ 0 (within
    # eps), the impossible one a log-probability of log eps or below.
    eps = np.finfo(dtype).eps
    p = tg.tensor(np.array([0.0, 0.0, 1.0, 1.0], dtype=dtype), device=device,
                  requires_grad=True)
    x = tg.tensor(np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype), device=device)
    d = Bernoulli(probs=p)
    lp = d.log_prob(x)
    lp.sum().backward()
    out = lp.numpy()
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(p.grad.numpy()))
    np.testing.assert_allclose(out[[0, 2]], 0.0, atol=2 * eps)
    assert np.all(out[[1, 3]] <= np.log(eps) + 1e-3)
    h = d.entropy().numpy()
    assert np.all(np.isfinite(h)) and np.all(np.abs(h) < 100 * eps)


@pytest.mark.parametrize("device", DEVICES)
def test_categorical_is_stable_for_large_logits(device):
    d = Categorical(logits=tg.tensor([[1000.0, 0.0, -1000.0]], device=device))
    np.testing.assert_allclose(d.log_prob(tg.tensor([[0], [1], [2]], device=device)).numpy(),
                               [[0.0], [-1000.0], [-2000.0]])
    assert np.all(np.isfinite(d.entropy().numpy()))


@pytest.mark.parametrize("device", DEVICES)
def test_categorical_impossible_classes(device):
    # A logit of -inf (a masked class) or a probability of 0: log_prob is -inf there,
    # the class adds nothing to the entropy or KL (0 log 0 = 0), gradients stay finite,
    # and KL against a distribution that rules out a possible class is +inf.
    a = tg.tensor([[0.0, -math.inf, 1.0]], device=device, requires_grad=True)
    p = Categorical(logits=a)
    np.testing.assert_array_equal(p.log_prob(tg.tensor([1], device=device)).numpy(), [-np.inf])
    pi = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    np.testing.assert_allclose(p.entropy().numpy(), [-(pi * np.log(pi)).sum()], rtol=1e-6)
    q = Categorical(probs=tg.tensor([[0.5, 0.0, 0.5]], device=device))
    np.testing.assert_allclose(kl_divergence(p, q).numpy(),
                               [(pi * np.log(pi / 0.5)).sum()], rtol=1e-6)
    (p.entropy() + kl_divergence(p, q)).sum().backward()
    g = a.grad.numpy()
    assert np.all(np.isfinite(g)) and g[0, 1] == 0.0
    full = Categorical(probs=tg.tensor([[0.2, 0.3, 0.5]], device=device))
    for impossible in (p, q):
        np.testing.assert_array_equal(
            impossible.log_prob(tg.tensor([1], device=device)).numpy(), [-np.inf])
        assert kl_divergence(full, impossible).numpy()[0] == np.inf


# ======================================================================= errors

def test_invalid_parameters_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="scale must be positive"):
        Normal(0.0, 0.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        Normal(tg.zeros(3), tg.tensor([1.0, -1.0, 2.0]))
    with pytest.raises(ValueError, match="scale must be positive.*NaN"):
        Normal(0.0, tg.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="loc contains NaN"):
        Normal(float("nan"), 1.0)
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
            Bernoulli(probs=tg.tensor([0.5, bad]))
    with pytest.raises(ValueError, match="logits must be finite"):
        Bernoulli(logits=math.inf)
    with pytest.raises(ValueError, match="probs must be finite and non-negative"):
        Categorical(probs=[0.5, -0.1, 0.6])
    with pytest.raises(ValueError, match="positive sum"):
        Categorical(probs=[[0.5, 0.5], [0.0, 0.0]])
    with pytest.raises(ValueError, match="at least one finite"):
        Categorical(logits=[[0.0, 1.0], [-math.inf, -math.inf]])
    with pytest.raises(ValueError, match="logits must be real or -inf"):
        Categorical(logits=[0.0, math.inf])
    with pytest.raises(ValueError, match="last axis"):
        Categorical(logits=1.0)
    # validation can be switched off (then garbage in, garbage out)
    Normal(0.0, -1.0, validate_args=False)


@pytest.mark.parametrize("cls", [Bernoulli, Categorical])
def test_exactly_one_of_probs_and_logits(cls):
    with pytest.raises(ValueError, match="exactly one of probs and logits.*neither"):
        cls()
    with pytest.raises(ValueError, match="exactly one of probs and logits.*both"):
        cls(probs=[0.5, 0.5], logits=[0.0, 0.0])


def test_shape_mismatches_name_the_arguments_and_shapes():
    with pytest.raises(ValueError, match=r"loc of shape \(2,\) and scale of shape \(3,\)"):
        Normal(tg.zeros(2), tg.ones(3))
    with pytest.raises(ValueError, match=r"value of shape \(4,\).*batch shape \(3,\)"):
        Normal(tg.zeros(3), 1.0).log_prob(tg.zeros(4))
    with pytest.raises(ValueError, match=r"value of shape \(2,\).*batch shape \(3,\)"):
        Bernoulli(logits=tg.zeros(3)).log_prob(tg.zeros(2))
    with pytest.raises(ValueError, match=r"value of shape \(2,\).*batch shape \(3,\)"):
        Categorical(logits=tg.zeros(3, 4)).log_prob(tg.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"batch shapes \(2,\) \(p\) and \(3,\) \(q\)"):
        kl_divergence(Normal(tg.zeros(2), 1.0), Normal(tg.zeros(3), 1.0))
    with pytest.raises(ValueError, match="different numbers of classes, 3 .p. and 4 .q."):
        kl_divergence(Categorical(logits=tg.zeros(3)), Categorical(logits=tg.zeros(4)))


def test_invalid_values_are_refused():
    with pytest.raises(ValueError, match=r"value must lie in \[0, 1\]"):
        Bernoulli(probs=0.5).log_prob(2.0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\); got values in \[0, 4\]"):
        Categorical(logits=tg.zeros(4)).log_prob(tg.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"value must lie in \[0, 4\)"):
        Categorical(logits=tg.zeros(4)).log_prob(-1)
    with pytest.raises(TypeError, match="integer class indices"):
        Categorical(logits=tg.zeros(4)).log_prob(tg.tensor([1.0]))
    with pytest.raises(ValueError, match="sample_shape"):
        Normal(0.0, 1.0).sample((-1,))


def test_no_rsample_for_discrete_distributions_and_no_unknown_kl():
    for d in [Bernoulli(probs=0.5), Categorical(probs=[0.5, 0.5])]:
        assert not d.has_rsample
        with pytest.raises(NotImplementedError, match="no rsample.*score-function"):
            d.rsample()
    with pytest.raises(NotImplementedError, match=r"KL\(Normal \|\| Bernoulli\)"):
        kl_divergence(Normal(0.0, 1.0), Bernoulli(probs=0.5))
    with pytest.raises(NotImplementedError, match=r"KL\(Categorical \|\| Normal\)"):
        kl_divergence(Categorical(probs=[0.5, 0.5]), Normal(0.0, 1.0))


@pytest.mark.skipif(not tg.cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_parameters_on_different_devices_are_refused():
    with pytest.raises(ValueError, match="loc on 'cpu', scale on 'cuda'"):
        Normal(tg.zeros(2), tg.ones(2, device="cuda"))


# ======================================================================= Independent

@pytest.mark.parametrize("device", DEVICES)
def test_independent_sums_log_prob_entropy_and_kl_over_the_event_axes(device):
    rng = np.random.default_rng(0)
    mu, s = rng.standard_normal((4, 3, 5)), rng.uniform(0.5, 2, (4, 3, 5))
    mu2, s2 = rng.standard_normal((3, 5)), rng.uniform(0.5, 2, (3, 5))
    z = rng.standard_normal((4, 3, 5))
    p = Independent(Normal(t64(mu, device), t64(s, device)), 2)
    q = Independent(Normal(t64(mu2, device), t64(s2, device)), 2)
    assert p.batch_shape == (4,) and p.event_shape == (3, 5) and q.batch_shape == ()
    # the multivariate density of a diagonal Gaussian, written out
    log_n = -0.5 * ((z - mu) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(p.log_prob(t64(z, device)).numpy(), log_n.sum(axis=(1, 2)),
                               rtol=1e-12)
    np.testing.assert_allclose(p.entropy().numpy(),
                               (0.5 + 0.5 * math.log(2 * math.pi) + np.log(s)).sum(axis=(1, 2)),
                               rtol=1e-12)
    kl = np.log(s2 / s) + (s ** 2 + (mu - mu2) ** 2) / (2 * s2 ** 2) - 0.5
    np.testing.assert_allclose(kl_divergence(p, q).numpy(), kl.sum(axis=(1, 2)), rtol=1e-12)
    assert p.rsample((7,)).shape == (7, 4, 3, 5) and p.has_rsample
    # a Bernoulli image: one log-likelihood per example, the sum over its pixels
    logits, x = rng.standard_normal((2, 6)), (rng.random((2, 6)) < 0.5).astype(np.float64)
    image = Independent(Bernoulli(logits=t64(logits, device)), 1)
    expected = (x * logits - np.logaddexp(0, logits)).sum(axis=1)
    np.testing.assert_allclose(image.log_prob(t64(x, device)).numpy(), expected, rtol=1e-12)
    assert not image.has_rsample


def test_independent_of_zero_axes_is_the_base_and_bad_axes_are_refused():
    base = Normal(t64(np.zeros((2, 3))), 1.0)
    z = t64(np.ones((2, 3)))
    np.testing.assert_array_equal(Independent(base, 0).log_prob(z).numpy(),
                                  base.log_prob(z).numpy())
    for n in (3, -1, 1.0, True):
        with pytest.raises(ValueError, match="reinterpreted_batch_ndims must be an integer"):
            Independent(base, n)
    with pytest.raises(ValueError, match="different event dimensions"):
        kl_divergence(Independent(base, 1), Independent(base, 2))
    with pytest.raises(TypeError, match="must be a Distribution"):
        Independent("normal", 1)


# --------------------------------------------------------------------------- float32 extremes

def _f32(v, **kw):
    return tg.tensor(np.float32(v), **kw)


def test_normal_kl_at_extreme_scales_in_float32():
    """KL(N(0, e^-60) || N(0, 1)) = 1/2 (e^-120 - 1 + 120) = 59.5 (r underflows: was inf);
    KL(N(0, e^50) || N(0, 1)) = inf (r overflows: was inf - inf = nan)."""
    s = _f32(np.exp(-60.0), requires_grad=True)
    kl = kl_divergence(Normal(_f32(0), s), Normal(_f32(0), _f32(1)))
    kl.backward()
    assert kl.item() == pytest.approx(59.5, rel=1e-6)
    assert s.grad.item() == pytest.approx(-1 / np.float32(np.exp(-60.0)), rel=1e-5)
    with np.errstate(over="ignore"):
        assert kl_divergence(Normal(_f32(0), _f32(np.exp(50.0))),
                             Normal(_f32(0), _f32(1))).item() == np.inf
        assert kl_divergence(Normal(_f32(0), _f32(1)),
                             Normal(_f32(0), _f32(np.exp(-50.0)))).item() == np.inf


def test_normal_log_prob_and_entropy_at_extreme_scales_in_float32():
    """log p and its gradient at sigma = e^-60 (sigma^2 underflows float32): d/dsigma of
    log N(mu; mu, sigma^2) = -1/sigma, finite; entropies are log sigma + const."""
    for log_s in (-60.0, 50.0):
        s = _f32(np.exp(log_s), requires_grad=True)
        n = Normal(_f32(0), s)
        lp = n.log_prob(_f32(0))
        lp.backward()
        assert lp.item() == pytest.approx(-log_s - 0.5 * math.log(2 * math.pi), rel=1e-6)
        assert s.grad.item() == pytest.approx(-1 / np.float32(np.exp(log_s)), rel=1e-5)
        assert n.entropy().item() == pytest.approx(log_s + 0.5 + 0.5 * math.log(2 * math.pi),
                                                   rel=1e-6)
