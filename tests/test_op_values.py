"""Forward values: every op agrees with NumPy, stays stable where it must, and keeps dtypes."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from conftest import DEVICES
from opcheck import arrays, broadcast_pair, floats, nonempty_shapes, shapes

UNARY = {
    "exp": (tg.exp, np.exp, floats(-5, 5)),
    "log": (tg.log, np.log, floats(0.01, 10)),
    "log1p": (tg.log1p, np.log1p, floats(-0.99, 10)),
    "sqrt": (tg.sqrt, np.sqrt, floats(0, 10)),
    "sin": (tg.sin, np.sin, floats()),
    "cos": (tg.cos, np.cos, floats()),
    "tanh": (tg.tanh, np.tanh, floats()),
    "sigmoid": (tg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), floats(-30, 30)),
    "abs": (tg.abs, np.abs, floats()),
    "neg": (tg.neg, np.negative, floats()),
    "sign": (tg.sign, np.sign, floats()),
}

BINARY = {
    "add": (tg.add, np.add), "sub": (tg.sub, np.subtract), "mul": (tg.mul, np.multiply),
    "maximum": (tg.maximum, np.maximum), "minimum": (tg.minimum, np.minimum),
}


def t(a, device):
    return tg.tensor(a, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_values(name, device, data):
    ours, ref, elements = UNARY[name]
    x = data.draw(arrays(data.draw(shapes), elements))
    np.testing.assert_allclose(ours(t(x, device)).numpy(), ref(x), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_values_broadcast_like_numpy(name, device, data):
    ours, ref = BINARY[name]
    sa, sb = data.draw(broadcast_pair())
    a, b = data.draw(arrays(sa, floats())), data.draw(arrays(sb, floats()))
    np.testing.assert_allclose(ours(t(a, device), t(b, device)).numpy(), ref(a, b))


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_reductions_match_numpy(device, data):
    x = data.draw(arrays(data.draw(nonempty_shapes), floats()))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    keep = data.draw(st.booleans())
    tx = t(x, device)
    for ours, ref in [(tx.sum, np.sum), (tx.mean, np.mean), (tx.max, np.max), (tx.min, np.min)]:
        np.testing.assert_allclose(ours(axis, keep).numpy(), ref(x, axis=axis, keepdims=keep))
    n = x.size if axis is None else x.shape[axis]
    for ddof in (0, 1):
        if n > ddof:
            np.testing.assert_allclose(tx.var(axis, ddof, keep).numpy(),
                                       np.var(x, axis=axis, ddof=ddof, keepdims=keep),
                                       atol=1e-12)
    # The naive reference log(sum(exp(x))) rounds at about 1e-16 absolute (log(exp(1e-100))
    # is 0 in floating point, where ours keeps 1e-100), hence the absolute tolerance.
    ref_lse = np.log(np.sum(np.exp(x), axis=axis, keepdims=keep))
    np.testing.assert_allclose(tg.logsumexp(tx, axis, keep).numpy(), ref_lse, atol=1e-14)


def test_logsumexp_is_stable_for_large_inputs(device):
    for value in (1000.0, -1000.0):
        x = t(np.full(1000, value, dtype=np.float32), device)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = tg.logsumexp(x, axis=0).item()
        assert out == pytest.approx(value + np.log(1000), rel=1e-6)
    x = tg.tensor([[-np.inf, -np.inf], [0.0, 1.0]], device=device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tg.logsumexp(x, axis=1)
        out.sum().backward()
    assert out.numpy()[0] == -np.inf
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0], [1 / (1 + np.e), np.e / (1 + np.e)]])


def test_sigmoid_is_stable_at_extremes(device):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = tg.sigmoid(t([-1000.0, 0.0, 1000.0], device)).numpy()
    np.testing.assert_allclose(y, [0.0, 0.5, 1.0])


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_matmul_matches_numpy(device, data):
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    ba, bb = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)
                       .map(lambda r: r.input_shapes))
    a = data.draw(arrays(ba + (n, k), floats()))
    b = data.draw(arrays(bb + (k, m), floats()))
    np.testing.assert_allclose((t(a, device) @ t(b, device)).numpy(), a @ b, atol=1e-12)
    v = data.draw(arrays((k,), floats()))
    np.testing.assert_allclose((t(a, device) @ t(v, device)).numpy(), a @ v, atol=1e-12)
    np.testing.assert_allclose((t(v, device) @ t(b, device)).numpy(), v @ b, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_indexing_matches_numpy(device, data):
    s = data.draw(nonempty_shapes)
    x = data.draw(arrays(s, floats()))
    tx = t(x, device)
    basic = data.draw(hnp.basic_indices(s, allow_newaxis=True, allow_ellipsis=True))
    np.testing.assert_array_equal(tx[basic].numpy(), x[basic])
    idx = data.draw(hnp.arrays(np.int64, 3, elements=st.integers(-s[0], s[0] - 1)))
    np.testing.assert_array_equal(tx[idx].numpy(), x[idx])
    np.testing.assert_array_equal(tx[t(idx, device)].numpy(), x[idx])  # a tensor index
    np.testing.assert_array_equal(tx[list(idx)].numpy(), x[list(idx)])
    mask = x > 0
    np.testing.assert_array_equal(tx[mask].numpy(), x[mask])
    np.testing.assert_array_equal(tx[tx > 0].numpy(), x[mask])


def test_repeated_integer_indices_add_their_gradients():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_shape_ops_match_numpy(device):
    x = np.arange(24.0).reshape(2, 3, 4)
    tx = t(x, device)
    np.testing.assert_array_equal(tx.reshape(4, -1).numpy(), x.reshape(4, -1))
    np.testing.assert_array_equal(tx.transpose(2, 0, 1).numpy(), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(tx.T.numpy(), x.T)
    np.testing.assert_array_equal(tx.mT.numpy(), np.swapaxes(x, -1, -2))
    np.testing.assert_array_equal(tx.flatten().numpy(), x.reshape(-1))
    np.testing.assert_array_equal(tx.flatten(1).numpy(), x.reshape(2, 12))
    np.testing.assert_array_equal(tx[:, :1].squeeze(1).numpy(), x[:, 0])
    assert tx.unsqueeze(-1).shape == (2, 3, 4, 1) and tx.unsqueeze(0).shape == (1, 2, 3, 4)
    assert tx[:1].expand(5, -1, -1).shape == (5, 3, 4)
    np.testing.assert_array_equal(tg.cat([tx, tx], axis=1).numpy(), np.concatenate([x, x], 1))
    np.testing.assert_array_equal(tg.stack([tx, tx], axis=-1).numpy(), np.stack([x, x], -1))
    parts = tx.split([1, 3], axis=2)
    np.testing.assert_array_equal(parts[1].numpy(), x[:, :, 1:])
    assert [p.shape[1] for p in tx.chunk(2, axis=1)] == [2, 1]
    assert [p.shape[2] for p in tx.split(3, axis=2)] == [3, 1]
    np.testing.assert_array_equal(tg.pad(tx, ((0, 0), (1, 2), (0, 1)), value=-1.0).numpy(),
                                  np.pad(x, ((0, 0), (1, 2), (0, 1)), constant_values=-1.0))
    np.testing.assert_array_equal(tg.pad(tx, 1).numpy(), np.pad(x, 1))
    np.testing.assert_array_equal(tx.flip(1).numpy(), np.flip(x, 1))
    np.testing.assert_array_equal(tx.clip(3, 10).numpy(), np.clip(x, 3, 10))
    cond = x > 5
    np.testing.assert_array_equal(tg.where(cond, tx, 0.0).numpy(), np.where(cond, x, 0.0))


def test_shape_op_errors_are_clear():
    x = tg.zeros(2, 3)
    with pytest.raises(ValueError, match="squeeze: axis 0 has length 2"):
        x.squeeze(0)
    with pytest.raises(ValueError, match="broadcast_to"):
        x.broadcast_to((3, 3))
    with pytest.raises(ValueError, match="split: sizes"):
        x.split([1, 1], axis=1)
    with pytest.raises(ValueError, match="transpose"):
        x.transpose(0, 0)
    with pytest.raises(ValueError, match="stack"):
        tg.stack([x, tg.zeros(3, 2)])
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="pad"):
        tg.pad(x, -1)


def test_comparisons_are_boolean_and_not_differentiable(device):
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    b = tg.tensor([3.0, 2.0, 1.0], device=device)
    for out, ref in [(a < b, [1, 0, 0]), (a <= b, [1, 1, 0]), (a > b, [0, 0, 1]),
                     (a >= b, [0, 1, 1]), (a == b, [0, 1, 0]), (a != b, [1, 0, 1]),
                     (a > 1.5, [0, 1, 1])]:
        assert out.dtype == np.bool_ and not out.requires_grad and out.grad_fn is None
        np.testing.assert_array_equal(out.numpy(), np.array(ref, dtype=bool))
    assert (a > 0).all().item() and (a > 2).any().item() and not (a > 5).any().item()


def test_astype_and_its_gradient_dtype():
    x = tg.tensor(np.array([1.5, 2.5]), requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float64
    assert not x.astype(np.int64).requires_grad


def test_ndarray_on_the_left_defers_to_tensor():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(y, tg.Tensor) and y.requires_grad


# --------------------------------------------------------------------------- +-inf in log space

@pytest.mark.parametrize("device", DEVICES)
def test_logsumexp_with_plus_infinity_has_the_softmax_limit_as_gradient(device):
    x = tg.tensor([np.inf, 1.0], device=device, requires_grad=True)
    y = tg.logsumexp(x)
    y.backward()
    assert y.item() == np.inf
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0])
    x = tg.tensor([[np.inf, 1000.0], [0.0, 0.0], [-np.inf, -np.inf], [np.inf, np.inf]],
                  device=device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no overflow on the way
        y = tg.logsumexp(x, axis=1)
        y.backward(tg.ones_like(y))  # (y.sum() would be inf - inf)
    np.testing.assert_allclose(y.numpy(), [np.inf, np.log(2), -np.inf, np.inf])
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0], [0.5, 0.5], [0, 0], [0.5, 0.5]])


@pytest.mark.parametrize("device", DEVICES)
def test_log_softmax_softmax_and_cross_entropy_at_plus_infinity(device):
    from tinygen.nn import functional as F
    x = tg.tensor([[np.inf, 1.0, np.inf], [0.0, 0.0, np.log(2.0)]], device=device,
                  requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ls = F.log_softmax(x, axis=1)
        sm = F.softmax(x, axis=1)
    np.testing.assert_allclose(ls.numpy(), [[-np.log(2), -np.inf, -np.log(2)],
                                            np.log([0.25, 0.25, 0.5])], rtol=1e-6)
    np.testing.assert_allclose(sm.numpy(), [[0.5, 0, 0.5], [0.25, 0.25, 0.5]], rtol=1e-6)
    (g,) = tg.grad(sm[:, 0].sum(), x)  # d softmax_0 / dx at the limit: finite
    assert np.isfinite(g.numpy()).all()
    ce = F.cross_entropy(tg.tensor([[np.inf, 0.0], [0.0, np.inf]], device=device,
                                   requires_grad=True), tg.tensor([0, 1], device=device))
    assert ce.item() == 0.0


def test_log_mean_exp_with_plus_infinity():
    from tinygen import metrics
    x = tg.tensor([[np.inf, 2.0], [1.0, 1.0]], requires_grad=True)
    y = metrics.log_mean_exp(x, axis=1)
    y.sum().backward()
    np.testing.assert_allclose(y.numpy(), [np.inf, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0], [0.5, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.log_mean_exp(np.array([np.inf, 1000.0])) == np.inf
