"""Naive Bayes and logistic regression (tinygen/models/classic/naive_bayes.py), proven
without training: the closed-form fit against counting by hand, Bayes' rule and the
marginalisation of missing pixels against the joint enumerated over every image of tiny
models, the pair's shared linear form, logistic regression's gradient against its formula
and finite differences, and the errors. Then learning tests on data drawn from a known
naive Bayes model, whose Bayes-optimal accuracy is summed exactly; then the naive-bayes
recipe and the command on a small slice of MNIST.

Tolerances: float64 rounding for the closed forms; for accuracies on sampled test sets, a
margin well above their standard error (stated beside each).
"""
import itertools
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
from tinygen import optim
from tinygen.cli import main
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.base import ConfigError
from tinygen.models.classic.naive_bayes import (BernoulliNaiveBayes, LogisticRegression,
                                                impute, missing_at_random)
from tinygen.train import fit, load_experiment, read_log

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


def all_states(n):
    """Every binary vector of length n, (2^n, n) float64."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def tiny_model(D=4, K=3, seed=0):
    """A naive Bayes with random pi and theta in (0.05, 0.95), far from uniform."""
    rng = np.random.default_rng(seed)
    nb = BernoulliNaiveBayes(D, K)
    pi = rng.random(K) + 0.2
    nb.pi.data[...] = pi / pi.sum()
    nb.theta.data[...] = rng.uniform(0.05, 0.95, (K, D))
    return nb


def brute_joint(nb):
    """p(x, y = k) for every x in {0, 1}^D (rows) and k (columns), eq. (1), multiplied
    out factor by factor with Python loops."""
    pi, theta = nb.pi.numpy(), nb.theta.numpy()
    X = all_states(nb.num_features)
    P = np.zeros((len(X), nb.num_classes))
    for i, x in enumerate(X):
        for k in range(nb.num_classes):
            p = pi[k]
            for d in range(nb.num_features):
                p *= theta[k, d] if x[d] == 1 else 1 - theta[k, d]
            P[i, k] = p
    return X, P


# -------------------------------------------------------------------------- fitting, eq. (2)

@given(N=st.integers(0, 30), D=st.integers(1, 6), K=st.integers(1, 4),
       alpha=st.floats(0.01, 5), seed=st.integers(0, 2 ** 16))
def test_fit_equals_the_counting_formula(N, D, K, alpha, seed):
    """pi_k = (N_k + alpha) / (N + K alpha), theta_kd = (N_kd + alpha) / (N_k + 2 alpha),
    counted one example at a time (a class with no examples gets theta = 1/2)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((N, D)) < 0.4).astype(np.float32)
    y = rng.integers(0, K, N)
    nb = BernoulliNaiveBayes(D, K, alpha=alpha).fit(x, y)
    N_k, N_kd = np.zeros(K), np.zeros((K, D))
    for n in range(N):
        N_k[y[n]] += 1
        for d in range(D):
            if x[n, d] == 1:
                N_kd[y[n], d] += 1
    np.testing.assert_allclose(nb.pi.numpy(), (N_k + alpha) / (N + K * alpha), rtol=1e-12)
    np.testing.assert_allclose(nb.theta.numpy(), (N_kd + alpha) / (N_k[:, None] + 2 * alpha),
                               rtol=1e-12)


def test_fit_takes_images_of_any_shape_and_boolean_or_integer_pixels():
    rng = np.random.default_rng(1)
    x = rng.random((20, 1, 2, 3)) < 0.5
    y = rng.integers(0, 2, 20)
    a = BernoulliNaiveBayes(6, 2).fit(x, y).theta.numpy()
    b = BernoulliNaiveBayes(6, 2).fit(x.reshape(20, 6).astype(np.uint8), y).theta.numpy()
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- Bayes' rule, eqs. (3)-(4)

def test_likelihood_posterior_and_evidence_equal_the_enumerated_joint():
    """Over all 2^5 images of a 5-pixel, 3-class model: log p(x | k), p(y | x) = p(x, y) /
    sum_y p(x, y), argmax, and log p(x) agree with the joint multiplied out; p(x | k)
    sums to 1 over x."""
    nb = tiny_model(D=5, K=3)
    X, P = brute_joint(nb)
    pi = nb.pi.numpy()
    np.testing.assert_allclose(np.exp(nb.log_likelihood(X)), P / pi, rtol=1e-12)
    np.testing.assert_allclose((P / pi).sum(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(np.exp(nb.log_posterior(X)), P / P.sum(axis=1, keepdims=True),
                               rtol=1e-12)
    np.testing.assert_array_equal(nb.predict(X), P.argmax(axis=1))
    np.testing.assert_allclose(nb.log_evidence(X), np.log(P.sum(axis=1)), rtol=1e-12)
    assert len(set(nb.predict(X))) > 1   # a model that predicts one class proves little


def test_posterior_does_not_underflow_with_many_pixels():
    """784 pixels each on with probability 0.001 to 0.01, an image with every pixel on:
    every joint is below e^-3000, 0 in float64, so the posterior p(x, y) / p(x) computed
    outside log space would be 0 / 0. In log space (eq. (4)) it is a distribution, and
    it prefers the class whose theta is largest where it matters."""
    nb = BernoulliNaiveBayes(784, 10)
    rng = np.random.default_rng(0)
    nb.theta.data[...] = rng.uniform(0.001, 0.01, (10, 784))
    nb.theta.data[3] = 0.011
    x = np.ones((2, 784))
    assert nb.log_joint(x).max() < -3000 and not np.exp(nb.log_joint(x)).any()
    post = np.exp(nb.log_posterior(x))
    assert np.isfinite(post).all()
    np.testing.assert_allclose(post.sum(axis=1), 1, rtol=1e-12)
    assert (nb.predict(x) == 3).all() and post[0, 3] > 0.99
    assert np.isfinite(nb.log_evidence(x)).all()


def test_naive_bayes_posterior_is_a_linear_softmax():
    """Eq. (8): log p(y | x) = log softmax(W x + b), W_kd = log theta_kd / (1 - theta_kd),
    b_k = log pi_k + sum_d log(1 - theta_kd): the family of logistic regression."""
    nb = tiny_model(D=6, K=4, seed=3)
    X = all_states(6)
    W, b = nb.as_linear()
    logits = X @ W.T + b
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(nb.log_posterior(X), log_softmax, rtol=1e-10, atol=1e-12)
    # and b is the log-joint of the blank image
    np.testing.assert_allclose(b, nb.log_joint(np.zeros((1, 6)))[0], rtol=1e-12)


# ------------------------------------------------------------------- missing pixels, eq. (5)

def test_missing_pixels_are_summed_out_of_the_joint():
    """For every 4-pixel image and every one of the 16 masks: log p(x_O, y) equals the log
    of the joint summed over every completion of the missing pixels."""
    nb = tiny_model(D=4, K=3, seed=1)
    X, P = brute_joint(nb)
    for mask in all_states(4).astype(bool):
        for x in X:
            agree = (X[:, mask] == x[mask]).all(axis=1)      # the completions of x_O
            want = np.log(P[agree].sum(axis=0))
            got = nb.log_joint(x[None], mask)[0]
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_one_missing_pixel_sums_its_two_values():
    """The same for one pixel in plain terms: p(x_O, y) = p(x, x_d = 0, y) + p(x, x_d = 1,
    y), on a per-example mask (N, D) that hides a different pixel in each example."""
    nb = tiny_model(D=5, K=2, seed=2)
    rng = np.random.default_rng(0)
    x = (rng.random((8, 5)) < 0.5).astype(np.float64)
    hidden = rng.integers(0, 5, 8)
    observed = np.ones((8, 5), bool)
    observed[np.arange(8), hidden] = False
    x0, x1 = x.copy(), x.copy()
    x0[np.arange(8), hidden], x1[np.arange(8), hidden] = 0, 1
    want = np.logaddexp(nb.log_joint(x0), nb.log_joint(x1))
    np.testing.assert_allclose(nb.log_joint(x, observed), want, rtol=1e-12)


def test_the_values_of_missing_pixels_are_never_read():
    nb = tiny_model(D=5, K=3)
    x = np.array([[1, 0, 1, 1, 0]], np.float64)
    observed = np.array([True, False, True, False, True])
    junk = x.copy()
    junk[0, ~observed] = [np.nan, 7.0]
    np.testing.assert_array_equal(nb.log_posterior(junk, observed),
                                  nb.log_posterior(x, observed))


def test_the_posterior_ignores_missing_pixels_that_are_independent_of_the_class():
    """Pixel 2 has the same theta in every class: observing it (0 or 1) or not gives the
    same posterior. Pixel 0, which depends on the class, does change it."""
    nb = tiny_model(D=4, K=3, seed=4)
    nb.theta.data[:, 2] = 0.3
    x = all_states(4)
    hide = lambda d: np.arange(4) != d    # noqa: E731
    np.testing.assert_allclose(nb.log_posterior(x, hide(2)), nb.log_posterior(x),
                               rtol=1e-12, atol=1e-14)
    assert np.abs(nb.log_posterior(x, hide(0)) - nb.log_posterior(x)).max() > 0.1
    # the likelihood itself does change: only Bayes' rule cancels the term
    assert np.abs(nb.log_likelihood(x, hide(2)) - nb.log_likelihood(x)).max() > 0.1


def test_all_pixels_missing_leaves_the_prior():
    nb = tiny_model(D=3, K=3)
    post = nb.log_posterior(np.zeros((2, 3)), np.zeros(3, bool))
    np.testing.assert_allclose(np.exp(post), np.tile(nb.pi.numpy(), (2, 1)), rtol=1e-12)


def test_missing_at_random_hides_exactly_the_fraction_at_random_and_nested():
    n, D = 200, 50
    masks = {q: missing_at_random(n, D, q, tg.random.generator(7)) for q in (0, 0.25, 0.5)}
    assert masks[0].all()
    for q in (0.25, 0.5):
        assert masks[q].dtype == bool and (masks[q].sum(axis=1) == D - round(q * D)).all()
    assert (masks[0.5] <= masks[0.25]).all()            # nested under one seed
    assert len({tuple(row) for row in masks[0.5]}) > n - 5    # a mask per image
    # every pixel is hidden about half the time at 50% (binomial sd 0.035 over 200 rows)
    assert np.abs((~masks[0.5]).mean(axis=0) - 0.5).max() < 0.2
    with pytest.raises(ValueError, match="fraction must lie in"):
        missing_at_random(3, 4, 1.5, tg.random.generator(0))


# ---------------------------------------------------------------------------------- sampling

def test_samples_are_binary_with_the_class_means_and_class_frequencies():
    """100,000 ancestral samples: the mean image of class k is theta_k, the classes come
    with frequencies pi (4 binomial standard errors)."""
    nb = tiny_model(D=6, K=3, seed=5)
    x, y = nb.sample(100_000, generator=tg.random.generator(0))
    assert x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
    pi, theta = nb.pi.numpy(), nb.theta.numpy()
    freq = np.bincount(y, minlength=3) / len(y)
    assert np.all(np.abs(freq - pi) < 4 * np.sqrt(pi * (1 - pi) / len(y)))
    for k in range(3):
        mean = x[y == k].mean(axis=0)
        se = np.sqrt(theta[k] * (1 - theta[k]) / (y == k).sum())
        assert np.all(np.abs(mean - theta[k]) < 4 * se)
    xs, ys = nb.sample(y=np.array([2, 2, 0]), generator=tg.random.generator(1))
    assert xs.shape == (3, 6) and list(ys) == [2, 2, 0]


# ----------------------------------------------------------------------- logistic regression

def lr_problem(N=12, D=5, K=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    model = LogisticRegression(D, K)
    model.linear.weight.data = rng.normal(0, 1, (K, D)).astype(dtype)
    model.linear.bias.data = rng.normal(0, 1, K).astype(dtype)
    x = (rng.random((N, D)) < 0.5).astype(dtype)
    y = rng.integers(0, K, N)
    return model, x, y


def numpy_objective(W, b, x, y, lam):
    """Eq. (7) with NumPy: the mean cross-entropy plus lam / 2 ||W||^2."""
    logits = x @ W.T + b
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean() + lam / 2 * (W ** 2).sum()


def test_logistic_regression_gradient_matches_its_formula_and_finite_differences():
    """grad_W = (1/N) (P - Y)^T X + lambda W, grad_b = (1/N) sum (p_n - y_n) (eq. (7),
    ``gradient``): equal to the engine's backward through F.cross_entropy and to central
    differences of the objective, entry by entry."""
    model, x, y = lr_problem()
    lam = 0.3
    gW, gb = model.gradient(x, y, weight_decay=lam)
    loss = model.loss(tg.tensor(x), tg.tensor(y)) + lam / 2 * (model.linear.weight ** 2).sum()
    loss.backward()
    np.testing.assert_allclose(model.linear.weight.grad.numpy(), gW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.linear.bias.grad.numpy(), gb, rtol=1e-10, atol=1e-12)
    W, b, h = model.linear.weight.numpy().copy(), model.linear.bias.numpy().copy(), 1e-6
    for (i, j) in itertools.product(range(W.shape[0]), range(W.shape[1])):
        Wp, Wm = W.copy(), W.copy()
        Wp[i, j] += h
        Wm[i, j] -= h
        fd = (numpy_objective(Wp, b, x, y, lam) - numpy_objective(Wm, b, x, y, lam)) / (2 * h)
        assert fd == pytest.approx(gW[i, j], abs=1e-7)
    for i in range(len(b)):
        bp, bm = b.copy(), b.copy()
        bp[i] += h
        bm[i] -= h
        fd = (numpy_objective(W, bp, x, y, lam) - numpy_objective(W, bm, x, y, lam)) / (2 * h)
        assert fd == pytest.approx(gb[i], abs=1e-7)


def test_logistic_regression_loss_passes_gradcheck():
    model, x, y = lr_problem(N=6, D=4, K=3, seed=2)
    W, b = model.linear.weight, model.linear.bias
    tg.gradcheck(lambda W, b: tg.nn.functional.cross_entropy(tg.tensor(x) @ W.T + b,
                                                             tg.tensor(y)), [W, b])


def test_logistic_regression_predicts_the_same_on_every_device(device):
    model, x, _ = lr_problem(N=8, D=5, seed=4, dtype=np.float32)
    model.set_fill(x)
    observed = np.random.default_rng(0).random((8, 5)) < 0.5
    want = model.log_posterior(x, observed)
    model.to(device)
    assert model.linear.weight.device == device
    np.testing.assert_allclose(model.log_posterior(x, observed), want, rtol=1e-6)


def test_a_fresh_logistic_regression_says_every_class_is_equally_likely():
    model = LogisticRegression(7, 4)
    np.testing.assert_allclose(np.exp(model.log_posterior(np.ones((2, 7)))), 0.25, rtol=1e-6)


def test_imputation_puts_the_fill_at_missing_pixels_only():
    """Eq. (9): log p(y | x) with missing pixels equals log p(y | x~) of the image filled
    in by hand with the training means; NaN at a missing pixel is never read."""
    model, x, y = lr_problem(N=6, D=5, seed=3, dtype=np.float32)
    train = (np.random.default_rng(0).random((40, 5)) < 0.3).astype(np.float32)
    model.set_fill(train)
    mu = train.mean(axis=0)
    observed = np.random.default_rng(1).random((6, 5)) < 0.5
    filled = np.where(observed, x, mu)
    np.testing.assert_allclose(impute(x, observed, mu), filled)
    logits = filled @ model.linear.weight.numpy().T + model.linear.bias.numpy()
    want = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    junk = np.where(observed, x, np.nan)
    np.testing.assert_allclose(model.log_posterior(junk, observed), want, rtol=1e-5,
                               atol=1e-5)
    # filling with the mean differs from filling with 0 (else the test could not tell)
    assert np.abs(model.log_posterior(x * observed) - want).max() > 0.01


# ------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_alpha_must_be_a_positive_number(alpha):
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        BernoulliNaiveBayes(4, 2, alpha=alpha)


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_sizes_must_be_positive_integers(size):
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        BernoulliNaiveBayes(size, 2)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        LogisticRegression(3, size)


@pytest.mark.parametrize("value", [0.5, 2.0, -1.0, float("nan")])
def test_non_binary_pixels_are_refused_naming_the_place(value):
    nb = tiny_model(D=4, K=2)
    x = np.zeros((3, 4))
    x[1, 2] = value
    with pytest.raises(ValueError, match="binary .* at example 1, pixel 2"):
        nb.fit(x, np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="binary"):
        nb.log_posterior(x)
    with pytest.raises(ValueError, match="binary"):
        LogisticRegression(4, 2).log_posterior(x)
    observed = np.ones(4, bool)
    observed[2] = False       # the same value at a missing pixel: ignored
    nb.log_posterior(x, observed)


@pytest.mark.parametrize("y, match", [([0, 1, 2], "labels must lie in 0..1; got 2"),
                                      ([0, -1, 1], "labels must lie in 0..1; got -1"),
                                      ([0, 1], r"y must have shape \(3,\)"),
                                      ([0.0, 0.5, 1.0], "integer class labels"),
                                      ([[0, 1, 1]], r"y must have shape \(3,\)")])
def test_bad_labels_are_refused(y, match):
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=match):
        BernoulliNaiveBayes(4, 2).fit(x, np.array(y))
    with pytest.raises(ValueError, match=match):
        LogisticRegression(4, 2).gradient(x, np.array(y))


def test_shape_mismatches_are_refused():
    nb = BernoulliNaiveBayes(4, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 4\).*got \(3, 5\)"):
        nb.fit(np.zeros((3, 5)), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 4\).*got \(4,\)"):
        nb.log_posterior(np.zeros(4))
    with pytest.raises(ValueError, match=r"observed of shape \(3,\) does not match"):
        nb.log_posterior(np.zeros((2, 4)), np.ones(3, bool))
    with pytest.raises(ValueError, match=r"observed of shape \(3, 4\) does not match"):
        nb.log_posterior(np.zeros((2, 4)), np.ones((3, 4), bool))
    with pytest.raises(TypeError, match="observed must be a boolean mask"):
        nb.log_posterior(np.zeros((2, 4)), np.ones(4))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 4\)"):
        LogisticRegression(4, 2).log_posterior(np.zeros((2, 3)))


def test_sample_refuses_bad_requests():
    nb = tiny_model(D=3, K=2)
    with pytest.raises(ValueError, match="n must be a number of samples"):
        nb.sample(-1)
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        nb.sample(y=np.array([0, 2]))
    with pytest.raises(ValueError, match="n = 3 but 2 labels"):
        nb.sample(3, y=np.array([0, 1]))


# -------------------------------------------------------------------- learning on known data

def synthetic(nb_true, n, seed):
    x, y = nb_true.sample(n, generator=tg.random.generator(seed))
    return x, y


def bayes_accuracy(nb_true):
    """The Bayes-optimal accuracy sum_x max_k p(x, y = k), summed over all 2^D images."""
    _, P = brute_joint(nb_true)
    return P.max(axis=1).sum()


@pytest.fixture(scope="module")
def known_model():
    """A 10-pixel, 3-class naive Bayes with Bayes-optimal accuracy near 0.85."""
    return tiny_model(D=10, K=3, seed=11)


def train_logistic(x, y, steps=1500, lr=0.05):
    model = LogisticRegression(x.shape[1], int(y.max()) + 1)
    opt = optim.Adam(model.parameters(), lr=lr)
    xt, yt = tg.tensor(x), tg.tensor(y)
    for _ in range(steps):
        loss = model.loss(xt, yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_both_reach_the_bayes_optimal_accuracy_on_naive_bayes_data(known_model):
    """5,000 training examples drawn from the known model; 20,000 test examples. The true
    model's accuracy on them estimates the exact Bayes-optimal one (standard error 0.0025
    at 0.85: within 0.012), and both fitted classifiers come within 0.015 of the true
    model on the same test set (naive Bayes is the right model, logistic regression's
    family holds it, eq. (8)). A 20-example naive Bayes, for contrast, falls short."""
    best = bayes_accuracy(known_model)
    assert 0.6 < best < 0.95
    x, y = synthetic(known_model, 5000, seed=1)
    xt, yt = synthetic(known_model, 20000, seed=2)
    true_acc = (known_model.predict(xt) == yt).mean()
    assert abs(true_acc - best) < 0.012
    nb = BernoulliNaiveBayes(10, 3).fit(x, y)
    lr = train_logistic(x, y)
    assert (nb.predict(xt) == yt).mean() > true_acc - 0.015
    assert (lr.predict(xt) == yt).mean() > true_acc - 0.015
    small = BernoulliNaiveBayes(10, 3).fit(x[:20], y[:20])
    assert (small.predict(xt) == yt).mean() < true_acc - 0.02


def test_naive_bayes_stays_optimal_with_missing_pixels(known_model):
    """With half the pixels of every test example missing, the Bayes-optimal rule is the
    true model marginalised (eq. (5)); the fitted naive Bayes matches it within 0.015."""
    x, y = synthetic(known_model, 5000, seed=1)
    xt, yt = synthetic(known_model, 20000, seed=2)
    observed = missing_at_random(len(xt), 10, 0.5, tg.random.generator(3))
    true_acc = (known_model.predict(xt, observed) == yt).mean()
    nb = BernoulliNaiveBayes(10, 3).fit(x, y)
    assert (nb.predict(xt, observed) == yt).mean() > true_acc - 0.015
    assert true_acc < (known_model.predict(xt) == yt).mean() - 0.05   # the loss is real


# -------------------------------------------------------------------------------- the recipe

def experiment(**config):
    cls = get_experiment("naive-bayes")
    return cls({**cls.defaults, "model": "naive-bayes", "dataset": "mnist", "seed": 0,
                "device": "cpu", "train_images": 1000, "batch_size": 20, "eval_n": 300,
                "eval_fid": False, **config})


def test_registered_for_the_image_sets():
    assert REGISTRY["naive-bayes"].datasets == ("mnist", "fashion-mnist")


@pytest.mark.parametrize("option, value, match", [
    ("fractions", "0,0.1", "--fractions '0,0.1': 0 is outside"),
    ("fractions", "0.1,abc", "--fractions '0.1,abc': give numbers"),
    ("missing", "0.5,1", "--missing '0.5,1': 1 is outside"),
    ("imputation", "median", "--imputation 'median'"),
    ("threshold", 1.0, "--threshold 1.0"),
    ("alpha", 0.0, "--alpha 0.0")])
def test_options_are_checked(option, value, match):
    with pytest.raises(ConfigError, match=match):
        experiment(**{option: value})


@needs_mnist
def test_recipe_fits_both_models_and_reports_the_table(tmp_path):
    """60 steps (at lr 0.01) on 1,000 MNIST images: every naive Bayes is the closed form of
    its subset, the logistic regressions learn (their loss falls from log 10), the table
    has every fraction and missing fraction, the headline is its 100% / 0% entry, and the
    pictures are drawn."""
    exp = experiment(lr=0.01)
    fit(exp, str(tmp_path), steps=60, progress=False)
    sizes = exp.subset_sizes()
    assert [sizes[f] for f in exp.fractions] == [10, 100, 1000]
    for f in exp.fractions:
        x, y = exp.subset(f)
        want = BernoulliNaiveBayes(784, 10).fit(x, y).theta.numpy()
        np.testing.assert_array_equal(exp.naive_bayes[f].theta.numpy(), want)
    # the subsets are nested
    assert set(exp.permutation()[:10]) <= set(exp.permutation()[:100])
    log = read_log(str(tmp_path))
    assert log[0]["loss_100%"] == pytest.approx(math.log(10), rel=1e-5)
    assert np.mean([r["loss_100%"] for r in log[-10:]]) < 1.0
    m = exp.evaluate()
    table = m["accuracy"]
    assert set(table) == {"naive_bayes", "logistic_regression"}
    for model in table.values():
        assert set(model) == {"1%", "10%", "100%"}
        for row in model.values():
            assert set(row) == {"0%", "25%", "50%"}
            assert all(0 <= v <= 1 for v in row.values())
    assert m["test_accuracy"]["naive_bayes"] == table["naive_bayes"]["100%"]["0%"] > 0.7
    assert m["test_accuracy"]["logistic_regression"] == \
        table["logistic_regression"]["100%"]["0%"] > 0.7
    assert m["train_images"] == {"1%": 10, "10%": 100, "100%": 1000}
    x, _ = exp.test_set()
    assert m["nll_nats"] == pytest.approx(-exp.naive_bayes[1.0].log_evidence(x).mean())
    assert m["eval_images"] == 300 and m["data_variant"] == "threshold_binarized"
    for picture in ("accuracy_curves.png", "class_means.png", "samples.png",
                    "missing_pixels.png"):
        assert os.path.getsize(tmp_path / picture) > 1000
    # the checkpoint brings both models back: the same table in a fresh process's way
    again = load_experiment(str(tmp_path), get_experiment)
    assert again.evaluate()["accuracy"] == table


@needs_mnist
@pytest.mark.parametrize("how", ["zero", "mean"])
def test_the_imputation_option_sets_what_a_missing_pixel_reads(how):
    exp = experiment(imputation=how)
    exp.train_loader()
    for f in exp.fractions:
        x, _ = exp.subset(f)
        want = x.mean(axis=0) if how == "mean" else np.zeros(784)
        np.testing.assert_allclose(exp.logistic[f].fill.numpy(), want, rtol=1e-6)
    assert exp.logistic[0.01].fill.numpy().any() == (how == "mean")


@needs_mnist
def test_recipe_runs_on_every_device(device, tmp_path):
    """The logistic regressions train on the device (naive Bayes stays on the CPU); the
    table comes back as Python numbers."""
    exp = experiment(device=device, missing="0,0.5", fractions="0.1,1", eval_n=100)
    fit(exp, str(tmp_path), steps=3, progress=False)
    assert exp.logistic[1.0].linear.weight.device == device
    m = exp.evaluate()
    assert isinstance(m["accuracy"]["logistic_regression"]["100%"]["50%"], float)


@needs_mnist
def test_a_resumed_run_continues_exactly(tmp_path):
    """5 + 5 steps give the log of 10 straight, across the small subsets' epochs (the 1%
    subset of 10 images is one batch: it starts a new epoch every step)."""
    for folder, steps in (("straight", 10), ("resumed", 5), ("resumed", 10)):
        fit(experiment(), str(tmp_path / folder), steps=steps, progress=False)
    assert read_log(str(tmp_path / "resumed")) == read_log(str(tmp_path / "straight"))


@needs_mnist
def test_command_trains_evaluates_and_samples_a_class(tmp_path):
    run = str(tmp_path / "nb")
    assert main(["train", "naive-bayes", "--dataset", "mnist", "--steps", "5",
                 "--train-images", "500", "--eval-n", "100", "--fractions", "0.1,1",
                 "--missing", "0,0.5", "--out", run]) == 0
    assert main(["eval", run, "--no-classifier"]) == 0
    m = json.load(open(os.path.join(run, "metrics.json")))
    assert set(m["accuracy"]["naive_bayes"]) == {"10%", "100%"}
    assert set(m["accuracy"]["logistic_regression"]["10%"]) == {"0%", "50%"}
    assert "fid_lenet" not in m
    out = str(tmp_path / "threes.npy")
    assert main(["sample", run, "--n", "20", "--label", "3", "--out", out]) == 0
    threes = np.load(out)
    assert threes.shape == (20, 1, 28, 28) and set(np.unique(threes)) <= {0.0, 1.0}
