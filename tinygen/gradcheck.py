"""Numerical checks of analytic gradients, first and second order.

For a function y = f(x_1, ..., x_n) and a fixed upstream gradient v (drawn at random
unless given), the scalar L(x) = sum(v * f(x)) has the gradient that backward computes,
dL/dx_i = v^T df/dx_i. ``gradcheck`` compares it with central differences

    dL/dx_i[j] ~ (L(x + h e_j) - L(x - h e_j)) / (2h),

element by element when x_i is small, and along random unit directions u when it is
large (comparing <dL/dx_i, u> with (L(x + h u) - L(x - h u)) / (2h)). The inputs must
be float64: in float32 the rounding error of the difference swamps the check.

``gradgradcheck`` applies the same check to the function (x, v) -> dL/dx computed with
``create_graph=True``, which verifies the second derivatives (and that backward is
itself differentiable).
"""
from __future__ import annotations

import numpy as np

from . import backend
from .autograd import Tensor, grad


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with its numerical estimate."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _draw_like(rng, t):
    xp = backend.get_array_module(t)
    return xp.asarray(rng.standard_normal(t.shape))


def gradcheck(fn, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
              max_elementwise=64, n_directions=8, seed=0, raise_exception=True) -> bool:
    """Check the gradient of ``fn`` at ``inputs`` against central differences.

    Args:
        fn: maps the input Tensors to a Tensor or a tuple of Tensors.
        inputs: a sequence of float64 Tensors; those with requires_grad are checked.
        grad_outputs: the upstream gradients v (one per output); random if None.
        eps: the finite-difference step h.
        atol, rtol: pass when |numerical - analytic| <= atol + rtol * |numerical|.
        max_elementwise: inputs up to this many elements are checked element by element,
            larger ones along ``n_directions`` random directions.
        seed: seeds v and the directions (the check itself draws nothing else).
        raise_exception: raise GradcheckError on failure (else return False).

    Returns:
        True when every checked entry agrees.
    """
    inputs = tuple(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck: input {i} is a {type(x).__name__}, not a Tensor")
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; use float64 inputs "
                            "(finite differences in float32 are too inaccurate)")
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    rng = np.random.default_rng(seed)

    outputs = _as_tuple(fn(*inputs))
    if grad_outputs is None:
        grad_outputs = tuple(Tensor(_draw_like(rng, y).astype(y.dtype)) for y in outputs)
    grad_outputs = _as_tuple(grad_outputs)
    v = [g.data for g in grad_outputs]

    def L(xs):
        # Not under no_grad: fn may itself differentiate (as in gradgradcheck).
        ys = _as_tuple(fn(*xs))
        return float(sum((y.data * vk).sum() for y, vk in zip(ys, v)))

    # The analytic gradient: one backward pass through fn.
    live = [(y, g) for y, g in zip(outputs, grad_outputs) if y.requires_grad]
    if live:
        analytic = grad([y for y, _ in live], [inputs[i] for i in checked],
                        grad_outputs=[g for _, g in live], allow_unused=True)
    else:  # nothing depends on the inputs: the gradient is zero
        analytic = (None,) * len(checked)

    for k, i in enumerate(checked):
        x = inputs[i]
        xp = backend.get_array_module(x)
        a = analytic[k]
        a = xp.zeros(x.shape, dtype=x.dtype) if a is None else a.data
        if a.shape != x.shape:
            return _fail(raise_exception, f"input {i}: the gradient has shape {a.shape}, "
                         f"the input {x.shape}")

        def L_at(delta):
            shifted = list(inputs)
            shifted[i] = Tensor(x.data + delta, requires_grad=True)
            return L(shifted)

        if x.size <= max_elementwise:
            for j in range(x.size):
                e = xp.zeros(x.size, dtype=x.dtype)
                e[j] = eps
                e = e.reshape(x.shape)
                numerical = (L_at(e) - L_at(-e)) / (2 * eps)
                analytic_j = float(a.reshape(-1)[j])
                if not abs(numerical - analytic_j) <= atol + rtol * abs(numerical):
                    idx = np.unravel_index(j, x.shape)
                    return _fail(raise_exception,
                                 f"input {i} (shape {x.shape}) at index {tuple(map(int, idx))}: "
                                 f"numerical {numerical:.8g} vs analytic {analytic_j:.8g}")
        else:
            for d in range(n_directions):
                u = _draw_like(rng, x)
                u = u / float(xp.sqrt((u * u).sum()))
                numerical = (L_at(eps * u) - L_at(-eps * u)) / (2 * eps)
                analytic_d = float((a * u).sum())
                if not abs(numerical - analytic_d) <= atol + rtol * abs(numerical):
                    return _fail(raise_exception,
                                 f"input {i} (shape {x.shape}) along random direction {d}: "
                                 f"numerical {numerical:.8g} vs analytic {analytic_d:.8g}")
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, **kwargs) -> bool:
    """Check second derivatives: gradcheck of (x, v) -> v^T df/dx (with create_graph).

    Both the inputs and the upstream gradient v are varied, so the check covers the
    derivative of backward with respect to everything it reads. Takes gradcheck's options.
    """
    inputs = tuple(inputs)
    rng = np.random.default_rng(kwargs.get("seed", 0) + 1)
    outputs = _as_tuple(fn(*inputs))
    if grad_outputs is None:
        grad_outputs = tuple(Tensor(_draw_like(rng, y).astype(y.dtype)) for y in outputs)
    grad_outputs = tuple(Tensor(g.data, requires_grad=True) for g in _as_tuple(grad_outputs))
    n = len(inputs)
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]

    def first_derivative(*args):
        xs, vs = args[:n], args[n:]
        ys = _as_tuple(fn(*xs))
        live = [(y, v) for y, v in zip(ys, vs) if y.requires_grad]
        if not live:
            gs = (None,) * len(checked)
        else:
            gs = grad([y for y, _ in live], [xs[i] for i in checked],
                      grad_outputs=[v for _, v in live], create_graph=True,
                      allow_unused=True)
        zeros = backend.get_array_module(xs[0]).zeros_like
        return tuple(Tensor(zeros(xs[i].data)) if g is None else g
                     for g, i in zip(gs, checked))

    return gradcheck(first_derivative, inputs + grad_outputs, **kwargs)


def _fail(raise_exception, message):
    if raise_exception:
        raise GradcheckError("gradcheck failed: " + message)
    return False
