"""Element-wise ops: arithmetic, the elementary functions, and comparisons.

Binary ops broadcast like NumPy. Each backward returns the gradient at the broadcast
(output) shape; the engine sums it back to each input's shape. For y = f(x) the
backward is g * f'(x), written with tensor ops so it can be differentiated again:
the second derivative then follows from differentiating f'(x) itself.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor


def _binary(name, cls, a, b, **params):
    """Apply a binary Function, turning Python numbers into tensors of the other's dtype."""
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{name}: at least one argument must be a Tensor")
        a = as_tensor(a, like=b)
    else:
        b = as_tensor(b, like=a)
    try:
        return cls.apply(a, b, **params)
    except ValueError as e:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be "
                             "broadcast together") from None
        raise e


def _constant(array) -> Tensor:
    """A tensor that is a constant of the graph (a mask, a sign): no gradient flows into it."""
    return Tensor(array)


# --------------------------------------------------------------------------- arithmetic

class Add(Function):
    """y = a + b;  dL/da = g,  dL/db = g."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


def add(a, b):
    """a + b, broadcasting."""
    return _binary("add", Add, a, b)


class Sub(Function):
    """y = a - b;  dL/da = g,  dL/db = -g."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g


def sub(a, b):
    """a - b, broadcasting."""
    return _binary("sub", Sub, a, b)


class Mul(Function):
    """y = a b;  dL/da = g b,  dL/db = g a."""
    saves = "cross"  # d(ab)/da = b: b is read only when a wants a gradient

    def forward(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.inputs
        return g * b, g * a


def mul(a, b):
    """a * b, element-wise, broadcasting."""
    return _binary("mul", Mul, a, b)


class Div(Function):
    """y = a / b;  dL/da = g / b,  dL/db = -g a / b^2 = -g y / b."""
    saves = (1,)  # b; dL/db is formed from the output y

    def forward(self, a, b):
        return a / b

    def backward(self, g):
        b = self.inputs[1]
        # each only when wanted: dividing by a constant (a count, a norm) needs no dL/db.
        # dL/db as -(g y) / b, not -(g a) / b^2: b^2 underflows to 0 in float32 for
        # |b| < 1e-23 (and overflows for |b| > 2e19), where the first form stays exact
        # (e.g. the standardised value z = (x - mu) / sigma at sigma = e^-60).
        ga = g / b if self.needs_input_grad[0] else None
        gb = -(g * self.output) / b if self.needs_input_grad[1] else None
        return ga, gb


def div(a, b):
    """a / b, element-wise, broadcasting."""
    return _binary("div", Div, a, b)


class Neg(Function):
    """y = -x;  dL/dx = -g."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


def neg(x):
    """-x."""
    return Neg.apply(as_tensor(x))


class PowScalar(Function):
    """y = x^p, p a constant;  dL/dx = g p x^(p-1)  (0 for p = 0: x^0 = 1 for every x)."""

    def forward(self, a, p):
        self.p = p
        return a ** p

    def backward(self, g):
        (a,) = self.inputs
        if self.p == 0:  # a zero gradient, not "unused": x was used, as in PyTorch
            return Tensor(backend.get_array_module(g).zeros(a.shape, dtype=g.dtype))
        return g * self.p * pow_scalar(a, self.p - 1)


def pow_scalar(x, p):
    """x^p for a tensor x and a constant number p; shape of x."""
    return PowScalar.apply(x, p=p)


class Pow(Function):
    """y = a^b;  dL/da = g b a^(b-1) (0 at b = 0),  dL/db = g y log a (0 at a = 0, b >= 0).

    The two special cases are the limits, as in PyTorch: a^0 = 1 for every a, and at
    a = 0, b > 0 the term a^b log a tends to 0 (the formulas alone give 0 inf = nan).
    For a < 0, dL/db is nan: a^b is not real-differentiable in b there.
    """

    def forward(self, a, b):
        return a ** b

    def backward(self, g):
        a, b = self.inputs
        xp = backend.get_array_module(a)
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):  # 0^-1, log 0: masked below
            if self.needs_input_grad[0]:
                ga = g * b * (a ** (b - 1))
                zero_exponent = xp.logical_and(b.data == 0, a.data == 0)  # 0 * 0^-1 = nan
                if zero_exponent.any():
                    ga = where(zero_exponent, 0.0, ga)
            if self.needs_input_grad[1]:
                gb = g * self.output * log(a)
                zero_base = xp.logical_and(a.data == 0, b.data >= 0)
                if zero_base.any():
                    gb = where(zero_base, 0.0, gb)
        return ga, gb


def pow(a, b):
    """a ** b. A number as exponent gives x^p (any real x for integer p); a tensor
    exponent needs a > 0 where the gradient with respect to b is wanted."""
    if isinstance(a, Tensor) and isinstance(b, numbers.Number) and not isinstance(b, bool):
        return pow_scalar(a, b)
    return _binary("pow", Pow, a, b)


class Abs(Function):
    """y = |x|;  dL/dx = g sign(x)  (0 at x = 0)."""

    def forward(self, a):
        return backend.get_array_module(a).abs(a)

    def backward(self, g):
        (a,) = self.inputs
        return g * sign(a)  # the kink at 0 gets the subgradient 0, as in NumPy's sign


def abs(x):
    """|x|; its gradient at 0 is taken as 0."""
    return Abs.apply(as_tensor(x))


def sign(x):
    """The sign of x (-1, 0 or 1), a constant of the graph: its derivative is 0 a.e."""
    x = as_tensor(x)
    return Tensor(backend.get_array_module(x).sign(x.data))


# --------------------------------------------------------------------------- elementary functions

class Exp(Function):
    """y = e^x;  dL/dx = g y."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a):
        return backend.get_array_module(a).exp(a)

    def backward(self, g):
        return g * self.output  # (e^x)' = e^x: the output, not a second exp


def exp(x):
    """e^x."""
    return Exp.apply(as_tensor(x))


class Log(Function):
    """y = log x;  dL/dx = g / x."""

    def forward(self, a):
        return backend.get_array_module(a).log(a)

    def backward(self, g):
        return g / self.inputs[0]


def log(x):
    """The natural logarithm, for x > 0."""
    return Log.apply(as_tensor(x))


class Log1p(Function):
    """y = log(1 + x);  dL/dx = g / (1 + x)."""

    def forward(self, a):
        return backend.get_array_module(a).log1p(a)

    def backward(self, g):
        return g / (self.inputs[0] + 1)


def log1p(x):
    """log(1 + x), accurate for small x; x > -1."""
    return Log1p.apply(as_tensor(x))


class Sqrt(Function):
    """y = sqrt x;  dL/dx = g / (2 y)."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a):
        return backend.get_array_module(a).sqrt(a)

    def backward(self, g):
        return g / (self.output * 2)  # (sqrt x)' = 1 / (2 sqrt x), reusing the output


def sqrt(x):
    """The square root, for x >= 0 (x > 0 for a finite gradient)."""
    return Sqrt.apply(as_tensor(x))


class Sin(Function):
    """y = sin x;  dL/dx = g cos x."""

    def forward(self, a):
        return backend.get_array_module(a).sin(a)

    def backward(self, g):
        return g * cos(self.inputs[0])


def sin(x):
    """sin x, element-wise (radians)."""
    return Sin.apply(as_tensor(x))


class Cos(Function):
    """y = cos x;  dL/dx = -g sin x."""

    def forward(self, a):
        return backend.get_array_module(a).cos(a)

    def backward(self, g):
        return -(g * sin(self.inputs[0]))


def cos(x):
    """cos x, element-wise (radians)."""
    return Cos.apply(as_tensor(x))


class Tanh(Function):
    """y = tanh x;  dL/dx = g (1 - y^2)."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a):
        return backend.get_array_module(a).tanh(a)

    def backward(self, g):
        y = self.output
        return g * (1 - y * y)  # tanh' = 1 - tanh^2, reusing the output


def tanh(x):
    """tanh x, element-wise."""
    return Tanh.apply(as_tensor(x))


def sigmoid_array(a):
    """1 / (1 + e^{-a}) on an array. For a < -88 (float32) e^{-a} overflows to inf and
    the result is 1 / inf = 0, the correct limit, so the overflow is silenced rather
    than avoided; the form stays accurate for large negative a, where 1 - sigma would
    not be. Four in-place passes: 1/15 to 1/18 of the time of exp(-logaddexp(0, -a)) on
    1.6M float32 values here (timeit, 2 cores); test_op_values checks the plain formula."""
    xp = backend.get_array_module(a)
    s = xp.empty_like(a)  # an array even for 0-d input (ufuncs return scalars there)
    with np.errstate(over="ignore"):
        xp.negative(a, out=s)
        xp.exp(s, out=s)
    s += 1
    xp.reciprocal(s, out=s)
    return s


class Sigmoid(Function):
    """y = sigma(x) = 1 / (1 + e^{-x});  dL/dx = g y (1 - y)."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a):
        return sigmoid_array(a)

    def backward(self, g):
        y = self.output
        return g * y * (1 - y)  # sigma' = sigma (1 - sigma), reusing the output


def sigmoid(x):
    """The logistic function 1 / (1 + e^{-x}), computed without overflow."""
    return Sigmoid.apply(as_tensor(x))


# --------------------------------------------------------------------------- piecewise

class Maximum(Function):
    """y = max(a, b);  dL/da = g [a > b],  dL/db = g [a < b]  (g/2 each where a = b)."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        out = xp.maximum(a, b)
        # Where a == b the two share the gradient equally: this is also what a central
        # difference measures there, and it keeps max(a, b) + min(a, b) = a + b exact.
        self.wa = ((a > b) + 0.5 * (a == b)).astype(out.dtype, copy=False)
        return out

    def backward(self, g):
        wa = _constant(self.wa)  # the mask is a constant: its derivative is 0 a.e.
        return g * wa, g * (1 - wa)


def maximum(a, b):
    """The element-wise maximum; at ties each input gets half the gradient."""
    return _binary("maximum", Maximum, a, b)


class Minimum(Function):
    """y = min(a, b);  dL/da = g [a < b],  dL/db = g [a > b]  (g/2 each where a = b)."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        out = xp.minimum(a, b)
        self.wa = ((a < b) + 0.5 * (a == b)).astype(out.dtype, copy=False)  # as in Maximum
        return out

    def backward(self, g):
        wa = _constant(self.wa)
        return g * wa, g * (1 - wa)


def minimum(a, b):
    """The element-wise minimum; at ties each input gets half the gradient."""
    return _binary("minimum", Minimum, a, b)


class Where(Function):
    """y = where(c, a, b);  dL/da = g [c],  dL/db = g [not c]  (c is not differentiated)."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, b, cond):
        self.cond = cond
        return backend.get_array_module(a).where(cond, a, b)

    def backward(self, g):
        cond = _constant(self.cond)
        return where(cond, g, 0.0), where(cond, 0.0, g)


def where(cond, a, b):
    """Elements of a where cond is true, else of b, broadcasting all three.

    cond is a boolean Tensor or array (not differentiated); a and b may be numbers.
    """
    cond = cond.data if isinstance(cond, Tensor) else cond
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        like = a if isinstance(a, Tensor) else b
        xp = backend.get_array_module(like)
        cond = xp.asarray(cond)
        if cond.dtype != np.bool_:
            raise TypeError(f"where: cond must be boolean, got dtype {cond.dtype}")
        a, b = as_tensor(a, like=like), as_tensor(b, like=like)
        try:
            return Where.apply(a, b, cond=cond)
        except ValueError:
            raise ValueError(f"where: shapes {cond.shape}, {a.shape} and {b.shape} cannot "
                             "be broadcast together") from None
    raise TypeError("where: a or b must be a Tensor")


class Clip(Function):
    """y = clip(x, lo, hi);  dL/dx = g [lo <= x <= hi]  (g everywhere if straight_through)."""
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, a, lo, hi, straight_through=False):
        xp = backend.get_array_module(a)
        self.straight_through = straight_through
        if straight_through:
            return xp.clip(a, lo, hi)
        inside = xp.ones(a.shape, dtype=bool)
        if lo is not None:
            inside &= a >= lo
        if hi is not None:
            inside &= a <= hi
        self.inside = inside.astype(a.dtype)
        return xp.clip(a, lo, hi)

    def backward(self, g):
        if self.straight_through:
            return g
        return g * _constant(self.inside)


def clip(x, min=None, max=None, straight_through=False):
    """x limited to [min, max] (either may be None). The gradient is 1 inside the
    closed interval and 0 outside; with straight_through=True it is 1 everywhere (the
    clamp changes the value only, as PyTorch's in-place clamp under no_grad does)."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    return Clip.apply(as_tensor(x), lo=min, hi=max, straight_through=straight_through)


# --------------------------------------------------------------------------- comparisons

def _compare(name, op, a, b):
    if not isinstance(a, Tensor):
        a = as_tensor(a, like=b)
    b = as_tensor(b, like=a)
    if a.device != b.device:
        raise RuntimeError(f"{name}: inputs are on different devices, '{a.device}' and "
                           f"'{b.device}'")
    try:
        return Tensor(op(a.data, b.data))
    except ValueError:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be broadcast "
                         "together") from None


def lt(a, b):
    """a < b as a boolean tensor (not differentiable)."""
    return _compare("lt", lambda x, y: x < y, a, b)


def le(a, b):
    """a <= b as a boolean tensor (not differentiable)."""
    return _compare("le", lambda x, y: x <= y, a, b)


def gt(a, b):
    """a > b as a boolean tensor (not differentiable)."""
    return _compare("gt", lambda x, y: x > y, a, b)


def ge(a, b):
    """a >= b as a boolean tensor (not differentiable)."""
    return _compare("ge", lambda x, y: x >= y, a, b)


def eq(a, b):
    """a == b as a boolean tensor (not differentiable)."""
    if not isinstance(b, (Tensor, numbers.Number)) and not hasattr(b, "dtype"):
        return NotImplemented
    return _compare("eq", lambda x, y: x == y, a, b)


def ne(a, b):
    """a != b as a boolean tensor (not differentiable)."""
    if not isinstance(b, (Tensor, numbers.Number)) and not hasattr(b, "dtype"):
        return NotImplemented
    return _compare("ne", lambda x, y: x != y, a, b)
