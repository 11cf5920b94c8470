"""Values of the linear-algebra ops (slogdet, inv, solve, solve_triangular) against
references that share no code with them: the determinant as Leibniz's sum over
permutations, products that must give the identity or the right-hand side, NumPy's
solve on the explicit triangle. Their gradients are checked in test_op_gradients.py."""
import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from conftest import DEVICES
from opcheck import MAX_SIDE, floats
from test_op_gradients import conditioned_matrices, dense, triangular_matrices

batch_shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)


def t(a, device, **kw):
    return tg.tensor(a, device=device, **kw)


def leibniz(m):
    """det m = sum over permutations p of sign(p) prod_i m[i, p(i)], and the same sum of
    absolute values (the scale of the rounding error of any way of computing det m)."""
    n = m.shape[-1]
    det = scale = 0.0
    for p in itertools.permutations(range(n)):
        inversions = sum(p[i] > p[j] for i in range(n) for j in range(i + 1, n))
        term = math.prod(m[i, p[i]] for i in range(n))
        det += -term if inversions % 2 else term
        scale += abs(term)
    return det, scale


def each_matrix(a):
    return a.reshape((-1,) + a.shape[-2:])


# --------------------------------------------------------------------------- slogdet

@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_slogdet_matches_leibniz_on_integer_matrices(device, data):
    """Integer entries make Leibniz's sum exact, zero determinants and negative ones
    frequent: the sign must match exactly, log|det| to rounding."""
    n = data.draw(st.integers(1, MAX_SIDE))
    a = data.draw(hnp.arrays(np.int64, data.draw(batch_shapes) + (n, n),
                             elements=st.integers(-5, 5))).astype(np.float64)
    sign, logabsdet = tg.slogdet(t(a, device))
    assert sign.shape == logabsdet.shape == a.shape[:-2]
    for m, s, l in zip(each_matrix(a), sign.numpy().reshape(-1), logabsdet.numpy().reshape(-1)):
        det, scale = leibniz(m)
        if det == 0:  # LU may leave a rounding error in place of 0
            assert s == 0 or s * math.exp(l) == pytest.approx(0.0, abs=1e-12 * scale)
        else:
            assert s == np.sign(det), (m, det)
            assert l == pytest.approx(math.log(abs(det)), abs=1e-12 * scale / abs(det))


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_slogdet_matches_leibniz_and_numpy(device, data):
    n = data.draw(st.integers(1, MAX_SIDE))
    shape = data.draw(batch_shapes) + (n, n)
    a = data.draw(st.one_of(conditioned_matrices(shape[:-2], n),
                            dense(shape, floats())))
    sign, logabsdet = tg.slogdet(t(a, device))
    want = np.linalg.slogdet(a)
    for m, s, l, ws, wl in zip(each_matrix(a), sign.numpy().reshape(-1),
                               logabsdet.numpy().reshape(-1), want[0].reshape(-1),
                               want[1].reshape(-1)):
        det, scale = leibniz(m)
        assert s * math.exp(l) == pytest.approx(det, abs=1e-12 * scale)
        if abs(det) > 1e-9 * scale:  # away from 0, where rounding could flip the sign
            assert s == ws == np.sign(det)
            assert l == pytest.approx(wl, abs=1e-12 * scale / abs(det))


def test_slogdet_sign_and_limits(device):
    # a swap of two rows: det -1
    sign, logabsdet = tg.slogdet(t([[0.0, 1.0], [1.0, 0.0]], device, dtype="float64"))
    assert sign.item() == -1.0 and logabsdet.item() == 0.0
    # det = 1e400 overflows float64; its log does not
    sign, logabsdet = tg.slogdet(t(np.diag([-1e200, 1e200]), device))
    assert sign.item() == -1.0
    assert logabsdet.item() == pytest.approx(400 * math.log(10), rel=1e-14)
    # singular: sign 0, log|det| = -inf
    sign, logabsdet = tg.slogdet(t([[1.0, 2.0], [2.0, 4.0]], device, dtype="float64"))
    assert sign.item() == 0.0 and logabsdet.item() == -np.inf


def test_slogdet_sign_is_a_constant(device):
    a = t(np.array([[2.0, 1.0], [1.0, -3.0]]), device, requires_grad=True)
    sign, logabsdet = tg.slogdet(a)
    assert not sign.requires_grad and sign.grad_fn is None
    assert logabsdet.requires_grad
    logabsdet.backward()
    np.testing.assert_allclose(a.grad.numpy(), np.linalg.inv(a.numpy()).T, rtol=1e-14)


# --------------------------------------------------------------------------- inv and solve

@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_inv_times_a_is_the_identity(device, data):
    n = data.draw(st.integers(1, MAX_SIDE))
    a = data.draw(conditioned_matrices(data.draw(batch_shapes), n))
    y = tg.inv(t(a, device)).numpy()
    assert y.shape == a.shape
    eye = np.broadcast_to(np.eye(n), a.shape)
    np.testing.assert_allclose(y @ a, eye, atol=1e-13)
    np.testing.assert_allclose(a @ y, eye, atol=1e-13)


@st.composite
def solve_shapes(draw, n):
    """(batch axes of a, shape of b): b matrices whose batch axes broadcast against a's,
    or one vector b (n,) against any batch of a."""
    if draw(st.booleans()):
        return draw(batch_shapes), (n,)
    ba, bb = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)
                  .map(lambda r: r.input_shapes))
    return ba, bb + (n, draw(st.integers(1, MAX_SIDE)))


def _as_matrices(a, b):
    """NumPy arrays a (..., n, n) and b (..., n, k) with one batch shape, b a vector made
    a column: the reference form of a solve."""
    bm = b[:, None] if b.ndim == 1 else b
    batch = np.broadcast_shapes(a.shape[:-2], bm.shape[:-2])
    return np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(bm, batch + bm.shape[-2:])


def _expected_shape(a, b):
    if b.ndim == 1:
        return a.shape[:-1]
    return np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:]


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_solve_gives_a_x_equal_b(device, data):
    n = data.draw(st.integers(1, MAX_SIDE))
    batch, sb = data.draw(solve_shapes(n))
    a = data.draw(conditioned_matrices(batch, n))
    b = data.draw(dense(sb, floats()))
    x = tg.solve(t(a, device), t(b, device)).numpy()
    assert x.shape == _expected_shape(a, b)
    am, bm = _as_matrices(a, b)
    xm = x[..., None] if b.ndim == 1 else x
    np.testing.assert_allclose(am @ xm, bm, atol=1e-12)
    np.testing.assert_allclose(xm, np.linalg.solve(am, bm), rtol=1e-10, atol=1e-12)


def test_solve_reads_only_a_1d_b_as_a_vector(device):
    """NumPy 2's rule: b (n,) is a vector; b (..., n) with more axes is a matrix."""
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    b = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(tg.solve(t(a, device), t(b, device)).numpy(),
                               np.linalg.solve(a, b), rtol=1e-14)  # (2, 2): a matrix
    x = tg.solve(t(np.stack([a, 2 * a]), device), t(b[0], device)).numpy()
    np.testing.assert_allclose(x, [np.linalg.solve(a, b[0]), np.linalg.solve(2 * a, b[0])],
                               rtol=1e-14)


# --------------------------------------------------------------------------- solve_triangular

def _triangle(a, lower, unit_diagonal):
    """The triangular matrix that solve_triangular reads from a."""
    tri = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        tri = tri.copy()
        tri[..., np.arange(a.shape[-1]), np.arange(a.shape[-1])] = 1.0
    return tri


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_solve_triangular_matches_solve_on_the_triangle(device, data):
    n = data.draw(st.integers(1, MAX_SIDE))
    lower, unit_diagonal = data.draw(st.booleans()), data.draw(st.booleans())
    batch, sb = data.draw(solve_shapes(n))
    a = data.draw(triangular_matrices(batch, n, lower, unit_diagonal))
    b = data.draw(dense(sb, floats()))
    x = tg.solve_triangular(t(a, device), t(b, device), lower=lower,
                            unit_diagonal=unit_diagonal).numpy()
    assert x.shape == _expected_shape(a, b)
    am, bm = _as_matrices(_triangle(a, lower, unit_diagonal), b)
    xm = x[..., None] if b.ndim == 1 else x
    np.testing.assert_allclose(xm, np.linalg.solve(am, bm), rtol=1e-10, atol=1e-12)


def test_solve_triangular_ignores_the_other_triangle(device):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 4, 4)) + 4 * np.eye(4)
    b = rng.standard_normal((2, 4, 3))
    for lower in (True, False):
        for unit_diagonal in (True, False):
            read = _triangle(np.ones((4, 4)), lower, unit_diagonal) != 0
            if unit_diagonal:
                read[np.arange(4), np.arange(4)] = False
            garbage = np.where(read, a, rng.standard_normal(a.shape) * 100)
            ta = t(garbage, device, requires_grad=True)
            x = tg.solve_triangular(ta, t(b, device), lower=lower, unit_diagonal=unit_diagonal)
            np.testing.assert_allclose(
                x.numpy(), np.linalg.solve(_triangle(a, lower, unit_diagonal), b), rtol=1e-12)
            x.sum().backward()
            g = ta.grad.numpy()
            assert np.all(g[:, ~read] == 0.0) and np.all(g[:, read] != 0.0)


# --------------------------------------------------------------------------- dtypes and errors

def test_float32_stays_float32(device):
    rng = np.random.default_rng(1)
    a = t((rng.standard_normal((2, 3, 3)) + 3 * np.eye(3)).astype(np.float32), device,
          requires_grad=True)
    b = t(rng.standard_normal((3, 2)).astype(np.float32), device, requires_grad=True)
    outs = [*tg.slogdet(a), tg.inv(a), tg.solve(a, b), tg.solve(a, b[:, 0]),
            tg.solve_triangular(a, b), tg.solve_triangular(a, b, lower=False, unit_diagonal=True)]
    assert [o.dtype for o in outs] == [np.float32] * len(outs)
    assert all(o.device == device for o in outs)  # on the GPU too (e.g. slogdet's sign)
    tg.stack([o.sum() for o in outs[1:]]).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float32
    np.testing.assert_allclose(tg.inv(a).numpy(), np.linalg.inv(a.numpy().astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


def _raises(fn, *shapes_and_words):
    """fn raises a ValueError whose message holds each of shapes_and_words."""
    with pytest.raises(ValueError) as info:
        fn()
    for s in shapes_and_words:
        assert re.search(re.escape(str(s)), str(info.value)), (s, str(info.value))


@pytest.mark.parametrize("name", ["slogdet", "inv"])
def test_unary_ops_need_square_matrices(name, device):
    fn = getattr(tg, name)
    for shape in [(3,), (2, 3), (4, 3, 2)]:
        _raises(lambda: fn(t(np.ones(shape), device)), f"{name}:", shape, "square")


@pytest.mark.parametrize("name", ["solve", "solve_triangular"])
def test_solves_name_both_shapes_in_their_errors(name, device):
    fn = getattr(tg, name)

    def check(sa, sb, *words):
        _raises(lambda: fn(t(np.ones(sa), device), t(np.ones(sb), device)),
                f"{name}:", sa, sb, *words)

    check((2, 3), (2, 1), "square")                  # a not square
    check((3,), (3,), "square")                      # a not a matrix
    check((3, 3), (2,), "2 entries")                 # vector of the wrong length
    check((3, 3), (2, 1), "3 rows")                  # matrix with the wrong rows
    check((2, 3, 3), (2, 3), "b[..., None]")         # a batch of vectors: not read so
    check((3, 3), (), "vector")                      # a 0-d right-hand side
    check((2, 3, 3), (4, 3, 1), "broadcast")         # batch axes that do not broadcast
