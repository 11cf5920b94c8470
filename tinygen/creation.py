"""Tensors made from nothing but a shape: zeros, ones, full, arange, and the *_like forms.
(Random tensors come from tinygen.random.)"""
from __future__ import annotations

import numpy as np

from . import backend
from .autograd import Tensor


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(s) for s in shape)


def zeros(*shape, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of zeros, float32 unless told otherwise."""
    xp = backend.array_module(device)
    return Tensor(xp.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of ones, float32 unless told otherwise."""
    xp = backend.array_module(device)
    return Tensor(xp.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def full(shape, fill_value, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``."""
    xp = backend.array_module(device)
    return Tensor(xp.full(tuple(shape), fill_value, dtype=dtype), requires_grad=requires_grad)


def zeros_like(x: Tensor, dtype=None, requires_grad=False) -> Tensor:
    """Zeros with the shape, dtype and device of ``x``."""
    xp = backend.get_array_module(x)
    return Tensor(xp.zeros(x.shape, dtype=dtype or x.dtype), requires_grad=requires_grad)


def ones_like(x: Tensor, dtype=None, requires_grad=False) -> Tensor:
    """Ones with the shape, dtype and device of ``x``."""
    xp = backend.get_array_module(x)
    return Tensor(xp.ones(x.shape, dtype=dtype or x.dtype), requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, device="cpu") -> Tensor:
    """Evenly spaced values in [start, stop), as numpy.arange (int64 for int arguments,
    float32 for float ones unless dtype is given)."""
    xp = backend.array_module(device)
    if stop is None:
        start, stop = 0, start
    if dtype is None and any(isinstance(v, float) for v in (start, stop, step)):
        dtype = np.float32
    return Tensor(xp.arange(start, stop, step, dtype=dtype))
