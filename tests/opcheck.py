"""The op-test factory: hypothesis strategies for an op's inputs and the checks every
differentiable op must pass.

An ``OpSpec`` names an op and a strategy that draws one test case: the input arrays
(float64, values in the op's domain, shapes that include broadcasting pairs) and any
non-tensor parameters (an axis, an index, a shape). ``check_op`` then, on one device,

1. lays each input out non-contiguously when drawn so (a transposed or strided view),
2. draws the upstream gradient v,
3. checks the first derivative with gradcheck and, unless the spec says the op is not on
   a double-backward path, the second derivative with gradgradcheck,
4. checks that the inputs were not modified,
5. checks that backward() records no graph and frees the one it walked.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen
from tinygen import backend
from tinygen.autograd import Tensor

MAX_SIDE = 4


# --------------------------------------------------------------------------- element strategies

def floats(lo=-3.0, hi=3.0, avoid=(), margin=1e-2):
    """Floats in [lo, hi], at least ``margin`` away from each point in ``avoid`` (kinks,
    poles and boundaries, where a finite difference straddles two pieces)."""
    s = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    if avoid:
        s = s.filter(lambda v: all(abs(v - p) > margin for p in avoid))
    return s


def grid(lo=-3.0, hi=3.0, step=0.125):
    """Values on a grid: exact ties happen (and are meant to), near-ties never do."""
    return st.integers(int(lo / step), int(hi / step)).map(lambda k: k * step)


def arrays(shape, elements, unique=False):
    return hnp.arrays(np.float64, shape, elements=elements, unique=unique)


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=MAX_SIDE)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=MAX_SIDE)


def broadcast_pair(num_shapes=2):
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=0, max_dims=3,
                                             min_side=1, max_side=MAX_SIDE).map(
        lambda r: r.input_shapes)


# --------------------------------------------------------------------------- cases

@st.composite
def unary(draw, elements=None, shape=shapes, params=None, unique=False):
    """One input; ``params`` is a function shape -> strategy of a params dict."""
    s = draw(shape)
    x = draw(arrays(s, elements if elements is not None else floats(), unique=unique))
    return [x], (draw(params(s)) if params else {})


@st.composite
def binary(draw, elements_a=None, elements_b=None, broadcast=True):
    sa, sb = draw(broadcast_pair()) if broadcast else (draw(shapes),) * 2
    a = draw(arrays(sa, elements_a if elements_a is not None else floats()))
    b = draw(arrays(sb, elements_b if elements_b is not None else floats()))
    return [a, b], {}


@dataclass
class OpSpec:
    """How to test one op: ``fn(*tensors, **params)`` on cases drawn from ``case``."""
    name: str
    fn: Callable
    case: st.SearchStrategy
    second_order: bool = True
    gradcheck_kwargs: dict = field(default_factory=dict)

    def __repr__(self):
        return self.name


# --------------------------------------------------------------------------- layouts

LAYOUTS = ("contiguous", "transposed", "strided")


def lay_out(array, layout):
    """The same values in a non-contiguous memory layout (a view), on the array's module."""
    xp = backend.get_array_module(array)
    if layout == "transposed" and array.ndim >= 2:
        return xp.ascontiguousarray(array.T).T
    if layout == "strided" and array.ndim >= 1:
        big = xp.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
        big[..., ::2] = array
        return big[..., ::2]
    return array


# --------------------------------------------------------------------------- the checks

def _as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def check_op(spec: OpSpec, data, device: str) -> None:
    """Run every check on one drawn case (``data`` is hypothesis's st.data())."""
    arrays_, params = data.draw(spec.case, label="inputs and params")
    layouts = [data.draw(st.sampled_from(LAYOUTS), label=f"layout {i}")
               for i in range(len(arrays_))]
    xs = tuple(Tensor(lay_out(backend.to_device(a, device), lay), requires_grad=True)
               for a, lay in zip(arrays_, layouts))
    originals = [x.numpy().copy() for x in xs]

    def fn(*ts):
        return spec.fn(*ts, **params)

    outputs = _as_tuple(fn(*xs))
    vs = tuple(Tensor(backend.to_device(
        data.draw(arrays(y.shape, floats(-2, 2)), label="upstream gradient"), device))
        for y in outputs)

    tinygen.gradcheck(fn, xs, vs, **spec.gradcheck_kwargs)
    if spec.second_order:
        tinygen.gradgradcheck(fn, xs, vs, **spec.gradcheck_kwargs)

    for x, before in zip(xs, originals):
        np.testing.assert_array_equal(x.numpy(), before, err_msg=f"{spec.name} mutated its input")

    _check_graph_freed(fn, xs, vs)


def _check_graph_freed(fn, xs, vs):
    """backward() without create_graph must leave gradients without a graph, and must
    drop the graph it walked, so that intermediate tensors are freed at once."""
    for x in xs:
        x.grad = None
    outputs = _as_tuple(fn(*xs))
    live = [(y, v) for y, v in zip(outputs, vs) if y.requires_grad]
    if not live:
        return
    loss = tinygen.sum(tinygen.stack([(y * v).sum() for y, v in live]))
    refs = [weakref.ref(y) for y, _ in live if all(y is not x for x in xs)]
    del outputs, live
    loss.backward()
    for x in xs:
        if x.grad is not None:
            assert x.grad.grad_fn is None and not x.grad.requires_grad, \
                "backward without create_graph recorded a graph"
    assert loss.grad_fn.inputs is None, "backward did not free the graph"
    assert all(r() is None for r in refs), "an intermediate tensor outlived backward()"


# --------------------------------------------------------------------------- edges of the domain
#
# Central differences need smooth, moderate inputs; the faults that hide elsewhere sit at
# the edges: +-inf, values near float32's limits, nearly constant data (cancellation),
# zero bases. An ``EdgeSpec`` draws float32 inputs there and checks the op against the
# mathematically right values (a float64 reference with the limits written out), and
# that the gradient is finite (and right, where a reference is given) for the inputs
# whose derivative is bounded.

F32 = np.finfo(np.float32)


def extreme_floats(lo=-1e4, hi=1e4, infinities=True):
    """float32 values: ordinary ones, and the edges: +-inf, +-max, +-tiny, 0."""
    edges = [0.0, float(F32.max), -float(F32.max), float(F32.tiny), -float(F32.tiny),
             1e30, -1e30]
    if infinities:
        edges += [np.inf, -np.inf] * 3  # weighted: most faults of this kind are at +-inf
    return st.one_of(st.sampled_from(edges),
                     st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False))


@st.composite
def nearly_constant(draw, shape):
    """A float32 array whose values are one number moved by a few units in the last
    place: the variance is tiny against the square of the mean (cancellation's test)."""
    base = np.float32(draw(st.one_of(st.sampled_from([1e6 / 7, -3.0e4, 1e-3, 7.5e8]),
                                     st.floats(-1e9, 1e9, width=32).filter(
                                         lambda v: abs(v) > 1e-6))))
    steps = draw(hnp.arrays(np.int64, shape, elements=st.integers(-3, 3)))
    if draw(st.booleans()):
        steps[...] = 0  # exactly constant
    a = np.full(shape, base, np.float32)
    for k in range(1, 4):  # k ulps up or down, exactly representable neighbours
        a = np.where(steps >= k, np.nextafter(a, np.float32(np.inf)), a)
        a = np.where(steps <= -k, np.nextafter(a, np.float32(-np.inf)), a)
    return a.astype(np.float32)


@dataclass
class EdgeSpec:
    """``fn(*tensors, **params)`` on float32 cases at the edges of its domain.

    reference(*float64 arrays, **params): the right values (nan only where the op is
    undefined). grad_reference(*arrays, **params): the right gradients of sum(fn) for
    the inputs in ``finite_grad``, or None to check finiteness only.
    """
    name: str
    fn: Callable
    case: st.SearchStrategy
    reference: Callable
    finite_grad: tuple = (0,)
    grad_reference: Callable | None = None
    rtol: float = 1e-5
    atol: float = 1e-5

    def __repr__(self):
        return self.name


def check_edges(spec: EdgeSpec, data, device: str) -> None:
    """Values against the reference and bounded gradients, at the edges (see EdgeSpec)."""
    import warnings
    arrays_, params = data.draw(spec.case, label="edge inputs and params")
    arrays_ = [np.asarray(a, np.float32) for a in arrays_]
    xs = tuple(Tensor(backend.to_device(a, device), requires_grad=True) for a in arrays_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow to inf is expected here
        y = spec.fn(*xs, **params)
        expected = spec.reference(*[a.astype(np.float64) for a in arrays_], **params)
        expected = np.asarray(expected).astype(np.float32)  # the right float32 answer
    np.testing.assert_allclose(y.numpy().astype(np.float64), expected, rtol=spec.rtol,
                               atol=spec.atol, equal_nan=True,
                               err_msg=f"{spec.name}: wrong values at the edges")
    if not spec.finite_grad:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        grads = tinygen.grad(y.sum(), [xs[i] for i in spec.finite_grad])
    for i, g in zip(spec.finite_grad, grads):
        g = g.numpy()
        assert np.isfinite(g).all(), f"{spec.name}: non-finite gradient for input {i}: {g}"
    if spec.grad_reference is not None:
        want = spec.grad_reference(*[a.astype(np.float64) for a in arrays_], **params)
        for i, g, w in zip(spec.finite_grad, grads, want):
            w = np.asarray(w)
            while w.ndim > g.ndim:  # a broadcast input's gradient is summed back
                w = w.sum(axis=0)
            w = w.sum(axis=tuple(k for k, n in enumerate(g.shape) if n == 1 != w.shape[k]),
                      keepdims=True)
            np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{spec.name}: wrong gradient for input {i}")
