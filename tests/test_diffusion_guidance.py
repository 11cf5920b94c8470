"""tinygen.models.diffusion.guidance: classifier-free and classifier guidance, proven on
data whose every quantity is known in closed form, without training.

The data: two classes with equal weight, x_0 | c ~ N(m_c, S2 I) with m_0 = -1, m_1 = +1.
Then x_t | c ~ N(sqrt(a) m_c, v I) with a = alpha_bar_t and v = a S2 + 1 - a, so

    E[eps | x_t, c] = sqrt(1 - a) (x_t - sqrt(a) m_c) / v          the conditional eps
    E[eps | x_t]    = sum_c p(c | x_t) E[eps | x_t, c]             the unconditional one
    p(1 | x_t)      = sigmoid(2 sqrt(a) sum_i x_t,i / v)           the noisy classifier

- omega = 0 is the conditional model; eq. (2) mixes the two predictions as written;
- the guidance sign: with omega = 2 the samples fall on their class's side more often
  than with omega = 0, which matches p(x | c) (a sign error would lower it);
- classifier guidance: the engine's gradient of log p(c | x_t) and the mean shift
  s sigma_t^2 grad log p equal their closed forms; with s = 1 guided sampling of the
  unconditional model draws from p(x | c);
- label dropout replaces labels by the "no label" token at the stated rate.
"""
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen.models.diffusion import GaussianDiffusion, NoiseSchedule
from tinygen.models.diffusion.guidance import (classifier_free_eps, classifier_gradient,
                                               classifier_guided_mean,
                                               classifier_guided_sample, drop_labels)

S2 = 0.25           # each class has standard deviation 0.5: P(x > 0 | c = 1) = Phi(2)
DIFFUSION = GaussianDiffusion(NoiseSchedule.linear(1000))
AB = DIFFUSION.schedule.alpha_bars


def _a(t, x):
    return tg.tensor(AB[np.asarray(t)].reshape((-1,) + (1,) * (x.ndim - 1)))


def log_p_class(x, t, y):
    """log p(y | x_t) (N,) for the two-class data, as engine ops (differentiable in x)."""
    a = _a(t, x)
    v = a * S2 + 1 - a
    logit = (2 * a.sqrt() * x / v).sum(axis=1)          # log N(x; +) - log N(x; -)
    sign = tg.tensor(np.where(np.asarray(y) == 1, 1.0, -1.0))
    return -(-(sign * logit)).exp().log1p()             # log sigmoid(+-logit)


def exact_eps(x, t, y=None):
    """E[eps | x_t, y], or E[eps | x_t] for y None: the two-class data's exact predictors."""
    a = _a(t, x)
    v = a * S2 + 1 - a

    def given(m):
        return (1 - a).sqrt() * (x - a.sqrt() * m) / v
    if y is None:
        p1 = log_p_class(x, t, np.ones(x.shape[0], np.int64)).exp().reshape(-1, 1)
        return p1 * given(1.0) + (1 - p1) * given(-1.0)
    m = tg.tensor(np.where(np.asarray(y) == 1, 1.0, -1.0).reshape(-1, 1))
    return given(m)


def on_class_side(x, y):
    """How often x (N, D) lies on its class's side: the sum of coordinates' sign."""
    return float(((x.sum(axis=1) > 0) == (np.asarray(y) == 1)).mean())


def test_omega_zero_is_the_conditional_model():
    x = tg.tensor(np.random.default_rng(0).standard_normal((6, 2)))
    t, y = np.full(6, 300), np.array([0, 1, 0, 1, 1, 0])
    calls = []

    def counted(x, t, y=None):
        calls.append(y is None)
        return exact_eps(x, t, y)
    out = classifier_free_eps(counted, 0.0)(x, t, y)
    np.testing.assert_array_equal(out.numpy(), exact_eps(x, t, y).numpy())
    assert calls == [False]                       # one evaluation, the conditional one


def test_the_mix_is_eq_2():
    x = tg.tensor(np.random.default_rng(1).standard_normal((5, 2)))
    t, y, omega = np.full(5, 100), np.array([1, 0, 1, 1, 0]), 1.7
    expect = (1 + omega) * exact_eps(x, t, y).numpy() - omega * exact_eps(x, t).numpy()
    np.testing.assert_allclose(classifier_free_eps(exact_eps, omega)(x, t, y).numpy(), expect,
                               rtol=1e-12)
    # omega = -1 is the unconditional model; below it is refused
    np.testing.assert_allclose(classifier_free_eps(exact_eps, -1.0)(x, t, y).numpy(),
                               exact_eps(x, t).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="omega must be >= -1"):
        classifier_free_eps(exact_eps, -1.5)


def test_guidance_sign_raises_class_accuracy():
    """omega = 0 samples p(x | c): on the class's side with probability Phi(2) = 0.977
    (1-D); omega = 2 pushes away from the other class: clearly more often."""
    n = 4000
    y = np.arange(n) % 2
    phi2 = 0.5 * math.erfc(-2 / math.sqrt(2))
    accuracies = {}
    for omega in (0.0, 2.0):
        tg.manual_seed(0)
        x = DIFFUSION.sample(classifier_free_eps(exact_eps, omega), (n, 1), y=y).numpy()
        accuracies[omega] = on_class_side(x, y)
        if omega == 0:   # the conditional model draws p(x | c): mean and spread too
            assert abs(accuracies[0.0] - phi2) < 5 * math.sqrt(phi2 * (1 - phi2) / n) + 0.005
            assert x[y == 1].mean() == pytest.approx(1.0, abs=0.05)
    assert accuracies[2.0] > accuracies[0.0] + 0.015 and accuracies[2.0] > 0.99


def test_classifier_gradient_and_mean_shift_are_the_closed_forms():
    rng = np.random.default_rng(2)
    x = tg.tensor(rng.standard_normal((4, 3)))
    t, y = np.full(4, 250), np.array([1, 0, 0, 1])
    a = AB[250]
    v = a * S2 + 1 - a
    logit = 2 * math.sqrt(a) * x.numpy().sum(axis=1) / v
    sign = np.where(y == 1, 1.0, -1.0)
    # d/dx log sigmoid(sign * logit) = sign (1 - sigmoid(sign * logit)) d logit/dx
    expect = (sign * (1 - 1 / (1 + np.exp(-sign * logit))))[:, None] * (2 * math.sqrt(a) / v)
    g = classifier_gradient(log_p_class, x, t, y)
    np.testing.assert_allclose(g.numpy(), np.broadcast_to(expect, (4, 3)), rtol=1e-9)
    assert not x.requires_grad and g.grad_fn is None        # nothing left attached
    mean = tg.tensor(rng.standard_normal((4, 3)))
    shifted = classifier_guided_mean(mean, 0.02, g, 3.0)
    np.testing.assert_allclose(shifted.numpy() - mean.numpy(), 3.0 * 0.02 * g.numpy(),
                               rtol=1e-12)


def test_classifier_guidance_with_scale_1_draws_the_class():
    """grad log p(x_t) + grad log p(c | x_t) = grad log p(x_t | c): with the exact
    unconditional eps and the exact noisy classifier, s = 1 samples p(x | c)."""
    n = 3000
    y = np.arange(n) % 2
    tg.manual_seed(1)
    x = classifier_guided_sample(DIFFUSION, exact_eps, log_p_class, y, 1.0, (n, 1)).numpy()
    phi2 = 0.5 * math.erfc(-2 / math.sqrt(2))
    assert abs(on_class_side(x, y) - phi2) < 5 * math.sqrt(phi2 * (1 - phi2) / n) + 0.005
    assert x[y == 1].mean() == pytest.approx(1.0, abs=0.05)
    assert x[y == 0].mean() == pytest.approx(-1.0, abs=0.05)
    assert x[y == 1].std() == pytest.approx(0.5, rel=0.08)
    # and s = 0 is the unconditional model: half on either side whatever the label
    tg.manual_seed(1)
    x0 = classifier_guided_sample(DIFFUSION, exact_eps, log_p_class, y, 0.0, (n, 1)).numpy()
    assert abs(on_class_side(x0, y) - 0.5) < 0.05


def test_label_dropout():
    rng = np.random.default_rng(0)
    y = np.arange(20000) % 10
    dropped = drop_labels(y, 0.1, 10, rng)
    assert np.array_equal(y, np.arange(20000) % 10)          # the input is left alone
    gone = dropped == 10
    assert abs(gone.mean() - 0.1) < 5 * math.sqrt(0.09 / 20000)
    assert np.array_equal(dropped[~gone], y[~gone])
    assert (drop_labels(y, 0.0, 10, rng) == y).all() and (drop_labels(y, 1.0, 10, rng) == 10).all()
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(y, 1.5, 10, rng)


def test_classifier_guided_eps_is_the_score_shift_and_ddim_draws_the_class():
    """eps' = eps - s sqrt(1 - a) grad log p(c | x_t): with s = 1 it is the exact
    conditional eps (Bayes: grad log p(x_t | c) = grad log p(x_t) + grad log p(c | x_t)),
    so deterministic DDIM with it draws p(x | c)."""
    from tinygen.models.diffusion.ddim import ddim_sample
    from tinygen.models.diffusion.guidance import classifier_guided_eps
    rng = np.random.default_rng(4)
    x = tg.tensor(rng.standard_normal((6, 1)))
    t, y = np.full(6, 400), np.array([0, 1, 1, 0, 1, 0])
    guided = classifier_guided_eps(DIFFUSION, exact_eps, log_p_class, y, 1.0)
    np.testing.assert_allclose(guided(x, t).numpy(), exact_eps(x, t, y).numpy(), rtol=1e-9,
                               atol=1e-12)
    unguided = classifier_guided_eps(DIFFUSION, exact_eps, log_p_class, y, 0.0)
    np.testing.assert_array_equal(unguided(x, t).numpy(), exact_eps(x, t).numpy())
    n = 2000
    labels = np.arange(n) % 2
    out = ddim_sample(DIFFUSION, classifier_guided_eps(DIFFUSION, exact_eps, log_p_class,
                                                       labels, 1.0), (n, 1), 1000).numpy()
    assert out[labels == 1].mean() == pytest.approx(1.0, abs=0.05)
    assert out[labels == 0].mean() == pytest.approx(-1.0, abs=0.05)
