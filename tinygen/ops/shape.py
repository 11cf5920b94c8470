"""Ops that move elements without computing on them: reshape, transpose, broadcast,
indexing, concatenation, padding, flipping, and casts between dtypes and devices.

Their gradients move the output gradient back to where each element came from. Two
pairs are each other's backward: ``broadcast_to`` and ``sum_to`` (copying one element
to many sums many gradients into one), and indexing and ``index_put`` (reading elements
scatters their gradients back, adding where an index repeats).
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor


def _shape_arg(shape):
    """reshape(2, 3) and reshape((2, 3)) both give (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


# --------------------------------------------------------------------------- reshape, transpose

class Reshape(Function):
    """y = x in a new shape;  dL/dx = g reshaped back to the shape of x."""
    saves = ()
    is_view = True  # the output may share the input's memory

    def forward(self, a, shape):
        return a.reshape(shape)

    def backward(self, g):
        return reshape(g, self.inputs[0].shape)


def reshape(x, *shape):
    """The same elements in a new shape (one dimension may be -1)."""
    x = as_tensor(x)
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    try:
        return Reshape.apply(x, shape=shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({x.size} elements) into shape {shape}") from None


class Transpose(Function):
    """y = x with its axes permuted by P;  dL/dx = g permuted by the inverse of P."""
    saves = ()
    is_view = True  # the output may share the input's memory

    def forward(self, a, axes):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, g):
        return transpose(g, tuple(np.argsort(self.axes)))  # the inverse permutation


def transpose(x, *axes):
    """Permute the axes; with no axes given, reverse them (the matrix transpose in 2-D)."""
    x = as_tensor(x)
    axes = _shape_arg(axes) if axes else tuple(reversed(range(x.ndim)))
    if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                         f"{x.ndim} axes of a tensor of shape {x.shape}")
    axes = tuple(a % x.ndim for a in axes)
    return Transpose.apply(x, axes=axes)


def swapaxes(x, axis1, axis2):
    """Exchange two axes."""
    x = as_tensor(x)
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, tuple(axes))


def flatten(x, start_axis=0, end_axis=-1):
    """Merge the axes start_axis..end_axis (inclusive) into one."""
    x = as_tensor(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = start_axis % x.ndim, end_axis % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    shape = x.shape[:start] + (-1,) + x.shape[end + 1:]
    return reshape(x, shape)


def squeeze(x, axis=None):
    """Remove axes of length 1 (all of them, or those named, which must have length 1)."""
    x = as_tensor(x)
    if axis is None:
        axes = [i for i, n in enumerate(x.shape) if n == 1]
    else:
        axes = [a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)]
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} has length {x.shape[a]}, not 1 "
                                 f"(shape {x.shape})")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x, axis):
    """Insert an axis of length 1 at position ``axis`` (-1: last)."""
    x = as_tensor(x)
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise ValueError(f"unsqueeze: axis {axis} out of range for {x.ndim} dims")
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


# --------------------------------------------------------------------------- broadcasting

class BroadcastTo(Function):
    """y = x broadcast to a shape;  dL/dx = sum_to(g, shape of x), summed over the copies."""
    saves = ()
    is_view = True  # the output may share the input's memory

    def forward(self, a, shape):
        return backend.get_array_module(a).broadcast_to(a, shape)

    def backward(self, g):
        return sum_to(g, self.inputs[0].shape)


def broadcast_to(x, shape):
    """x broadcast to ``shape`` (NumPy's rules); its gradient is summed back."""
    x = as_tensor(x)
    shape = tuple(shape)
    if shape == x.shape:
        return x
    try:
        np.broadcast_shapes(x.shape, shape)
        if len(shape) < x.ndim or np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return BroadcastTo.apply(x, shape=shape)


def expand(x, *shape):
    """torch-style broadcast_to: -1 keeps an axis's length."""
    x = as_tensor(x)
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return broadcast_to(x, shape)


class SumTo(Function):
    """y = x summed down to a shape;  dL/dx = g broadcast back to the shape of x.

    It undoes broadcasting (the engine calls it on every gradient of a broadcast input):
    it sums the leading axes broadcasting added, and the axes where ``shape`` has length 1.
    """
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, shape):
        lead = a.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1)
        out = a.sum(axis=axes, keepdims=True) if axes else a
        return out.reshape(shape)

    def backward(self, g):
        return broadcast_to(g, self.inputs[0].shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``, the inverse of broadcasting ``shape`` up to x.shape."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo.apply(x, shape=shape)


# --------------------------------------------------------------------------- indexing

def _normalize_index(index, xp):
    """The index as a tuple of ints, slices, None, Ellipsis and arrays of module xp."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, list):
            i = np.asarray(i)
        if hasattr(i, "dtype") and getattr(i, "ndim", 0) > 0:
            if i.dtype.kind not in "biu":
                raise IndexError(f"index arrays must be integer or boolean, got {i.dtype}")
            i = xp.asarray(i)
        out.append(i)
    return tuple(out)


def _has_integer_array(index):
    return any(hasattr(i, "dtype") and getattr(i, "ndim", 0) > 0 and i.dtype.kind in "iu"
               for i in index)


def _scatter_add(xp, target, index, values):
    """target[index] += values, adding once per occurrence of a repeated index."""
    if xp is np:
        np.add.at(target, index, values)
        return
    try:
        xp.add.at(target, index, values)
    except (AttributeError, NotImplementedError):  # older CuPy
        import cupyx
        cupyx.scatter_add(target, index, values)


class Getitem(Function):
    """y = x[index];  dL/dx = index_put(g, index, shape of x): zeros, g added at index."""
    saves = ()
    is_view = True  # the output may share the input's memory

    def forward(self, a, index):
        self.index = index
        return a[index]

    def backward(self, g):
        return index_put(g, self.index, self.inputs[0].shape)


def getitem(x, index):
    """x[index] with ints, slices, None, ..., integer arrays, boolean masks, or tensors
    of those. The gradient flows back to the selected elements (added where repeated)."""
    x = as_tensor(x)
    index = _normalize_index(index, backend.get_array_module(x))
    return Getitem.apply(x, index=index)


class IndexPut(Function):
    """y = zeros(shape) with v added at index;  dL/dv = g[index].

    Values landing on the same position are added. This is the backward of indexing.
    """
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, values, index, shape):
        xp = backend.get_array_module(values)
        self.index = index
        out = xp.zeros(shape, dtype=values.dtype)
        if _has_integer_array(index):
            # Integer arrays may repeat an index, and each repetition must add its share.
            # Boolean masks are turned into the integer positions they select first.
            index = tuple(j for i in index for j in
                          (xp.nonzero(i) if getattr(i, "dtype", None) == np.bool_ else (i,)))
            _scatter_add(xp, out, index, values)
        else:
            out[index] = values
        return out

    def backward(self, g):
        return getitem(g, self.index)


def index_put(values, index, shape):
    """zeros(shape) with ``values`` added at ``index`` (the adjoint of indexing)."""
    values = as_tensor(values)
    index = _normalize_index(index, backend.get_array_module(values))
    return IndexPut.apply(values, index=index, shape=tuple(shape))


# --------------------------------------------------------------------------- joining, splitting

class Cat(Function):
    """y = (x_1, ..., x_k) joined along an axis;  dL/dx_i = the slice of g where x_i sits."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, *arrays, axis):
        self.axis = axis
        return backend.get_array_module(arrays[0]).concatenate(arrays, axis=axis)

    def backward(self, g):
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for t in self.inputs:
            n = t.shape[self.axis]
            grads.append(getitem(g, lead + (slice(start, start + n),)))
            start += n
        return tuple(grads)


def cat(tensors, axis=0):
    """Join tensors along an existing axis; all other axes must match."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    axis = axis % ndim
    shapes = [t.shape for t in tensors]
    for s in shapes:
        if len(s) != ndim or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
            raise ValueError(f"cat: shapes {shapes} differ outside axis {axis}")
    return Cat.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return cat([unsqueeze(t, axis) for t in tensors], axis=axis % (tensors[0].ndim + 1))


def split(x, split_size_or_sections, axis=0):
    """Cut x along ``axis`` into pieces: of the given size (an int; the last may be
    smaller), or of the listed sizes (which must add up to the axis length)."""
    x = as_tensor(x)
    axis = axis % x.ndim
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise ValueError(f"split: size must be positive, got {size}")
        sizes = [min(size, n - s) for s in range(0, n, size)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} do not add up to {n}, the length of axis "
                             f"{axis}")
    lead = (slice(None),) * axis
    pieces, start = [], 0
    for s in sizes:
        pieces.append(getitem(x, lead + (slice(start, start + s),)))
        start += s
    return tuple(pieces)


def chunk(x, chunks, axis=0):
    """Cut x into ``chunks`` pieces of (nearly) equal size along ``axis``."""
    x = as_tensor(x)
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[axis]
    return split(x, max(1, math.ceil(n / chunks)), axis)


class Pad(Function):
    """y = x padded with a constant;  dL/dx = g with the padding cut off."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, pad_width, value):
        self.pad_width = pad_width
        return backend.get_array_module(a).pad(a, pad_width, mode="constant",
                                               constant_values=value)

    def backward(self, g):
        index = tuple(slice(before, n - after) for (before, after), n
                      in zip(self.pad_width, g.shape))
        return getitem(g, index)


def pad(x, pad_width, value=0.0):
    """Pad with a constant. ``pad_width`` as in numpy.pad: an int (every side), a pair
    (before, after) for every axis, or one pair per axis."""
    x = as_tensor(x)
    if x.ndim == 0:
        return x  # a scalar has no axis to pad
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    if (widths < 0).any():
        raise ValueError(f"pad: widths must be non-negative, got {pad_width}")
    widths = tuple((int(b), int(a)) for b, a in widths)
    return Pad.apply(x, pad_width=widths, value=value)


class Flip(Function):
    """y = x reversed along axes;  dL/dx = g reversed along the same axes."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, axes):
        self.axes = axes
        return backend.get_array_module(a).flip(a, axis=axes)

    def backward(self, g):
        return flip(g, self.axes)


def flip(x, axis=None):
    """Reverse the order of elements along ``axis`` (int, tuple, or None for all)."""
    x = as_tensor(x)
    if axis is None:
        axis = tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return Flip.apply(x, axes=tuple(a % x.ndim for a in axes))


# --------------------------------------------------------------------------- dtype, device

class Cast(Function):
    """y = x as another dtype;  dL/dx = g cast back to the dtype of x."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, dtype):
        return a.astype(dtype)

    def backward(self, g):
        return astype(g, self.inputs[0].dtype)


def astype(x, dtype):
    """x converted to ``dtype``; between float dtypes the gradient is cast back."""
    x = as_tensor(x)
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    return Cast.apply(x, dtype=dtype)


class ToDevice(Function):
    """y = x on another device;  dL/dx = g moved back to the device of x.

    Its public face is the method ``Tensor.to(device)`` (with ``.cpu()``, ``.cuda()``).
    """
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, device):
        return backend.to_device(a, device)

    def backward(self, g):
        return g.to(self.inputs[0].device)
