"""Every differentiable op's gradient, first and second order, as a property test.

Each OpSpec below draws inputs in the op's domain (away from kinks and poles, where a
central difference straddles two pieces) and hands them to ``opcheck.check_op``.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from conftest import DEVICES
from conv_reference import conv_geometry
from opcheck import (MAX_SIDE, EdgeSpec, OpSpec, arrays, binary, broadcast_pair, check_edges,
                     check_op, extreme_floats, floats, grid, nearly_constant, nonempty_shapes,
                     shapes, unary)


# --------------------------------------------------------------------------- parameter strategies

def axis_params(shape, allow_none=True):
    """An axis argument for a reduction over ``shape``: None, an int, or a tuple."""
    nd = len(shape)
    options = [st.none()] if allow_none else []
    if nd:
        options.append(st.integers(-nd, nd - 1))
        options.append(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                unique=True).map(tuple))
    return st.fixed_dictionaries({"axis": st.one_of(options), "keepdims": st.booleans()})


@st.composite
def matmul_case(draw):
    n, k, m = (draw(st.integers(1, MAX_SIDE)) for _ in range(3))
    kind = draw(st.sampled_from(["matrix", "batched", "vector-left", "vector-right"]))
    if kind == "batched":
        ba, bb = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)
                      .map(lambda r: r.input_shapes))
        sa, sb = ba + (n, k), bb + (k, m)
    elif kind == "vector-left":
        sa, sb = (k,), (k, m)
    elif kind == "vector-right":
        sa, sb = (n, k), (k,)
    else:
        sa, sb = (n, k), (k, m)
    return [draw(arrays(sa, floats())), draw(arrays(sb, floats()))], {}


@st.composite
def reshape_case(draw):
    s = draw(shapes)
    size = int(np.prod(s))
    d = draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]))
    target = draw(st.sampled_from([(size,), (d, size // d), (size // d, 1, d), (-1, d)]))
    return [draw(arrays(s, floats()))], {"shape": target}


@st.composite
def transpose_case(draw):
    s = draw(shapes)
    axes = tuple(draw(st.permutations(range(len(s)))))
    return [draw(arrays(s, floats()))], {"axes": axes}


@st.composite
def broadcast_to_case(draw):
    s, other = draw(broadcast_pair())
    return [draw(arrays(s, floats()))], {"shape": np.broadcast_shapes(s, other)}


@st.composite
def basic_index_case(draw):
    s = draw(nonempty_shapes)
    index = draw(hnp.basic_indices(s, allow_newaxis=True, allow_ellipsis=True))
    return [draw(arrays(s, floats()))], {"index": index}


@st.composite
def integer_index_case(draw):
    """Integer arrays with repeats, optionally mixed with a slice."""
    s = draw(nonempty_shapes)
    idx = draw(hnp.arrays(np.int64, st.integers(1, 6), elements=st.integers(-s[0], s[0] - 1)))
    index = (idx, slice(None, None, -1)) if len(s) > 1 and draw(st.booleans()) else idx
    return [draw(arrays(s, floats()))], {"index": index}


@st.composite
def mask_index_case(draw):
    s = draw(nonempty_shapes)
    mask = draw(hnp.arrays(np.bool_, s))
    return [draw(arrays(s, floats()))], {"mask": mask}


@st.composite
def cat_case(draw):
    s = draw(nonempty_shapes)
    axis = draw(st.integers(-len(s), len(s) - 1))
    k = draw(st.integers(1, 3))
    ins = []
    for _ in range(k):
        si = list(s)
        si[axis] = draw(st.integers(1, 3))
        ins.append(draw(arrays(tuple(si), floats())))
    return ins, {"axis": axis}


@st.composite
def stack_case(draw):
    s = draw(shapes)
    axis = draw(st.integers(-len(s) - 1, len(s)))
    ins = [draw(arrays(s, floats())) for _ in range(draw(st.integers(1, 3)))]
    return ins, {"axis": axis}


@st.composite
def split_case(draw):
    s = draw(nonempty_shapes)
    axis = draw(st.integers(0, len(s) - 1))
    n = s[axis]
    how = draw(st.one_of(st.integers(1, n + 1),
                         st.lists(st.integers(0, n), min_size=1, max_size=3)
                         .filter(lambda l: sum(l) <= n).map(lambda l: l + [n - sum(l)])))
    return [draw(arrays(s, floats()))], {"how": how, "axis": axis}


@st.composite
def pad_case(draw):
    s = draw(shapes)
    widths = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in s)
    return [draw(arrays(s, floats()))], {"pad_width": widths, "value": draw(floats())}


@st.composite
def where_case(draw):
    sc, sa, sb = draw(broadcast_pair(3))
    return ([draw(arrays(sa, floats())), draw(arrays(sb, floats()))],
            {"cond": draw(hnp.arrays(np.bool_, sc))})


def flip_params(shape):
    nd = len(shape)
    axis = st.none() if nd == 0 else st.one_of(
        st.none(), st.integers(-nd, nd - 1),
        st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple))
    return st.fixed_dictionaries({"axis": axis})


def var_params(shape):
    return axis_params(shape).flatmap(
        lambda p: st.fixed_dictionaries({**{k: st.just(v) for k, v in p.items()},
                                         "ddof": st.sampled_from([0, 1])}))


def _var(x, axis, keepdims, ddof):
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    if n - ddof <= 0:
        ddof = 0
    return x.var(axis=axis, ddof=ddof, keepdims=keepdims)


def _index_with(x, index, on):
    return tg.getitem(x, index)


@st.composite
def conv_case(draw, transposed=False, bias=True):
    g = draw(conv_geometry(transposed=transposed, max_size=5))
    cin, cout = g["Cg"] * g["groups"], g["Og"] * g["groups"]
    x = draw(arrays((g["N"], cin) + g["size"], floats()))
    w = draw(arrays((cin, g["Og"]) + g["kernel"] if transposed else
                    (cout, g["Cg"]) + g["kernel"], floats()))
    params = {k: g[k] for k in ("stride", "padding", "dilation", "groups")}
    if transposed:
        params["output_padding"] = g["output_padding"]
    ins = [x, w] + ([draw(arrays((cout,), floats()))] if bias else [])
    return ins, params


@st.composite
def unfold_case(draw, adjoint=False):
    """Inputs of unfold (an image), or of fold (columns of the matching shape)."""
    g = draw(conv_geometry(max_size=5))
    geometry = {k: g[k] for k in ("stride", "padding", "dilation")}
    C = g["Cg"]
    if not adjoint:
        return [draw(arrays((g["N"], C) + g["size"], floats()))], {"kernel_size": g["kernel"],
                                                                  **geometry}
    Ho, Wo = (((n + 2 * p - d * (k - 1) - 1) // s + 1) for n, k, s, p, d in
              zip(g["size"], g["kernel"], g["stride"], g["padding"], g["dilation"]))
    cols = draw(arrays((C,) + g["kernel"] + (g["N"], Ho, Wo), floats()))
    return [cols], {"output_size": g["size"], "kernel_size": g["kernel"], **geometry}


@st.composite
def pool_case(draw, distinct=False):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    size = (draw(st.integers(k[0], 5)), draw(st.integers(k[1], 5)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + size
    x = draw(arrays(shape, grid(-8, 8) if distinct else floats(), unique=distinct))
    return [x], {"kernel_size": k, "stride": stride, "padding": padding}


# --------------------------------------------------------------------------- matrices for linalg

def dense(shape, elements):
    """An array with every element drawn on its own (hypothesis's arrays otherwise fill
    most of an array with one repeated value: matrices of rank 1, triangles of equal
    entries, which would make most of the drawn matrices special)."""
    return hnp.arrays(np.float64, shape, elements=elements, fill=st.nothing())


@st.composite
def conditioned_matrices(draw, batch, n, cond=None):
    """A batch of n x n matrices U diag(s) V^T, U and V orthogonal (the Q of a drawn
    matrix's QR, whatever the matrix), so that the singular values |s| are chosen: in
    [1/2, 2] by default (condition number at most 4); with ``cond`` a (low, high) range,
    spread from 1 up to c for a c drawn from it (condition number exactly c, n >= 2; on
    the scale, see ILL). s has signs of both kinds, so determinants of both signs occur."""
    shape = tuple(batch) + (n, n)
    u = np.linalg.qr(draw(dense(shape, floats(-1, 1))))[0]
    v = np.linalg.qr(draw(dense(shape, floats(-1, 1))))[0]
    if cond is None:
        s = draw(dense(shape[:-1], floats(0.5, 2.0)))
    else:
        c = draw(st.floats(*cond))
        s = c ** draw(dense(shape[:-1], floats(0.0, 1.0)))  # log-uniform in [1, c]
        s[..., 0], s[..., -1] = 1.0, c
    s = s * draw(dense(shape[:-1], st.sampled_from([-1.0, 1.0])))
    return (u * s[..., None, :]) @ v.swapaxes(-1, -2)


@st.composite
def triangular_matrices(draw, batch, n, lower, unit_diagonal, cond=None):
    """n x n matrices whose lower (or upper) triangle T is well conditioned: entries off
    the diagonal in [-1/2, 1/2], a diagonal of either sign with |T_ii| in [1, 2], so no
    entry of T^{-1} exceeds 2^(n-1). The other triangle holds anything in [-3, 3] (the
    solve must ignore it), and so does the diagonal with unit_diagonal (0 included: it
    must not be read). With ``cond`` a (low, high) range, T is multiplied by a c drawn
    from it, all but one diagonal entry, which stays in [1, 2] (so T has entries up to
    2c and T^{-1} stays of order 1): the condition number is about c (on the scale, see
    ILL)."""
    shape = tuple(batch) + (n, n)
    a = draw(dense(shape, floats(-3, 3)))
    strict = np.tril(np.ones((n, n), bool), -1) if lower else np.triu(np.ones((n, n), bool), 1)
    a = np.where(strict, draw(dense(shape, floats(-0.5, 0.5))), a)
    if not unit_diagonal:
        d = draw(dense(shape[:-1], floats(1.0, 2.0)))
        d = d * draw(dense(shape[:-1], st.sampled_from([-1.0, 1.0])))
        a[..., np.arange(n), np.arange(n)] = d
        if cond is not None:
            c, j = draw(st.floats(*cond)), draw(st.integers(0, n - 1))
            a = np.where(strict, a * c, a)
            a[..., np.arange(n), np.arange(n)] = d * c
            a[..., j, j] = d[..., j]
    return a


@st.composite
def square_case(draw, cond=None):
    n = draw(st.integers(1 if cond is None else 2, MAX_SIDE))
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    return [draw(conditioned_matrices(batch, n, cond))], {}


def _solve_shapes(draw, n):
    """(batch axes of a, shape of b) for a solve with n x n matrices: matrices b, with
    batch axes that broadcast against a's, or one vector b (n,)."""
    kind = draw(st.sampled_from(["matrix", "batched", "vector"]))
    k = draw(st.integers(1, MAX_SIDE))
    if kind == "batched":
        ba, bb = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)
                      .map(lambda r: r.input_shapes))
        return ba, bb + (n, k)
    if kind == "vector":
        return draw(st.sampled_from([(), (2,)])), (n,)
    return (), (n, k)


@st.composite
def solve_case(draw, cond=None):
    n = draw(st.integers(1 if cond is None else 2, MAX_SIDE))
    batch, sb = _solve_shapes(draw, n)
    return [draw(conditioned_matrices(batch, n, cond)), draw(dense(sb, floats()))], {}


@st.composite
def solve_triangular_case(draw, cond=None):
    n = draw(st.integers(1 if cond is None else 2, MAX_SIDE))
    batch, sb = _solve_shapes(draw, n)
    lower = draw(st.booleans())
    unit_diagonal = False if cond is not None else draw(st.booleans())
    a = draw(triangular_matrices(batch, n, lower, unit_diagonal, cond))
    return [a, draw(dense(sb, floats()))], {"lower": lower, "unit_diagonal": unit_diagonal}


# Ill-conditioned matrices: condition numbers from 1e3 to 1e4, scaled so that the
# smallest singular value is 1 (|A^{-1}| = 1, |A| = c), which keeps the gradients of
# order 1. The condition number is what costs LU its digits, and it does not depend on
# the scale; gradcheck's tolerance does: it is absolute (atol 1e-5), and a central
# difference is only as exact as u |L| / eps (u = 1.1e-16, eps = 1e-6). Scaled the other
# way (|A| = 1, |A^{-1}| = c), L reaches c^2 = 1e8 in the second-order check, and that
# noise (1e-2) swamps the components of order 1 that sit next to ones of order c^2:
# inv's second derivative for a diagonal A came out 0.5364 numerically, 0.5357 exactly.
# So these specs keep gradcheck's defaults.
ILL = (1e3, 1e4)


# --------------------------------------------------------------------------- the table

positive = floats(0.1, 5.0)
nonzero = floats(-3.0, 3.0, avoid=(0.0,), margin=0.3)

SPECS = [
    # arithmetic
    OpSpec("add", lambda a, b: a + b, binary()),
    OpSpec("sub", lambda a, b: a - b, binary()),
    OpSpec("mul", lambda a, b: a * b, binary()),
    OpSpec("div", lambda a, b: a / b, binary(elements_b=nonzero)),
    OpSpec("neg", lambda a: -a, unary()),
    OpSpec("pow_tensor", lambda a, b: a ** b, binary(floats(0.2, 3.0), floats(-2.0, 2.0))),
    OpSpec("pow_int", lambda a, p: a ** p, unary(params=lambda s: st.fixed_dictionaries(
        {"p": st.sampled_from([0, 1, 2, 3])}))),
    OpSpec("pow_negative", lambda a, p: a ** p, unary(nonzero, params=lambda s:
                                                      st.fixed_dictionaries(
                                                          {"p": st.sampled_from([-1, -2])}))),
    OpSpec("pow_real", lambda a, p: a ** p, unary(positive, params=lambda s:
                                                  st.fixed_dictionaries(
                                                      {"p": st.sampled_from([0.5, -0.5, 1.5])}))),
    OpSpec("abs", lambda a: abs(a), unary(floats(avoid=(0.0,)))),
    OpSpec("matmul", lambda a, b: a @ b, matmul_case()),
    # linear algebra, on matrices of chosen condition (see conditioned_matrices); slogdet
    # returns (sign, logabsdet), and the sign is a constant without a gradient
    OpSpec("slogdet", tg.slogdet, square_case()),
    OpSpec("inv", tg.inv, square_case()),
    OpSpec("solve", tg.solve, solve_case()),
    OpSpec("solve_triangular", lambda a, b, **kw: tg.solve_triangular(a, b, **kw),
           solve_triangular_case()),
    OpSpec("slogdet_ill_conditioned", tg.slogdet, square_case(ILL)),
    OpSpec("inv_ill_conditioned", tg.inv, square_case(ILL)),
    OpSpec("solve_ill_conditioned", tg.solve, solve_case(ILL)),
    OpSpec("solve_triangular_ill_conditioned",
           lambda a, b, **kw: tg.solve_triangular(a, b, **kw), solve_triangular_case(ILL)),
    # elementary functions
    OpSpec("exp", tg.exp, unary()),
    OpSpec("log", tg.log, unary(positive)),
    OpSpec("log1p", tg.log1p, unary(floats(-0.9, 5.0))),
    OpSpec("sqrt", tg.sqrt, unary(positive)),
    OpSpec("sin", tg.sin, unary(floats(-5, 5))),
    OpSpec("cos", tg.cos, unary(floats(-5, 5))),
    OpSpec("tanh", tg.tanh, unary(floats(-5, 5))),
    OpSpec("sigmoid", tg.sigmoid, unary(floats(-8, 8))),
    # piecewise: at an exact tie each side gets half the gradient, which is also what a
    # central difference measures; but the first derivative jumps there, so ties get a
    # first-order check only, and the second order is checked on a grid offset by half
    # a step (never tied).
    OpSpec("maximum_ties", tg.maximum, binary(grid(), grid()), second_order=False),
    OpSpec("minimum_ties", tg.minimum, binary(grid(), grid()), second_order=False),
    OpSpec("maximum", tg.maximum, binary(grid(), grid().map(lambda v: v + 0.0625))),
    OpSpec("minimum", tg.minimum, binary(grid(), grid().map(lambda v: v + 0.0625))),
    OpSpec("where", lambda a, b, cond: tg.where(cond, a, b), where_case()),
    OpSpec("clip", lambda a: a.clip(-1.0, 1.0), unary(floats(avoid=(-1.0, 1.0)))),
    # the value is clipped, the gradient passes unchanged: compare with x + a constant
    OpSpec("clip_straight_through", lambda a: a.clip(-1.0, 1.0, straight_through=True) -
           tg.Tensor(np.clip(a.data, -1.0, 1.0) - a.data), unary()),
    # reductions (max and min: distinct values, as k tied maxima get 1/k each while a
    # central difference measures 1/2)
    OpSpec("sum", lambda a, axis, keepdims: a.sum(axis, keepdims), unary(params=axis_params)),
    OpSpec("mean", lambda a, axis, keepdims: a.mean(axis, keepdims), unary(params=axis_params)),
    OpSpec("var", _var, unary(params=var_params)),
    OpSpec("max", lambda a, axis, keepdims: a.max(axis, keepdims),
           unary(grid(-8, 8), params=axis_params, unique=True)),
    OpSpec("min", lambda a, axis, keepdims: a.min(axis, keepdims),
           unary(grid(-8, 8), params=axis_params, unique=True)),
    OpSpec("logsumexp", lambda a, axis, keepdims: tg.logsumexp(a, axis, keepdims),
           unary(floats(-10, 10), params=axis_params)),
    OpSpec("cumsum", lambda a, axis, reverse: a.cumsum(axis, reverse), unary(
        shape=nonempty_shapes, params=lambda s: st.fixed_dictionaries(
            {"axis": st.integers(-len(s), len(s) - 1), "reverse": st.booleans()}))),
    OpSpec("log_softmax", lambda a, axis: tg.log_softmax(a, axis),
           unary(floats(-10, 10), shape=nonempty_shapes, params=lambda s: axis_params(
               s, allow_none=False).map(lambda p: {"axis": p["axis"]}))),
    OpSpec("bce_with_logits", tg.bce_with_logits, binary(floats(-10, 10), floats(0, 1))),
    # shape
    OpSpec("reshape", lambda a, shape: a.reshape(shape), reshape_case()),
    OpSpec("transpose", lambda a, axes: a.transpose(axes), transpose_case()),
    OpSpec("swapaxes", lambda a, i, j: a.swapaxes(i, j), unary(
        shape=nonempty_shapes, params=lambda s: st.fixed_dictionaries(
            {"i": st.integers(0, len(s) - 1), "j": st.integers(-len(s), -1)}))),
    OpSpec("flatten", lambda a, start, end: a.flatten(start, end), unary(
        shape=nonempty_shapes, params=lambda s: st.integers(0, len(s) - 1).flatmap(
            lambda i: st.fixed_dictionaries({"start": st.just(i),
                                             "end": st.integers(i, len(s) - 1)})))),
    OpSpec("squeeze", lambda a, axis: a.squeeze(axis), unary(params=lambda s: st.fixed_dictionaries(
        {"axis": st.one_of(st.none(), *[st.just(i) for i, n in enumerate(s) if n == 1])}))),
    OpSpec("unsqueeze", lambda a, axis: a.unsqueeze(axis), unary(params=lambda s: st.fixed_dictionaries(
        {"axis": st.integers(-len(s) - 1, len(s))}))),
    OpSpec("broadcast_to", lambda a, shape: a.broadcast_to(shape), broadcast_to_case()),
    OpSpec("expand", lambda a, shape: a.expand(*[-1 if i >= len(shape) - a.ndim and
                                                 a.shape[i - len(shape) + a.ndim] == n else n
                                                 for i, n in enumerate(shape)]),
           broadcast_to_case()),
    OpSpec("sum_to", lambda a, shape: tg.sum_to(a.broadcast_to(shape) * 2.0, a.shape),
           broadcast_to_case()),
    OpSpec("getitem_basic", lambda a, index: a[index], basic_index_case()),
    OpSpec("getitem_integer_array", lambda a, index: a[index], integer_index_case()),
    OpSpec("getitem_mask", lambda a, mask: a[mask], mask_index_case()),
    OpSpec("index_put", lambda a, index: tg.index_put(a, index[0], index[1]),
           st.builds(lambda c: ([c[0][0][c[1]["index"]]], {"index": (c[1]["index"],
                                                                      c[0][0].shape)}),
                     integer_index_case())),
    OpSpec("cat", lambda *xs, axis: tg.cat(xs, axis), cat_case()),
    OpSpec("stack", lambda *xs, axis: tg.stack(xs, axis), stack_case()),
    OpSpec("split", lambda a, how, axis: a.split(how, axis), split_case()),
    OpSpec("chunk", lambda a, chunks: a.chunk(chunks, axis=-1), unary(
        shape=nonempty_shapes, params=lambda s: st.fixed_dictionaries(
            {"chunks": st.integers(1, 5)}))),
    OpSpec("pad", lambda a, pad_width, value: tg.pad(a, pad_width, value), pad_case()),
    OpSpec("flip", lambda a, axis: a.flip(axis), unary(params=flip_params)),
    # activations (away from the kink at 0, where the derivative jumps)
    OpSpec("relu", tg.relu, unary(floats(avoid=(0.0,)))),
    OpSpec("leaky_relu", lambda a, slope: tg.leaky_relu(a, slope), unary(
        floats(avoid=(0.0,)), params=lambda s: st.fixed_dictionaries(
            {"slope": st.sampled_from([0.01, 0.2])}))),
    OpSpec("softplus", lambda a, beta: tg.softplus(a, beta), unary(
        floats(-10, 10), params=lambda s: st.fixed_dictionaries(
            {"beta": st.sampled_from([1.0, 2.0])}))),
    OpSpec("silu", tg.silu, unary(floats(-8, 8))),
    OpSpec("elu", lambda a, alpha: tg.elu(a, alpha), unary(
        floats(avoid=(0.0,)), params=lambda s: st.fixed_dictionaries(
            {"alpha": st.sampled_from([1.0, 0.5])}))),
    OpSpec("standardize", lambda a, axis, keepdims, eps: tg.standardize(a, axis, eps), unary(
        params=lambda s: axis_params(s).flatmap(lambda p: st.fixed_dictionaries(
            {"axis": st.just(p["axis"]), "keepdims": st.just(False),
             "eps": st.sampled_from([1e-5, 0.1])})))),
    # convolution and pooling (max pool: distinct values, see max above)
    OpSpec("unfold", lambda a, **g: tg.unfold(a, **g), unfold_case()),
    OpSpec("fold", lambda c, **g: tg.fold(c, **g), unfold_case(adjoint=True)),
    OpSpec("conv2d", lambda x, w, b, **g: tg.conv2d(x, w, b, **g), conv_case()),
    OpSpec("conv2d_nobias", lambda x, w, **g: tg.conv2d(x, w, None, **g), conv_case(bias=False)),
    OpSpec("conv_transpose2d", lambda x, w, b, **g: tg.conv_transpose2d(x, w, b, **g),
           conv_case(transposed=True)),
    OpSpec("max_pool2d", lambda x, **g: tg.max_pool2d(x, **g), pool_case(distinct=True)),
    OpSpec("avg_pool2d", lambda x, **g: tg.avg_pool2d(x, **g), pool_case()),
    # A float64 -> float32 -> float64 round trip is a step function at float32's
    # resolution (~1e-7 relative), so its difference quotient needs a step far above it.
    OpSpec("astype", lambda a: a.astype(np.float32).astype(np.float64) * 3.0, unary(),
           gradcheck_kwargs={"eps": 1e-2, "atol": 1e-4}),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@given(data=st.data())
def test_op_gradients(spec, device, data):
    """First and second derivatives of every op match central differences."""
    check_op(spec, data, device)


def test_every_public_op_is_covered():
    """A new op added to tinygen.ops must get a spec in the table above."""
    import tinygen.ops as ops
    not_differentiable = {"eq", "ne", "lt", "le", "gt", "ge", "sign", "any", "all"}
    names = [s.name for s in SPECS]
    missing = [op for op in ops.__all__ if op not in not_differentiable
               and not any(n == op or n.startswith(op + "_") for n in names)]
    assert not missing, f"ops without a gradient property test: {missing}"


# --------------------------------------------------------------------------- edges of the domain
# float32 inputs at +-inf, near float32's limits, nearly constant, or at zero bases,
# against float64 references with the limits written out (see opcheck.EdgeSpec).

def _reduced(out, axis, keepdims):
    return out if keepdims else np.squeeze(out, axis=axis)


def _lse_parts(x, axis):
    """(m, lse) keepdims, with the limits: +inf where a slice holds +inf, -inf where it
    holds only -inf."""
    m = np.max(x, axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        ms = np.where(np.isfinite(m), m, 0.0)
        lse = np.log(np.sum(np.exp(x - ms), axis=axis, keepdims=True)) + ms
    return m, np.where(m == np.inf, np.inf, np.where(m == -np.inf, -np.inf, lse))


def _softmax_limit(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    hits = x == np.inf
    with np.errstate(all="ignore"):
        inf_rows = hits / np.maximum(hits.sum(axis=axis, keepdims=True), 1)
        e = np.exp(x - np.where(np.isfinite(m), m, 0.0))  # e^(x - m) / sum: no m + log k
        return np.where(m == np.inf, inf_rows,
                        np.where(m == -np.inf, 0.0, e / e.sum(axis=axis, keepdims=True)))


def _lse_ref(x, axis, keepdims):
    return _reduced(_lse_parts(x, axis)[1], axis, keepdims)


def _log_softmax_ref(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    hits = x == np.inf
    with np.errstate(all="ignore"):
        d = x - np.where(np.isfinite(m), m, 0.0)  # (x - m) - log sum e^(x - m): no m + log 2
        plain = d - np.log(np.sum(np.exp(d), axis=axis, keepdims=True))
        k = hits.sum(axis=axis, keepdims=True)
        return np.where(m == np.inf, np.where(hits, -np.log(np.maximum(k, 1)), -np.inf),
                        np.where(m == -np.inf, np.nan, plain))


def _bce_ref(l, t):
    with np.errstate(all="ignore"):
        plain = np.logaddexp(0.0, l) - t * l
        coef = np.where(l > 0, 1 - t, t)
        limit = np.where(coef == 0, 0.0, coef * np.inf)
    return np.where(np.isinf(l), limit, plain)


def _sigmoid64(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _standardize_ref(x, axis, eps):
    mu = np.mean(x, axis=axis, keepdims=True)
    return (x - mu) / np.sqrt(np.mean((x - mu) ** 2, axis=axis, keepdims=True) + eps)


def _var_ref(x, axis, keepdims, ddof):
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    return np.var(x, axis=axis, ddof=ddof if n - ddof > 0 else 0, keepdims=keepdims)


def _pow_grad_b(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return [np.where(a == 0, 0.0, a ** b * np.log(a))]


def _f32(v):
    """v rounded to float32 (hypothesis wants float32 bounds to be exact)."""
    return float(np.float32(v))


@st.composite
def extreme_unary(draw, params=None, elements=None, shape=shapes):
    s = draw(shape)
    x = draw(hnp.arrays(np.float32, s, elements=elements or extreme_floats()))
    return [x], (draw(params(s)) if params else {})


@st.composite
def nearly_constant_case(draw, params):
    s = draw(nonempty_shapes)
    return [draw(nearly_constant(s))], draw(params(s))


@st.composite
def bce_edge_case(draw):
    s = draw(shapes)
    l = draw(hnp.arrays(np.float32, s, elements=extreme_floats()))
    t = draw(hnp.arrays(np.float32, s, elements=st.one_of(
        st.sampled_from([0.0, 1.0]), st.floats(0, 1, width=32))))
    return [l, t], {}


@st.composite
def tiny_division_case(draw):
    """|a| in [1e-30, 1e-25], |b| in [1e-25, 1e-20]: b^2 underflows float32, a / b^2 not.
    One sign per array, so that summing a broadcast gradient cancels nothing."""
    sa, sb = draw(broadcast_pair())
    sign = st.sampled_from([-1.0, 1.0])
    a = draw(sign) * draw(hnp.arrays(np.float32, sa, elements=st.floats(
        _f32(1e-30), _f32(1e-25), width=32)))
    b = draw(sign) * draw(hnp.arrays(np.float32, sb, elements=st.floats(
        _f32(1e-25), _f32(1e-20), width=32)))
    return [a.astype(np.float32), b.astype(np.float32)], {}


@st.composite
def zero_base_case(draw):
    sa, sb = draw(broadcast_pair())
    a = draw(hnp.arrays(np.float32, sa, elements=st.one_of(
        st.just(0.0), st.floats(_f32(0.1), 3.0, width=32))))
    b = draw(hnp.arrays(np.float32, sb, elements=st.floats(0.5, 3.0, width=32)))
    return [a, b], {}


def _no_slice_of_only_minus_inf(case, axis=-1):
    (x,), _ = case
    return x.ndim == 0 or not np.all(x == -np.inf, axis=axis).any()


EDGE_SPECS = [
    EdgeSpec("logsumexp", lambda a, axis, keepdims: tg.logsumexp(a, axis, keepdims),
             extreme_unary(params=axis_params), _lse_ref,
             grad_reference=lambda x, axis, keepdims: [
                 np.broadcast_to(_softmax_limit(x, axis), x.shape)]),
    EdgeSpec("log_softmax", lambda a: tg.log_softmax(a, -1),
             extreme_unary(shape=nonempty_shapes).filter(_no_slice_of_only_minus_inf),
             lambda x: _log_softmax_ref(x, -1)),
    EdgeSpec("bce_with_logits", tg.bce_with_logits, bce_edge_case(), _bce_ref,
             grad_reference=lambda l, t: [_sigmoid64(l) - t]),
    EdgeSpec("softplus", tg.softplus, extreme_unary(), lambda x: np.logaddexp(0.0, x),
             grad_reference=lambda x: [_sigmoid64(x)]),
    EdgeSpec("sigmoid", tg.sigmoid, extreme_unary(), _sigmoid64,
             grad_reference=lambda x: [_sigmoid64(x) * (1 - _sigmoid64(x))]),
    EdgeSpec("standardize_nearly_constant",
             lambda a, axis, eps: tg.standardize(a, axis, eps),
             nearly_constant_case(lambda s: axis_params(s).map(
                 lambda p: {"axis": p["axis"], "eps": 1e-5})),
             _standardize_ref, rtol=1e-4, atol=1e-4),
    EdgeSpec("var_nearly_constant", _var, nearly_constant_case(var_params), _var_ref,
             rtol=1e-3, atol=0.0),
    EdgeSpec("div_tiny_denominator", lambda a, b: a / b, tiny_division_case(),
             lambda a, b: a / b, finite_grad=(0, 1), rtol=1e-5, atol=0.0,
             grad_reference=lambda a, b: [np.broadcast_to(1 / b, np.broadcast_shapes(
                 a.shape, b.shape)), -a / b ** 2]),
    EdgeSpec("pow_zero_base", lambda a, b: a ** b, zero_base_case(), lambda a, b: a ** b,
             finite_grad=(1,), grad_reference=_pow_grad_b, rtol=1e-5, atol=1e-6),
    EdgeSpec("pow_zero_exponent", lambda a: a ** 0, extreme_unary(), np.ones_like,
             grad_reference=lambda x: [np.zeros_like(x)]),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", EDGE_SPECS, ids=lambda s: s.name)
@given(data=st.data())
def test_op_edges(spec, device, data):
    """Values and bounded gradients at +-inf, float32's limits, nearly constant inputs
    and zero bases match the mathematical limits."""
    check_edges(spec, data, device)
