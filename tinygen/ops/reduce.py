"""Reductions over axes: sum, mean, var, max, min, logsumexp (and the boolean any, all).

``axis`` is None (all axes), an int, or a tuple of ints, negative counting from the end;
``keepdims=True`` keeps each reduced axis with length 1, as in NumPy.

The backward of a reduction spreads the output gradient back over the reduced axes:
first reshape it to the keepdims shape, then broadcast it to the input's shape.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor
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
    is the maximum-likelihood estimate; ddof=1 is the unbiased one (torch's default)."""
    x = as_tensor(x)
    axes = normalize_axis(axis, x.ndim, "var")
    n = int(np.prod([x.shape[i] for i in axes]))
    if n - ddof <= 0:
        raise ValueError(f"var: {n} elements with ddof={ddof} leave no degrees of freedom")
    d = x - mean(x, axes, keepdims=True)
    return sum(d * d, axes, keepdims) * (1.0 / (n - ddof))


class MaxMin(Function):
    """y = max_axes x (or min);  dL/dx = g [x = y] / #{x = y}, g broadcast back over the axes.

    The gradient goes to the extremal elements; when several tie, they share it equally.
    """

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


class LogSumExp(Function):
    """y = log sum_axes e^x;  dL/dx = g softmax(x) = g e^(x - y), g broadcast back over the axes.

    Computed as m + log sum_i exp(x_i - m) with m = max_i x_i, so nothing overflows.
    """

    def forward(self, a, axes, keepdims):
        xp = backend.get_array_module(a)
        m = xp.max(a, axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf stays -inf below, not nan
        with np.errstate(divide="ignore"):  # log 0 = -inf is the right value there
            out = xp.log(xp.sum(xp.exp(a - m), axis=axes, keepdims=True)) + m
        self.axes = axes
        return out if keepdims else out.reshape([n for i, n in enumerate(out.shape)
                                                 if i not in axes])

    def backward(self, g):
        x = self.inputs[0]
        keep = _keepdims_shape(x.shape, self.axes)
        out = reshape(self.output, keep)
        finite = backend.get_array_module(x).isfinite(out.data)
        if not finite.all():  # a row of only -inf has weights exp(-inf) = 0, not nan
            from .elementwise import where
            out = where(finite, out, 0.0)
        softmax = (x - out).exp()
        return _spread(g, x.shape, self.axes) * softmax


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, stable for inputs of any size (no overflow)."""
    x = as_tensor(x)
    return LogSumExp.apply(x, axes=normalize_axis(axis, x.ndim, "logsumexp"),
                           keepdims=keepdims)


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
