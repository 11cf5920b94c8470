"""Standardisation over axes, the core of batch, group and layer normalisation:

    y = (x - mu) / sqrt(sigma^2 + eps),   mu = mean(x),  sigma^2 = mean((x - mu)^2),

the mean and (biased) variance taken over ``axis``. With r = (sigma^2 + eps)^(-1/2) and
n the number of elements averaged over, its vector-Jacobian product is

    dL/dx = r (g - mean(g) - y mean(g y)),       g = dL/dy.

Written as one op rather than a chain of mean, subtract, var, divide, both passes touch
the data a few times instead of a few dozen: forward and backward together took 1/2.6 of
the chain's time here for 64 x 32 x 28 x 28 float32 values over (N, H, W) (timeit, 2
cores), and test_fast_routes checks its gradient against the chain's. The plain backward
computes the formula on arrays; under create_graph it is built from tensor ops, with y
the op's own output and r recomputed from x, so second derivatives are exact.

The centred values are computed around a sample of the data, not around the mean alone:
d = x - x_0 (x_0 the first element of each slice) is exact when the values lie within a
factor 2 of each other (Sterbenz's lemma), so for nearly constant input the mean of d,
and d - mean(d), carry no cancellation error. Centring on the float32 mean directly is
off by up to half a unit in the last place of the mean, which for constant input of
1e6 / 7 made sigma^2 = 2.4e-4 instead of 0 and y up to 0.98 instead of 0. The shift costs
one in-place pass; the batch norm reuses the statistics computed here (see ``stats``)
instead of a further mean and var over the batch.
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function, Tensor, as_tensor, is_grad_enabled
from .reduce import mean, normalize_axis, var


class Standardize(Function):
    """y = (x - mu) r, r = (sigma^2 + eps)^(-1/2);  dL/dx = r (g - mean(g) - y mean(g y))."""

    def forward(self, x, axes, eps, stats=None):
        xp = backend.get_array_module(x)
        self.axes, self.eps = axes, eps
        shift = x[tuple(slice(0, 1) if i in axes else slice(None) for i in range(x.ndim))]
        centred = x - shift        # exact for nearly constant slices (see the module doc)
        mu = centred.mean(axis=axes, keepdims=True)
        centred -= mu              # in place: now x - mean(x), accurately
        variance = xp.mean(centred * centred, axis=axes, keepdims=True)
        if stats is not None:      # the batch's mean and biased variance, for batch norm
            stats.append((mu + shift, variance))
        self.r = (1.0 / xp.sqrt(variance + eps)).astype(x.dtype, copy=False)
        centred *= self.r          # in place: `centred` becomes y
        return centred

    def backward(self, g):
        axes, y = self.axes, self.output
        if not is_grad_enabled():
            # plain backward: arrays, a handful of passes; 1.9 times faster here than the
            # tensor ops below for 1.6M values over (N, H, W) (timeit, 2 cores), and
            # test_fast_routes checks that the two agree
            gd, yd = g.data, y.data
            inner = gd - gd.mean(axis=axes, keepdims=True)
            # mean(g y) as one einsum, without the temporary g y: this pays for the
            # forward's extra centring pass (1/1.2 of the time of (g * y).mean here for
            # 64 x 32 x 28 x 28 and 512 x 784 float32 values, timeit, 2 cores)
            letters = "abcdefghijklmnopqrstuvwxyz"[:gd.ndim]
            kept = "".join(c for i, c in enumerate(letters) if i not in axes)
            gy = backend.get_array_module(gd).einsum(f"{letters},{letters}->{kept}", gd, yd)
            n = gd.size // max(gy.size, 1)
            inner -= yd * (gy.reshape(self.r.shape) / n).astype(gd.dtype, copy=False)
            inner *= self.r
            return Tensor(inner)
        x = self.inputs[0]
        r = (var(x, axes, keepdims=True) + self.eps) ** -0.5
        return r * (g - mean(g, axes, keepdims=True) - y * mean(g * y, axes, keepdims=True))


def standardize(x, axis=None, eps=1e-5, stats=None):
    """(x - mean) / sqrt(var + eps) over ``axis`` (None: all), the biased variance.

    stats: a list, or None; given a list, the pair (mean, biased variance) of x over
    ``axis`` (arrays, keepdims shape) is appended to it (batch norm's running estimates).
    """
    x = as_tensor(x)
    return Standardize.apply(x, axes=normalize_axis(axis, x.ndim, "standardize"), eps=eps,
                             stats=stats)
