"""Coupling layers: invertible by construction, with a triangular Jacobian.

Split x into a part x_a that passes unchanged and a part x_b that is transformed with
parameters computed from x_a alone (Dinh et al. 2015, eq. 3; Dinh et al. 2017, eqs. 4-5,
and eq. 9 for the masked form below):

    additive (NICE):      y_a = x_a,   y_b = x_b + t(x_a)
    affine (RealNVP):     y_a = x_a,   y_b = x_b * exp(s(x_a)) + t(x_a)

The Jacobian dy/dx is block triangular with identity on the x_a block and diag(exp(s))
on the x_b block, so

    log |det dy/dx| = sum_b s_b(x_a)        (0 for the additive coupling),

and the inverse needs only the same networks, run forwards:

    x_a = y_a,   x_b = (y_b - t(y_a)) * exp(-s(y_a)).

s and t can be any networks; they never need inverting. Two ways to split:

    MaskedCoupling    a fixed binary mask b (1 = x_a): alternating features for vectors,
                      the checkerboard b_ij = (i + j) mod 2 for images; x_a = b * x.
    ChannelCoupling   the first half of the channels against the second (Dinh et al. 2017,
                      section 3.4), usually after a squeeze.

Scale of s: an unbounded s can blow up early in training, so it is bounded.
"tanh": s = scale * tanh(raw) with a learned scale per feature (RealNVP); "sigmoid":
exp(s) = sigmoid(raw + 2), so log-scales lie in (-inf, 0) and start near 0 (Glow).
The networks' last layer starts at zero, so every coupling starts as the identity
("additive", "tanh") or as a constant scaling by sigmoid(2) = 0.88 ("sigmoid").
"""
from __future__ import annotations

import numpy as np

import tinygen as tg
from tinygen import nn
from tinygen.nn import Parameter
from tinygen.nn import functional as F

from .base import Flow

__all__ = ["MaskedCoupling", "ChannelCoupling", "checkerboard_mask", "alternating_mask",
           "CouplingMLP", "CouplingConvNet"]

SCALES = ("additive", "tanh", "sigmoid")


def checkerboard_mask(shape, parity: int = 0):
    """The checkerboard b[c, i, j] = (i + j + parity) mod 2 for ``shape`` (C, H, W):
    float32 array; 1 marks the pixels that pass unchanged."""
    c, h, w = shape
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.broadcast_to((i + j + parity) % 2, (c, h, w)).astype(np.float32)


def alternating_mask(num_features: int, parity: int = 0):
    """b_d = (d + parity) mod 2 for d < num_features: float32 (num_features,)."""
    return ((np.arange(num_features) + parity) % 2).astype(np.float32)


def _zero_last(layer):
    layer.weight.data[...] = 0
    if layer.bias is not None:
        layer.bias.data[...] = 0
    return layer


class CouplingMLP(nn.Module):
    """The networks s and t for vectors: an MLP in -> hidden ... -> 2 * out (s, t), the
    last layer zero-initialised. (N, in_features) -> (N, 2 * out_features)."""

    def __init__(self, in_features, out_features, hidden=256, num_layers=2):
        super().__init__()
        sizes = [in_features] + [hidden] * num_layers
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(_zero_last(nn.Linear(sizes[-1], 2 * out_features)))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class CouplingConvNet(nn.Module):
    """The networks s and t for images: 3x3 conv -> ReLU -> [1x1 conv -> ReLU] x
    (num_layers - 1) -> 3x3 conv to 2 * out_channels (s, t), the last zero-initialised
    (Glow's NN(): 3x3, 1x1, 3x3). (N, in_channels, H, W) -> (N, 2 out_channels, H, W)."""

    def __init__(self, in_channels, out_channels, hidden=64, num_layers=2):
        super().__init__()
        layers = [nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(hidden, hidden, 1), nn.ReLU()]
        layers.append(_zero_last(nn.Conv2d(hidden, 2 * out_channels, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class _Coupling(Flow):
    def __init__(self, net, scale, num_scales):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"{type(self).__name__}: scale must be one of {SCALES}, got {scale!r}")
        self.net, self.scale = net, scale
        if scale == "tanh":
            self.tanh_scale = Parameter(tg.ones(num_scales))

    def _s_t(self, x_a):
        """The log-scale s (None for an additive coupling) and the shift t, from the
        network's output on x_a: its first half of channels is s before bounding, its
        second t."""
        raw_s, t = self.net(x_a).chunk(2, axis=1)
        if self.scale == "additive":
            return None, t
        if self.scale == "tanh":
            s = self.tanh_scale.reshape(1, -1, *([1] * (raw_s.ndim - 2))) * raw_s.tanh()
        else:
            s = F.logsigmoid(raw_s + 2.0)
        return s, t


class MaskedCoupling(_Coupling):
    """Coupling with a fixed binary mask b (1 = passes unchanged): for x of shape
    (N, *mask.shape),

        y = b x + (1 - b) (x exp(s(b x)) + t(b x)),   log_det = sum (1 - b) s(b x).

    Args:
        mask: float array, 1 where x passes unchanged (e.g. ``checkerboard_mask``).
        net: maps (N, *mask.shape) to (N, 2 C, ...) [images] or (N, 2 D) [vectors].
        scale: "additive" (NICE), "tanh" (RealNVP) or "sigmoid" (Glow).
    """

    def __init__(self, mask, net, scale="tanh"):
        mask = np.asarray(mask, dtype=np.float32)
        super().__init__(net, scale, mask.shape[0])
        self.register_buffer("mask", tg.tensor(mask))

    def _check(self, x):
        if tuple(x.shape[1:]) != tuple(self.mask.shape):
            raise ValueError(f"MaskedCoupling: expected (N, {', '.join(map(str, self.mask.shape))}), "
                             f"got shape {x.shape}")

    def forward(self, x):
        self._check(x)
        b = self.mask
        x_a = x * b
        s, t = self._s_t(x_a)
        if s is None:
            return x_a + (1 - b) * (x + t), tg.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        s = (1 - b) * s
        y = x_a + (1 - b) * (x * s.exp() + t)
        return y, s.reshape(x.shape[0], -1).sum(axis=1)

    def inverse(self, y):
        self._check(y)
        b = self.mask
        y_a = y * b
        s, t = self._s_t(y_a)
        if s is None:
            return y_a + (1 - b) * (y - t)
        return y_a + (1 - b) * (y - t) * (-s).exp()


class ChannelCoupling(_Coupling):
    """Coupling across channels (axis 1): x_a = the first half, x_b = the second,

        y_b = x_b exp(s(x_a)) + t(x_a),   log_det = sum s(x_a).

    Args:
        num_channels: C (even): x is (N, C, H, W) or (N, C).
        net: maps (N, C/2, ...) to (N, C, ...): s and t for the C/2 channels of x_b.
        scale: "additive", "tanh" or "sigmoid", as for MaskedCoupling.
    """

    def __init__(self, num_channels, net, scale="sigmoid"):
        if num_channels % 2:
            raise ValueError(f"ChannelCoupling: num_channels must be even, got {num_channels}")
        super().__init__(net, scale, num_channels // 2)
        self.num_channels = int(num_channels)

    def _check(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"ChannelCoupling({self.num_channels}): expected {self.num_channels} "
                             f"channels on axis 1, got shape {x.shape}")

    def forward(self, x):
        self._check(x)
        x_a, x_b = x.chunk(2, axis=1)
        s, t = self._s_t(x_a)
        if s is None:
            return tg.cat([x_a, x_b + t], axis=1), tg.zeros(x.shape[0], dtype=x.dtype,
                                                            device=x.device)
        y_b = x_b * s.exp() + t
        return tg.cat([x_a, y_b], axis=1), s.reshape(x.shape[0], -1).sum(axis=1)

    def inverse(self, y):
        self._check(y)
        y_a, y_b = y.chunk(2, axis=1)
        s, t = self._s_t(y_a)
        if s is None:
            return tg.cat([y_a, y_b - t], axis=1)
        return tg.cat([y_a, (y_b - t) * (-s).exp()], axis=1)
