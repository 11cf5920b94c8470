"""Reductions over axes: sum, mean, var, max, min, logsumexp (and the boolean any, all), and
the running sum along an axis, cumsum.

``axis`` is None (all axes), an int, or a tuple of ints, negative counting from the end;
``keepdims=True`` keeps each reduced axis with length 1, as in NumPy.

The backward of a reduction spreads the output gradient back over the reduced axes:
first reshape it to the keepdims shape, then broadcast it to the input's shape.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor, is_grad_enabled
from .shape import broadcast_to, reshape


def normalize_axis(axis, ndim, name="reduce"):
    """``axis`` as a sorted tuple of non-negative ints (all axes for None)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{name}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(int(a) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {axis}")
    return tuple(sorted(out))


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _spread(g, in_shape, axes):
    """Reshape an output gradient to the keepdims shape and broadcast it over the input."""
    return broadcast_to(reshape(g, _keepdims_shape(in_shape, axes)), in_shape)


class Sum(Function):
    """y = sum_axes x;  dL/dx = g broadcast back over the axes."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, axes, keepdims):
        self.axes = axes
        return backend.get_array_module(a).sum(a, axis=axes, keepdims=keepdims)

    def backward(self, g):
        return _spread(g, self.inputs[0].shape, self.axes)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all). (N, ...) -> reduced shape."""
    x = as_tensor(x)
    return Sum.apply(x, axes=normalize_axis(axis, x.ndim, "sum"), keepdims=keepdims)


class Mean(Function):
    """y = mean_axes x = sum_axes x / n;  dL/dx = g / n broadcast back over the axes."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, axes, keepdims):
        self.axes = axes
        self.n = int(np.prod([a.shape[i] for i in axes]))
        return backend.get_array_module(a).mean(a, axis=axes, keepdims=keepdims)

    def backward(self, g):
        return _spread(g, self.inputs[0].shape, self.axes) * (1.0 / self.n)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all)."""
    x = as_tensor(x)
    return Mean.apply(x, axes=normalize_axis(axis, x.ndim, "mean"), keepdims=keepdims)


def var(x, axis=None, ddof=0, keepdims=False):
    """Variance over ``axis``: sum (x - mean)^2 / (n - ddof). ddof=0 (NumPy's default)
    is the maximum-likelihood estimate; ddof=1 is the unbiased one (torch's default).

    The data are first shifted by a sample of each slice (a constant of the graph, so the
    derivative is unchanged): x - x_0 is exact for nearly constant values, and the mean is
    then taken of small numbers, so constant input gives exactly 0 instead of the square
    of the mean's rounding error (see tinygen.ops.normalization)."""
    x = as_tensor(x)
    axes = normalize_axis(axis, x.ndim, "var")
    n = int(np.prod([x.shape[i] for i in axes]))
    if n - ddof <= 0:
        raise ValueError(f"var: {n} elements with ddof={ddof} leave no degrees of freedom")
    shift = x.data[tuple(slice(0, 1) if i in axes else slice(None) for i in range(x.ndim))]
    d = x - Tensor(shift)
    d = d - mean(d, axes, keepdims=True)
    return sum(d * d, axes, keepdims) * (1.0 / (n - ddof))


class MaxMin(Function):
    """y = max_axes x (or min);  dL/dx = g [x = y] / #{x = y}, g broadcast back over the axes.

    The gradient goes to the extremal elements; when several tie, they share it equally.
    """
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, axes, keepdims, largest):
        xp = backend.get_array_module(a)
        reduce = xp.max if largest else xp.min
        if a.size == 0:
            raise ValueError(f"{'max' if largest else 'min'}: the tensor is empty")
        out = reduce(a, axis=axes, keepdims=True)
        hit = a == out
        self.weights = (hit / hit.sum(axis=axes, keepdims=True)).astype(a.dtype, copy=False)
        self.axes = axes
        return out if keepdims else out.reshape([n for i, n in enumerate(out.shape)
                                                 if i not in axes])

    def backward(self, g):
        return _spread(g, self.inputs[0].shape, self.axes) * Tensor(self.weights)


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``; tied maxima share the gradient equally."""
    x = as_tensor(x)
    return MaxMin.apply(x, axes=normalize_axis(axis, x.ndim, "max"), keepdims=keepdims,
                        largest=True)


def min(x, axis=None, keepdims=False):
    """Minimum over ``axis``; tied minima share the gradient equally."""
    x = as_tensor(x)
    return MaxMin.apply(x, axes=normalize_axis(axis, x.ndim, "min"), keepdims=keepdims,
                        largest=False)


def _infinite_limit_weights(xp, x, pos, axes):
    """The softmax over ``axes`` of slices whose maximum is +inf, as a limit: the +inf
    entries share the weight equally, the finite ones get 0 (softmax(x + t e) as
    t -> inf). ``pos`` marks those slices (keepdims shape); other slices get 0 here."""
    hits = (x == np.inf) & pos
    count = hits.sum(axis=axes, keepdims=True)
    return (hits / xp.maximum(count, 1)).astype(x.dtype)


class LogSumExp(Function):
    """y = log sum_axes e^x;  dL/dx = g softmax(x) = g e^(x - y), g broadcast back over the axes.

    Computed as m + log sum_i exp(x_i - m) with m = max_i x_i, so nothing overflows. At
    the edges the values and gradients are limits: a slice of only -inf gives -inf and
    weights 0; a slice holding +inf gives +inf and the softmax limit, weight 1/k on each
    of its k entries equal to +inf and 0 elsewhere ([+inf, 1] -> [1, 0], not [inf, e]).
    """

    def forward(self, a, axes, keepdims):
        xp = backend.get_array_module(a)
        m = xp.max(a, axis=axes, keepdims=True)
        m_safe = xp.where(m == -np.inf, 0, m)  # all -inf stays -inf below, not nan
        # log 0 = -inf is the right value for -inf slices; +inf slices make inf - inf
        # below and are set to +inf after
        with np.errstate(divide="ignore", invalid="ignore"):
            log_s = xp.log(xp.sum(xp.exp(a - m_safe), axis=axes, keepdims=True))
            out = log_s + m_safe
        self.m_safe, self.log_s = m_safe, log_s  # for backward's rounding correction
        out = xp.where(m == np.inf, m, out)  # on the reduced array only: cheap
        self.axes = axes
        return out if keepdims else out.reshape([n for i, n in enumerate(out.shape)
                                                 if i not in axes])

    def backward(self, g):
        x = self.inputs[0]
        xp = backend.get_array_module(x)
        keep = _keepdims_shape(x.shape, self.axes)
        out = reshape(self.output, keep)
        finite = xp.isfinite(out.data)
        # y = m + log s is rounded to y's own precision, an absolute error of up to
        # |y| eps / 2, which e^(x - y) turns into a relative error of the softmax (2e-4 at
        # y = 4096 in float32). Beyond |y| = 16 (8 eps) that rounding, (y - m) - log s
        # (y - m is exact), is added back: one more pass, only where it matters.
        rounding = None
        if float(xp.abs(out.data).max(initial=0)) > 16:
            with np.errstate(invalid="ignore"):
                c = (out.data - self.m_safe) - self.log_s
            rounding = xp.where(finite, c, 0).astype(x.dtype, copy=False)
        if finite.all():
            d = x - out
            softmax = (d if rounding is None else d + Tensor(rounding)).exp()
        else:
            from .elementwise import where
            # a slice of only -inf has weights exp(-inf - 0) = 0, not nan; a slice with
            # +inf gets the limit weights (constants: the second derivative is 0 there),
            # and its x is replaced by 0 first so that no inf - inf appears on any path
            pos = out.data == np.inf
            pos_b = xp.broadcast_to(pos, x.shape)
            safe = where(pos_b, 0.0, x) - where(finite, out, 0.0)
            if rounding is not None:
                safe = safe + Tensor(rounding)
            softmax = where(pos_b, Tensor(_infinite_limit_weights(xp, x.data, pos, self.axes)),
                            safe.exp())
        return _spread(g, x.shape, self.axes) * softmax


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, stable for inputs of any size (no overflow)."""
    x = as_tensor(x)
    return LogSumExp.apply(x, axes=normalize_axis(axis, x.ndim, "logsumexp"),
                           keepdims=keepdims)


class LogSoftmax(Function):
    """y = x - logsumexp_axes(x);  dL/dx = g - e^y sum_axes g  (e^y = softmax(x)).

    One op rather than x - logsumexp(x), so that a slice holding +inf gets the limit
    log(1/k) at its k entries equal to +inf and -inf elsewhere (instead of inf - inf =
    nan), and e^y in backward is then the limit softmax. A slice of only -inf gives nan,
    as in PyTorch: no distribution has those log-probabilities.
    """

    def forward(self, a, axes):
        xp = backend.get_array_module(a)
        self.axes = axes
        m = xp.max(a, axis=axes, keepdims=True)
        pos = m == np.inf
        with np.errstate(invalid="ignore"):  # only in slices of only -inf, or with +inf
            y = a - xp.where(m == -np.inf, 0, m)
            e = xp.exp(y)
            with np.errstate(divide="ignore"):
                y -= xp.log(xp.sum(e, axis=axes, keepdims=True))
        if pos.any():  # the limit: log(1/k) at the k entries equal to +inf, -inf elsewhere
            w = _infinite_limit_weights(xp, a, pos, axes)
            with np.errstate(divide="ignore"):
                y = xp.where(xp.broadcast_to(pos, a.shape), xp.log(w), y).astype(a.dtype)
        return y

    def backward(self, g):
        axes, y = self.axes, self.output
        if not is_grad_enabled():
            # plain backward: one array expression (the tensor form below builds 4 nodes)
            gd = g.data
            return Tensor(gd - backend.get_array_module(gd).exp(y.data) *
                          gd.sum(axis=axes, keepdims=True))
        return g - y.exp() * sum(g, axes, keepdims=True)


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) over ``axis`` (an int or tuple): log-probabilities from
    logits, stable for inputs of any size; +inf logits give the limit (see LogSoftmax)."""
    x = as_tensor(x)
    return LogSoftmax.apply(x, axes=normalize_axis(axis, x.ndim, "log_softmax"))


def any(x, axis=None, keepdims=False):
    """Whether any element is true (a boolean tensor; not differentiable)."""
    x = as_tensor(x)
    xp = backend.get_array_module(x)
    return Tensor(xp.asarray(xp.any(x.data, axis=axis, keepdims=keepdims)))


def all(x, axis=None, keepdims=False):
    """Whether every element is true (a boolean tensor; not differentiable)."""
    x = as_tensor(x)
    xp = backend.get_array_module(x)
    return Tensor(xp.asarray(xp.all(x.data, axis=axis, keepdims=keepdims)))


class Cumsum(Function):
    """y_i = sum_{j <= i} x_j along an axis (reverse: sum_{j >= i});
    dL/dx_j = sum_{i >= j} g_i, the running sum of g in the opposite direction."""
    saves = ()  # linear: backward reads no input values

    def forward(self, a, axis, reverse):
        self.axis, self.reverse = axis, reverse
        xp = backend.get_array_module(a)
        if reverse:
            return xp.flip(xp.cumsum(xp.flip(a, axis), axis=axis), axis)
        return xp.cumsum(a, axis=axis)

    def backward(self, g):
        return cumsum(g, self.axis, reverse=not self.reverse)


def cumsum(x, axis, reverse=False):
    """The running sum along ``axis`` (an int): y[..., i, ...] = sum_{j <= i} x[..., j, ...]
    (with ``reverse``: sum_{j >= i}); same shape as x. NADE's recurrence
    a_{d+1} = a_d + W[:, d] x_d is one cumsum.

    Raises:
        ValueError: axis out of range for x, or x is a scalar.
        TypeError: axis is not an int.
    """
    x = as_tensor(x)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"cumsum: axis must be an int, got {axis!r}")
    if x.ndim == 0:
        raise ValueError("cumsum: needs a tensor with at least one axis, got a scalar")
    (axis,) = normalize_axis(int(axis), x.ndim, "cumsum")
    return Cumsum.apply(x, axis=axis, reverse=bool(reverse))
