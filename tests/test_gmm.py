"""The Gaussian mixture and EM (tinygen.models.classic.gmm) and its recipe.

The math, none of it depending on training: the densities and the responsibilities
against formulas written out here (no SciPy: the Gaussian density by its definition),
EM's monotone climb at every iteration on random data, the M-step as the maximiser of
the expected complete-data log-likelihood Q (and of Q under the covariance floor), the
gradient parameterisation as the same distribution, sampling's moments, k-means++'s D^2
rule, PCA against the eigenvalues of the covariance, and the errors. Then learning:
well-separated clusters' means recovered, gradient ascent meeting EM's log-likelihood,
and the recipe end to end (toy sets, MNIST in a PCA space, resuming, the command).
"""
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tinygen as tg
from tinygen.models.classic.gmm import (PCA, GaussianMixture, GradientMixture, e_step,
                                        expected_complete_log_likelihood, fit_gradient,
                                        floor_covariance, kmeans_plusplus, log_gaussian,
                                        log_prob, m_step)

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


# --------------------------------------------------------------------------- references

def gaussian_density(x, mu, Sigma):
    """N(x | mu, Sigma) by its definition, one point and one component at a time:
    exp(-(x - mu)^T Sigma^{-1} (x - mu) / 2) / sqrt((2 pi)^D det Sigma)."""
    d = x - mu
    return math.exp(-0.5 * d @ np.linalg.inv(Sigma) @ d) / math.sqrt(
        (2 * math.pi) ** len(x) * np.linalg.det(Sigma))


def full(Sigma, covariance_type):
    """Covariance matrices (K, D, D) from either storage."""
    return Sigma if covariance_type == "full" else np.stack([np.diag(s) for s in Sigma])


def random_parameters(rng, K, D, covariance_type, scale=1.0):
    pi = rng.dirichlet(np.ones(K))
    mu = rng.normal(0, 2 * scale, (K, D))
    if covariance_type == "full":
        A = rng.normal(0, scale, (K, D, D))
        Sigma = A @ A.transpose(0, 2, 1) + 0.3 * scale ** 2 * np.eye(D)
    else:
        Sigma = rng.uniform(0.3, 2.0, (K, D)) * scale ** 2
    return pi, mu, Sigma


def brute_densities(x, pi, mu, Sigma, covariance_type):
    """pi_k N(x_n | mu_k, Sigma_k) (N, K), by loops over points and components."""
    S = full(Sigma, covariance_type)
    return np.array([[pi[k] * gaussian_density(xn, mu[k], S[k]) for k in range(len(pi))]
                     for xn in x])


COVARIANCES = ["full", "diag"]


# --------------------------------------------------------------------------- densities

@pytest.mark.parametrize("covariance_type", COVARIANCES)
def test_log_prob_and_log_gaussian_match_the_formula(covariance_type):
    rng = np.random.default_rng(0)
    pi, mu, Sigma = random_parameters(rng, 3, 3, covariance_type)
    x = rng.normal(0, 2, (25, 3))
    joint = brute_densities(x, pi, mu, Sigma, covariance_type)
    np.testing.assert_allclose(np.exp(log_gaussian(x, mu, Sigma, covariance_type)),
                               joint / pi, rtol=1e-10)
    np.testing.assert_allclose(log_prob(x, pi, mu, Sigma, covariance_type),
                               np.log(joint.sum(1)), rtol=1e-10)
    gmm = GaussianMixture(3, 3, covariance_type)
    gmm.set_parameters(pi, mu, Sigma)
    np.testing.assert_allclose(gmm.log_prob(x), np.log(joint.sum(1)), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCES)
def test_log_prob_stays_finite_where_every_density_underflows(covariance_type):
    """At x = mu_0 + 100 (unit variances) every pi_k N is below 1e-300 (0 in float64),
    yet log p(x) is the log-space value: the nearest component's log-density (the others
    are e^-1000 times smaller), written out."""
    D = 2
    gmm = GaussianMixture(2, D, covariance_type)
    mu = np.array([[0.0, 0.0], [-200.0, 0.0]])
    Sigma = np.tile(np.eye(D), (2, 1, 1)) if covariance_type == "full" else np.ones((2, D))
    gmm.set_parameters([0.5, 0.5], mu, Sigma)
    x = np.array([[100.0, 0.0]])
    assert brute_densities(x, [0.5, 0.5], mu, Sigma, covariance_type).max() == 0.0
    expected = math.log(0.5) - D / 2 * math.log(2 * math.pi) - 100.0 ** 2 / 2
    np.testing.assert_allclose(gmm.log_prob(x), [expected], rtol=1e-12)
    gamma = gmm.responsibilities(x)
    np.testing.assert_allclose(gamma, [[1.0, 0.0]], atol=1e-300)


@pytest.mark.parametrize("covariance_type", COVARIANCES)
def test_responsibilities_are_bayes_rule(covariance_type):
    rng = np.random.default_rng(1)
    pi, mu, Sigma = random_parameters(rng, 4, 2, covariance_type)
    x = rng.normal(0, 2, (30, 2))
    joint = brute_densities(x, pi, mu, Sigma, covariance_type)
    gamma, log_px = e_step(x, pi, mu, Sigma, covariance_type)
    np.testing.assert_allclose(gamma, joint / joint.sum(1, keepdims=True), rtol=1e-10,
                               atol=1e-15)
    np.testing.assert_allclose(log_px, np.log(joint.sum(1)), rtol=1e-10)
    np.testing.assert_allclose(gamma.sum(1), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------- EM

points = st.integers(1, 3).flatmap(lambda D: st.integers(4, 30).flatmap(
    lambda N: arrays(np.float64, (N, D), elements=st.floats(-10, 10, width=64))))


@given(x=points, K=st.integers(1, 4), covariance_type=st.sampled_from(COVARIANCES),
       init=st.sampled_from(["kmeans++", "random"]), seed=st.integers(0, 1000))
def test_em_never_decreases_the_log_likelihood(x, K, covariance_type, init, seed):
    """Every iteration, on any data (duplicated points, all points equal, fewer points
    than parameters): the floor keeps each covariance's eigenvalues >= reg_covar, and EM's
    guarantee (Dempster et al., theorem 1) holds exactly. em_step reports the
    log-likelihood of the parameters it started from."""
    K = min(K, len(x))
    gmm = GaussianMixture(K, x.shape[1], covariance_type, reg_covar=1e-3)
    gmm.initialize(x, init, seed=seed)
    before = gmm.log_likelihood(x)
    for _ in range(12):
        reported = gmm.em_step(x)
        assert reported == pytest.approx(before, rel=1e-12, abs=1e-12)
        after = gmm.log_likelihood(x)
        assert after >= before - 1e-10 * (1 + abs(before)), (before, after)
        before = after
    Sigma = full(gmm.params.Sigma, covariance_type)
    assert np.linalg.eigvalsh(Sigma).min() >= 1e-3 * (1 - 1e-9)


def perturbations(rng, pi, mu, Sigma, covariance_type, h):
    """Small moves of each parameter group away from (pi, mu, Sigma), each with its
    mirror image: pi along a direction of the simplex, one mean, one covariance
    (symmetric), all others kept."""
    K = len(pi)
    for _ in range(6):
        d = rng.normal(size=K)
        d -= d.mean()
        for sign in (1, -1):
            yield pi + sign * h * d * pi.min(), mu, Sigma
        k = rng.integers(K)
        d = np.zeros_like(mu)
        d[k] = rng.normal(size=mu.shape[1])
        for sign in (1, -1):
            yield pi, mu + sign * h * d, Sigma
        d = np.zeros_like(Sigma)
        e = rng.normal(size=Sigma.shape[1:])
        d[k] = e + e.T if covariance_type == "full" else e
        for sign in (1, -1):
            yield pi, mu, Sigma + sign * h * d * np.abs(Sigma).max()


@pytest.mark.parametrize("covariance_type", COVARIANCES)
@pytest.mark.parametrize("seed", range(4))
def test_the_m_step_maximises_the_expected_complete_log_likelihood(covariance_type, seed):
    """For random responsibilities gamma (not an E-step's: any posterior), no small move
    of pi, a mean or a covariance, either way, raises Q above its value at the M-step's
    parameters. (A mistake that moves a parameter off the maximiser, e.g. S_k about the
    old means, or pi_k = N_k / K, loses at one of each pair of mirrored moves.)"""
    rng = np.random.default_rng(seed)
    N, K, D = 40, 3, 2
    x = rng.normal(0, 2, (N, D))
    gamma = rng.dirichlet(np.ones(K) * 0.7, size=N)
    best = m_step(x, gamma, covariance_type, reg_covar=1e-9)
    Q = expected_complete_log_likelihood(x, gamma, *best, covariance_type)
    np.testing.assert_allclose(best.pi, gamma.mean(0), rtol=1e-12)
    for h in (1e-2, 1e-4):
        for params in perturbations(rng, *best, covariance_type, h):
            assert expected_complete_log_likelihood(x, gamma, *params, covariance_type) \
                <= Q + 1e-10 * abs(Q)


@pytest.mark.parametrize("covariance_type", COVARIANCES)
def test_the_floor_is_the_maximiser_of_q_among_covariances_above_it(covariance_type):
    """Points on the line y = 1: the scatter S_k has a zero variance across it, and the
    M-step puts reg_covar there (eq. (7)) and nothing else changes. Any covariance with
    eigenvalues >= reg_covar near it has a lower Q (the floor is active: moving the
    eigenvalue up costs Q; it cannot move down); and a covariance above the floor passes
    through floor_covariance unchanged."""
    rng = np.random.default_rng(0)
    eps = 1e-3
    x = np.stack([rng.normal(0, 1, 30), np.ones(30)], axis=1)
    gamma = rng.dirichlet(np.ones(2), size=30)
    best = m_step(x, gamma, covariance_type, reg_covar=eps)
    S = full(best.Sigma, covariance_type)
    np.testing.assert_allclose(S[:, 1, 1], eps, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(S)[:, 0], eps, rtol=1e-9)
    unfloored = m_step(x, gamma, covariance_type, reg_covar=1e-300)
    np.testing.assert_allclose(full(unfloored.Sigma, covariance_type)[:, 0, 0], S[:, 0, 0],
                               rtol=1e-12)
    Q = expected_complete_log_likelihood(x, gamma, *best, covariance_type)
    for k in range(2):
        for step in (1e-4, 1e-2):
            Sigma = best.Sigma.copy()
            if covariance_type == "full":
                Sigma[k, 1, 1] += step
            else:
                Sigma[k, 1] += step
            assert expected_complete_log_likelihood(x, gamma, best.pi, best.mu, Sigma,
                                                    covariance_type) < Q
    above = np.array([[[2.0, 0.5], [0.5, 1.0]]])
    np.testing.assert_array_equal(floor_covariance(above, 1e-3), above)
    np.testing.assert_array_equal(floor_covariance(np.array([[2.0, 1e-5]]), 1e-3, "diag"),
                                  [[2.0, 1e-3]])


def test_an_abandoned_component_keeps_pi_zero_and_no_nan():
    """A component whose responsibilities are all 0 gets pi_k = 0, mu_k = 0 and Sigma_k =
    reg_covar I; the log-likelihood is that of the others."""
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    gamma = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    p = m_step(x, gamma, "full", reg_covar=1e-4)
    assert p.pi.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(p.mu[1], [0.0, 0.0])
    np.testing.assert_allclose(p.Sigma[1], 1e-4 * np.eye(2))
    only = log_prob(x, [1.0], p.mu[:1], p.Sigma[:1])
    np.testing.assert_allclose(log_prob(x, *p), only, rtol=1e-14)


def test_kmeans_plusplus_never_picks_a_point_already_chosen():
    """Three distinct points, each repeated 200 times: D^2 sampling gives a copy of a
    chosen point probability 0, so the three seeds are the three distinct points (three
    uniform choices would repeat one 78% of the time)."""
    base = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 0.1]])
    x = np.repeat(base, 200, axis=0)
    for seed in range(20):
        seeds = kmeans_plusplus(x, 3, np.random.default_rng(seed))
        assert sorted(map(tuple, seeds)) == sorted(map(tuple, base))


@pytest.mark.parametrize("covariance_type", COVARIANCES)
@pytest.mark.parametrize("seed", range(3))
def test_em_recovers_well_separated_means(covariance_type, seed):
    """Three clusters 10 standard deviations apart: EM from k-means++ seeds finds each
    true mean within 0.1, and the weights within 0.03, whatever the seed. (Random points
    as seeds can put two in one cluster, and EM then stays in that local maximum.)"""
    rng = np.random.default_rng(0)
    true_mu = np.array([[0.0, 0.0], [6.0, 1.0], [-1.0, 7.0]])
    counts = np.array([150, 100, 250])
    x = np.concatenate([m + 0.6 * rng.normal(size=(n, 2)) for m, n in zip(true_mu, counts)])
    gmm = GaussianMixture(3, 2, covariance_type)
    history = gmm.fit(x, max_iter=200, tol=1e-10, init="kmeans++", seed=seed)
    assert np.all(np.diff(history) >= -1e-12)
    pi, mu, _ = gmm.params
    match = np.array([np.argmin(((mu - m) ** 2).sum(1)) for m in true_mu])
    assert sorted(match) == [0, 1, 2]                      # a permutation
    np.testing.assert_allclose(mu[match], true_mu, atol=0.1)
    np.testing.assert_allclose(pi[match], counts / counts.sum(), atol=0.03)


# --------------------------------------------------------------------------- gradient ascent

@pytest.mark.parametrize("covariance_type", COVARIANCES)
def test_the_gradient_parameterisation_is_the_same_distribution(covariance_type):
    rng = np.random.default_rng(3)
    gmm = GaussianMixture(3, 3, covariance_type)
    gmm.set_parameters(*random_parameters(rng, 3, 3, covariance_type))
    x = rng.normal(0, 2, (20, 3))
    model = GradientMixture.from_mixture(gmm)
    np.testing.assert_allclose(model.log_prob(tg.tensor(x)).numpy(), gmm.log_prob(x),
                               rtol=1e-10)
    back = model.to_mixture()
    for a, b in zip(back.params, gmm.params):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCES)
def test_gradient_ascent_and_em_reach_the_same_log_likelihood(covariance_type):
    """Two overlapping clusters, 300 points, K = 2, the same start: EM converged (to
    1e-12 nats per point) and 800 full-batch Adam steps end within 1e-3 nats per point of
    each other, Adam not above EM's (local) maximum, and their means agree."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(150, 2)) @ [[1.0, 0.3], [0.0, 0.6]] + [-1.5, 0.0],
                        rng.normal(size=(150, 2)) * [0.5, 1.2] + [1.5, 0.5]])
    start = GaussianMixture(2, 2, covariance_type)
    start.initialize(x, seed=0)
    start_mu = start.params.mu.copy()
    em = start.copy()
    history = em.fit(x, max_iter=1000, tol=1e-12, init=None)
    fitted = fit_gradient(x, start, steps=800, lr=0.05)
    assert len(fitted.log_likelihood) == len(fitted.seconds) == 801
    assert fitted.log_likelihood[0] == pytest.approx(start.log_likelihood(x), rel=1e-12)
    assert fitted.log_likelihood[-1] == pytest.approx(fitted.model.log_likelihood(x),
                                                      rel=1e-10)
    assert abs(fitted.log_likelihood[-1] - history[-1]) < 1e-3
    assert fitted.log_likelihood[-1] <= history[-1] + 1e-9
    np.testing.assert_allclose(fitted.model.params.mu, em.params.mu, atol=0.02)
    np.testing.assert_array_equal(start.params.mu, start_mu)      # init left unchanged


# --------------------------------------------------------------------------- sampling, PCA

@pytest.mark.parametrize("covariance_type", COVARIANCES)
def test_samples_have_the_mixtures_moments(covariance_type):
    """200,000 samples: component frequencies pi, mean sum_k pi_k mu_k, covariance
    sum_k pi_k (Sigma_k + mu_k mu_k^T) - m m^T, each within 5 standard errors; and each
    component's samples have its own mean."""
    rng = np.random.default_rng(5)
    pi, mu, Sigma = random_parameters(rng, 3, 2, covariance_type)
    gmm = GaussianMixture(3, 2, covariance_type)
    gmm.set_parameters(pi, mu, Sigma)
    n = 200_000
    x, z = gmm.sample(n, np.random.default_rng(0))
    assert x.shape == (n, 2) and z.shape == (n,)
    np.testing.assert_allclose(np.bincount(z, minlength=3) / n, pi, atol=5 * np.sqrt(0.25 / n))
    S = full(Sigma, covariance_type)
    m = pi @ mu
    C = np.einsum("k,kde->de", pi, S + mu[:, :, None] * mu[:, None, :]) - np.outer(m, m)
    np.testing.assert_allclose(x.mean(0), m, atol=5 * np.sqrt(np.diag(C).max() / n))
    np.testing.assert_allclose(np.cov(x.T), C, atol=0.02 * np.abs(C).max())
    for k in range(3):
        xk = x[z == k]
        np.testing.assert_allclose(xk.mean(0), mu[k],
                                   atol=5 * np.sqrt(np.diag(S[k]).max() / len(xk)))
        np.testing.assert_allclose(np.cov(xk.T), S[k], atol=0.05 * np.abs(S[k]).max())


def test_pca_keeps_the_directions_of_largest_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6)
    C = np.cov(x.T, bias=True)
    pca = PCA(6, 3).fit(x)
    V = pca.V.numpy()
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(pca.explained_variance.numpy(), np.linalg.eigvalsh(C)[::-1][:3],
                               rtol=1e-10)
    z = pca.transform(x)
    np.testing.assert_allclose(np.cov(z.T, bias=True), np.diag(pca.explained_variance.numpy()),
                               atol=1e-9)
    np.testing.assert_allclose(pca.total_variance.numpy()[0], np.trace(C), rtol=1e-12)
    whole = PCA(6, 6).fit(x)
    np.testing.assert_allclose(whole.inverse_transform(whole.transform(x)), x, atol=1e-10)


# --------------------------------------------------------------------------- errors

def test_bad_settings_and_input_are_refused_clearly():
    with pytest.raises(ValueError, match="num_components must be a positive integer; got 0"):
        GaussianMixture(0, 2)
    with pytest.raises(ValueError, match="num_components must be a positive integer; got 2.5"):
        GaussianMixture(2.5, 2)
    with pytest.raises(ValueError, match="dim must be a positive integer; got -1"):
        GaussianMixture(2, -1)
    with pytest.raises(ValueError, match="covariance_type must be one of full, diag; got "
                                         "'spherical'"):
        GaussianMixture(2, 2, "spherical")
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        log_prob(np.zeros((1, 2)), [1.0], np.zeros((1, 2)), np.ones((1, 2)), "tied")
    for bad in (0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="reg_covar .* must be a positive number"):
            GaussianMixture(2, 2, reg_covar=bad)
    gmm = GaussianMixture(2, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\).*got shape \(3,\)"):
        gmm.log_prob(np.zeros(3))
    with pytest.raises(ValueError, match=r"x has 2 features per point, the mixture D = 3"):
        gmm.log_prob(np.zeros((4, 2)))
    x = np.zeros((5, 3))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN or infinite values, e.g. nan at index \(2, 1\)"):
        gmm.em_step(x)
    x[2, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        gmm.initialize(x)
    with pytest.raises(TypeError, match="array of numbers"):
        gmm.log_prob(np.array([["a", "b", "c"]]))
    with pytest.raises(ValueError, match="needs at least K = 2 points; got 1"):
        gmm.initialize(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="method must be one of kmeans\\+\\+, random; got "
                                         "'kmeans'"):
        gmm.initialize(np.zeros((5, 3)), "kmeans")
    with pytest.raises(ValueError, match=r"gamma must have shape \(N, K\) = \(5, K\)"):
        m_step(np.zeros((5, 3)), np.ones((4, 2)) / 2)
    with pytest.raises(ValueError, match="row 0 sums to 2"):
        m_step(np.zeros((5, 3)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="finite and >= 0"):
        m_step(np.zeros((5, 3)), np.array([[1.5, -0.5]] * 5))
    with pytest.raises(ValueError, match="gamma has 3 components, the mixture 2"):
        gmm.m_step(np.zeros((5, 3)), np.ones((5, 3)) / 3)
    with pytest.raises(ValueError, match=r"Sigma\[1\] is not positive definite"):
        gmm.set_parameters([0.5, 0.5], np.zeros((2, 3)),
                           np.stack([np.eye(3), -np.eye(3)]))
    with pytest.raises(ValueError, match="pi must be >= 0 and sum to 1"):
        gmm.set_parameters([0.7, 0.7], np.zeros((2, 3)), np.tile(np.eye(3), (2, 1, 1)))
    with pytest.raises(ValueError, match="n must be an integer >= 0; got -1"):
        gmm.sample(-1)
    with pytest.raises(TypeError, match="init must be a GaussianMixture"):
        fit_gradient(np.zeros((5, 3)), "kmeans++")
    with pytest.raises(ValueError, match="lr must be positive; got 0"):
        fit_gradient(np.zeros((5, 3)), gmm, lr=0)
    with pytest.raises(ValueError, match="num_components .4. must be at most num_features .3."):
        PCA(3, 4)
    with pytest.raises(ValueError, match="needs at least num_components = 2 points; got 1"):
        PCA(3, 2).fit(np.zeros((1, 3)))


# --------------------------------------------------------------------------- the recipe

def experiment(dataset="8gaussians", **config):
    from tinygen.experiments import get_experiment
    cls = get_experiment("gmm")
    return cls({**cls.defaults_for(dataset), "model": "gmm", "dataset": dataset, "seed": 0,
                "device": "cpu", "train_n": 4000, "eval_n": 1000, "eval_fid": False,
                **config})


def test_registered_with_the_toy_and_image_sets():
    from tinygen.data import TOY_DATASETS
    from tinygen.experiments import REGISTRY
    assert REGISTRY["gmm"].datasets == TOY_DATASETS + ("mnist", "fashion-mnist")


def test_recipe_options_are_checked():
    from tinygen.experiments.base import ConfigError
    with pytest.raises(ConfigError, match="--covariance 'spherical': choose one of full, diag"):
        experiment(covariance="spherical")
    with pytest.raises(ConfigError, match="--batch-size 32: EM uses all the training data"):
        experiment(batch_size=32)
    with pytest.raises(ConfigError, match="--lr 0.1: EM has no learning rate"):
        experiment(lr=0.1)
    with pytest.raises(ConfigError, match="--device 'cuda': gmm runs on the CPU"):
        experiment(device="cuda")
    with pytest.raises(ConfigError, match="--train-n 5: needs at least --components"):
        experiment(train_n=5)


def test_the_recipe_fits_a_toy_set_and_measures_it(tmp_path):
    """60 EM iterations on 4,000 points of 8gaussians: the logged log-likelihood never
    falls, the test NLL lands within 0.1 nats of the data's entropy (2.83), samples cover
    the 8 modes; the pictures are written."""
    from tinygen.train import fit, read_log
    exp = experiment()
    fit(exp, str(tmp_path), steps=60, progress=False)
    ll = [r["log_likelihood"] for r in read_log(str(tmp_path))]
    assert len(ll) == 60 and np.all(np.diff(ll) >= -1e-10)
    m = exp.evaluate()
    assert m["nll_estimator"] == "exact" and m["eval_images"] == 1000
    assert m["data_entropy_nats"] == pytest.approx(2.83, abs=0.01)
    assert m["data_entropy_nats"] - 0.1 < m["nll_nats"] < m["data_entropy_nats"] + 0.1
    assert m["modes_covered"] == 8 and m["high_quality_fraction"] > 0.9
    for picture in ("density.png", "responsibilities.png", "samples.png", "curves.png"):
        assert os.path.getsize(tmp_path / picture) > 1000


def test_a_resumed_run_continues_exactly(tmp_path):
    """4 + 4 EM iterations give the log of 8 straight: the mixture comes back from the
    checkpoint (a fresh initialisation would start over)."""
    from tinygen.train import fit, read_log
    for folder, steps in (("straight", 8), ("resumed", 4), ("resumed", 8)):
        fit(experiment(dataset="two_moons"), str(tmp_path / folder), steps=steps,
            progress=False)
    assert [r["log_likelihood"] for r in read_log(str(tmp_path / "resumed"))] == \
        [r["log_likelihood"] for r in read_log(str(tmp_path / "straight"))]


def test_the_command_trains_and_evaluates(tmp_path):
    from tinygen.cli import main
    run = str(tmp_path / "gmm")
    assert main(["train", "gmm", "--dataset", "two_moons", "--steps", "5", "--components",
                 "4", "--covariance", "diag", "--train-n", "2000", "--eval-n", "500",
                 "--out", run]) == 0
    assert main(["eval", run]) == 0
    m = json.load(open(os.path.join(run, "metrics.json")))
    assert m["eval_images"] == 500 and math.isfinite(m["nll_nats"])
    assert "data_entropy_nats" in m and "modes_covered" not in m   # moons have no modes
    assert main(["sample", run, "--n", "16", "--out", str(tmp_path / "s.png")]) == 0


@needs_mnist
def test_the_recipe_on_mnist_in_a_pca_space(tmp_path):
    """3 EM iterations of K = 3 in a 10-d PCA space of 2,000 images: the PCA-space NLL
    (not nll_nats: it is no pixel-space NLL), the same after loading the run as `tinygen
    eval` does, decoded samples and means as images in [0, 1]."""
    from tinygen.experiments import get_experiment
    from tinygen.train import fit, load_experiment
    exp = experiment("mnist", train_n=2000, pca_dim=10, components=3, eval_n=200)
    fit(exp, str(tmp_path), steps=3, progress=False)
    m = exp.evaluate()
    assert "nll_nats" not in m and m["pca_dim"] == 10 and m["eval_images"] == 200
    assert math.isfinite(m["pca_nll_nats"]) and 0.3 < m["pca_variance_kept"] < 0.7
    assert 0 < m["pca_recon_mse"] < 0.1
    again = load_experiment(str(tmp_path), get_experiment).evaluate()
    assert again["pca_nll_nats"] == pytest.approx(m["pca_nll_nats"], rel=1e-12)
    s = exp.sample(5)
    assert s.shape == (5, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    for picture in ("samples.png", "means.png"):
        assert os.path.getsize(tmp_path / picture) > 500
