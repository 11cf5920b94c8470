"""The nonlinearities networks are built from: relu, leaky_relu, softplus, silu, elu.

Each derivative is written twice where that pays. Under ``create_graph=True`` backward
is built from tensor ops, so it can be differentiated again. In an ordinary backward pass
(grad mode off) the same formula is computed directly on arrays, in one pass instead of
a chain of recorded ops. The property tests check both: gradcheck runs the array path,
gradgradcheck differentiates the tensor path.
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function, Tensor, as_tensor, is_grad_enabled
from .elementwise import sigmoid, sigmoid_array, where


class ReLU(Function):
    """relu(x) = max(x, 0); relu'(x) = 1 for x > 0, else 0."""

    def forward(self, a):
        self.positive = a > 0
        return a * self.positive

    def backward(self, g):
        return g * Tensor(self.positive)


class LeakyReLU(Function):
    """x for x > 0, else slope * x."""

    def forward(self, a, negative_slope):
        xp = backend.get_array_module(a)
        self.positive, self.negative_slope = a > 0, negative_slope
        # max(x, a x) for a <= 1 (min for a > 1): the SIMD maximum is many times faster
        # than a masked where over data of random sign
        extreme = xp.maximum if negative_slope <= 1 else xp.minimum
        return extreme(a, a * negative_slope)

    def backward(self, g):
        # the local slope, 1 where x > 0 else a, as (x > 0) (1 - a) + a
        slope = self.positive * (1.0 - self.negative_slope)
        slope += self.negative_slope
        return g * Tensor(slope.astype(g.dtype, copy=False))


class Softplus(Function):
    """softplus(x) = log(1 + e^{beta x}) / beta, a smooth relu; its derivative is
    sigmoid(beta x). logaddexp(0, .) computes it without overflow for any x."""

    def forward(self, a, beta):
        xp = backend.get_array_module(a)
        self.beta = beta
        # log(1 + e^y) = max(y, 0) + log1p(e^{-|y|}): the exponent is never positive, so
        # nothing overflows (and this is far faster than logaddexp)
        y = a * beta if beta != 1 else a
        out = xp.empty_like(a)  # an array even for 0-d input
        xp.abs(y, out=out)
        xp.negative(out, out=out)
        xp.exp(out, out=out)
        xp.log1p(out, out=out)
        out += xp.maximum(y, 0)
        if beta != 1:
            out /= beta
        return out

    def backward(self, g):
        return g * sigmoid(self.inputs[0] * self.beta)


class SiLU(Function):
    """silu(x) = x sigmoid(x) (also called swish);
    silu'(x) = s (1 + x (1 - s)) with s = sigmoid(x)."""

    def forward(self, a):
        self.s = sigmoid_array(a)
        return a * self.s

    def backward(self, g):
        x = self.inputs[0]
        if not is_grad_enabled():  # plain backward: one fused array expression
            s = self.s
            return Tensor(g.data * (s * (1 + x.data * (1 - s))))
        s = sigmoid(x)
        return g * (s * (1 + x * (1 - s)))


class ELU(Function):
    """x for x > 0, else alpha (e^x - 1); the derivative for x <= 0 is alpha e^x,
    which is the output plus alpha."""

    def forward(self, a, alpha):
        xp = backend.get_array_module(a)
        self.alpha = alpha
        self.positive = a > 0
        # max(x, 0) + alpha (e^{min(x, 0)} - 1): each term vanishes on the other side of 0
        out = alpha * xp.expm1(xp.minimum(a, 0))
        out += xp.maximum(a, 0)
        return out

    def backward(self, g):
        positive = Tensor(self.positive)
        return where(positive, g, g * (self.output + self.alpha))


def relu(x):
    """max(x, 0), element-wise."""
    return ReLU.apply(as_tensor(x))


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x."""
    return LeakyReLU.apply(as_tensor(x), negative_slope=negative_slope)


def softplus(x, beta=1.0):
    """log(1 + exp(beta * x)) / beta, computed stably for any x."""
    return Softplus.apply(as_tensor(x), beta=beta)


def silu(x):
    """x * sigmoid(x)."""
    return SiLU.apply(as_tensor(x))


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return ELU.apply(as_tensor(x), alpha=alpha)
