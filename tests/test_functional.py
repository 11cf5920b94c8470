"""tinygen.nn.functional: activations and losses against their formulas, stability, errors."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
from tinygen.nn import functional as F
from conftest import DEVICES
from opcheck import arrays, floats, nonempty_shapes


def t(a, device="cpu", **kw):
    return tg.tensor(a, device=device, **kw)


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_activations_match_formulas(device, data):
    x = data.draw(arrays(data.draw(nonempty_shapes), floats(-20, 20)))
    tx = t(x, device)
    np.testing.assert_allclose(F.relu(tx).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(F.leaky_relu(tx, 0.2).numpy(), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_allclose(F.softplus(tx).numpy(), np.log1p(np.exp(x)), rtol=1e-12)
    np.testing.assert_allclose(F.softplus(tx, beta=2).numpy(), np.log1p(np.exp(2 * x)) / 2,
                               rtol=1e-12)
    np.testing.assert_allclose(F.silu(tx).numpy(), x / (1 + np.exp(-x)), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(F.elu(tx).numpy(), np.where(x > 0, x, np.exp(x) - 1), atol=1e-15)
    np.testing.assert_allclose(F.logsigmoid(tx).numpy(), -np.log1p(np.exp(-x)), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_softmax_and_log_softmax(device, data):
    x = data.draw(arrays(data.draw(nonempty_shapes), floats(-50, 50)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    p = F.softmax(t(x, device), axis).numpy()
    ref = np.exp(x - x.max(axis, keepdims=True))
    ref /= ref.sum(axis, keepdims=True)
    np.testing.assert_allclose(p, ref, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(p.sum(axis), 1.0)
    np.testing.assert_allclose(F.log_softmax(t(x, device), axis).numpy(),
                               np.log(ref), rtol=1e-10, atol=1e-10)


def test_log_softmax_is_stable_for_huge_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = F.log_softmax(t([[1000.0, 0.0, -1000.0]])).numpy()
    np.testing.assert_allclose(out, [[0.0, -1000.0, -2000.0]])


@given(data=st.data())
def test_losses_match_formulas(data):
    shape = data.draw(nonempty_shapes)
    a = data.draw(arrays(shape, floats(-5, 5)))
    b = data.draw(arrays(shape, floats(-5, 5)))
    y = (data.draw(arrays(shape, floats(0, 1))))
    p = 1 / (1 + np.exp(-a))
    np.testing.assert_allclose(F.mse_loss(t(a), t(b)).item(), np.mean((a - b) ** 2))
    np.testing.assert_allclose(F.mse_loss(t(a), t(b), reduction="sum").item(), np.sum((a - b) ** 2))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(F.binary_cross_entropy(t(p), t(y), reduction="none").numpy(), bce,
                               rtol=1e-9)
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(t(a), t(y), "none").numpy(),
                               bce, rtol=1e-9)
    var = np.exp(b)
    gnll = 0.5 * (np.log(var) + (a - y) ** 2 / var)
    np.testing.assert_allclose(F.gaussian_nll_loss(t(a), t(y), t(var), reduction="none").numpy(),
                               gnll, rtol=1e-9)
    np.testing.assert_allclose(F.gaussian_nll_loss(t(a), t(y), t(var), full=True).item(),
                               np.mean(gnll) + 0.5 * math.log(2 * math.pi), rtol=1e-9)


@given(data=st.data())
def test_cross_entropy_and_nll(data):
    n, c = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    logits = data.draw(arrays((n, c), floats(-10, 10)))
    target = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ref = -logp[np.arange(n), target]
    np.testing.assert_allclose(F.cross_entropy(t(logits), t(target), reduction="none").numpy(), ref,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(F.nll_loss(t(logp), t(target)).item(), ref.mean(), rtol=1e-9,
                               atol=1e-12)


def test_loss_gradients():
    rng = np.random.default_rng(0)
    a = t(rng.standard_normal((3, 4)), requires_grad=True)
    y = t(rng.uniform(0, 1, (3, 4)))
    target = t(np.array([0, 3, 1]))
    assert tg.gradcheck(lambda a: F.binary_cross_entropy_with_logits(a, y), [a])
    assert tg.gradgradcheck(lambda a: F.binary_cross_entropy_with_logits(a, y), [a])
    assert tg.gradcheck(lambda a: F.cross_entropy(a, target), [a])
    assert tg.gradgradcheck(lambda a: F.cross_entropy(a, target), [a])
    assert tg.gradcheck(lambda a: F.binary_cross_entropy(tg.sigmoid(a), y), [a])
    v = t(rng.uniform(0.5, 2, (3, 4)), requires_grad=True)
    assert tg.gradcheck(lambda a, v: F.gaussian_nll_loss(a, y, v), [a, v])


def test_bce_is_finite_at_the_extremes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits = t([-100.0, 100.0, 0.0], requires_grad=True)
        loss = F.binary_cross_entropy_with_logits(logits, t([1.0, 0.0, 1.0]), reduction="none")
        np.testing.assert_allclose(loss.numpy(), [100.0, 100.0, math.log(2)], rtol=1e-6)
        loss.sum().backward()
        np.testing.assert_allclose(logits.grad.numpy(), [-1.0, 1.0, -0.5], rtol=1e-6)
        p = t([0.0, 1.0, 0.5], requires_grad=True)
        loss = F.binary_cross_entropy(p, t([1.0, 0.0, 1.0]), reduction="none")
        np.testing.assert_allclose(loss.numpy(), [100.0, 100.0, math.log(2)], rtol=1e-6)
        loss.sum().backward()
        assert np.isfinite(p.grad.numpy()).all()


def test_one_hot():
    out = F.one_hot(t([2, 0, 1]), 4)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), np.eye(4)[[2, 0, 1]])
    assert F.one_hot(t([[1], [2]])).shape == (2, 1, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.one_hot(t([3]), 3)
    with pytest.raises(TypeError):
        F.one_hot(t([1.0]), 3)


def test_interpolate_repeats_pixels():
    x = np.arange(6.0).reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(F.interpolate(t(x), 2).numpy(),
                                  x.repeat(2, axis=2).repeat(2, axis=3))
    with pytest.raises(ValueError, match="scale_factor"):
        F.interpolate(t(x), 1.5)


def test_loss_argument_errors():
    with pytest.raises(ValueError, match=r"mse_loss: input of shape \(3,\) and target of shape \(4,\)"):
        F.mse_loss(tg.zeros(3), tg.zeros(4))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(tg.zeros(3), tg.zeros(3), reduction="avg")
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(tg.zeros(2, 3), tg.zeros(2))
    with pytest.raises(ValueError, match=r"\(N, C\) and target \(N,\)"):
        F.cross_entropy(tg.zeros(2, 3), t([0, 1, 2]))


# --------------------------------------------------------------------------- edges and checks

@pytest.mark.parametrize("device", DEVICES)
def test_bce_with_logits_at_infinite_logits_is_the_limit(device):
    l = t([-np.inf, np.inf, -np.inf, np.inf], device, requires_grad=True)
    y = t([0.0, 0.0, 1.0, 1.0], device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy_with_logits(l, y, reduction="none")
        (g,) = tg.grad(loss.sum(), l)
    np.testing.assert_array_equal(loss.numpy(), [0, np.inf, np.inf, 0])
    np.testing.assert_array_equal(g.numpy(), [0, 1, -1, 0])  # sigmoid(l) - y: finite


def test_bernoulli_log_prob_at_infinite_logits_is_the_limit():
    from tinygen.distributions import Bernoulli
    b = Bernoulli(logits=t([np.inf, -np.inf, np.inf]), validate_args=False)
    np.testing.assert_array_equal(b.log_prob(t([1.0, 0.0, 0.0])).numpy(), [0, 0, -np.inf])
    np.testing.assert_array_equal(b.entropy().numpy(), [0, 0, 0])


def test_gaussian_nll_clamps_var_without_cutting_its_gradient():
    """As PyTorch (clamp under no_grad): the value uses max(var, eps), the gradient with
    respect to var is the derivative at the clamped value: 0.5 (1/eps - d^2/eps^2)."""
    var = t([1e-8], requires_grad=True)
    loss = F.gaussian_nll_loss(t([2.0]), t([0.0]), var, eps=1.0)
    loss.backward()
    assert loss.item() == pytest.approx(2.0)
    np.testing.assert_allclose(var.grad.numpy(), [-1.5])


@pytest.mark.parametrize("labels", [[0, -1], [0, 3], [7, 1]])
def test_class_indices_out_of_range_are_refused(labels):
    logits = t(np.zeros((2, 3), np.float32))
    with pytest.raises(IndexError, match=r"target -?\d+ is out of bounds.*\[0, 3\)"):
        F.cross_entropy(logits, t(labels))
    with pytest.raises(IndexError, match="out of bounds"):
        F.nll_loss(F.log_softmax(logits, axis=1), t(labels))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        F.one_hot(t(labels), 3)


def test_one_hot_refuses_a_bad_number_of_classes():
    with pytest.raises(ValueError, match="num_classes must be an integer >= 0, or -1.*-2"):
        F.one_hot(t([0, 1]), -2)
