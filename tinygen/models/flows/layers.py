"""The invertible layers the image and vector flows are built of, each with its exact
inverse and log-determinant.

    Squeeze            (C, H, W) -> (4C, H/2, W/2): each 2x2 block of pixels becomes four
                       channels (Dinh et al. 2017, section 3.6). A permutation: log_det 0.
    Flatten            (C, H, W) -> (C H W,). log_det 0.
    FactorOut          the multi-scale architecture (Dinh et al. 2017, section 3.6): half
                       of the channels leave the flow as final latents z_1, the rest go on
                       through the deeper layers. The latent is the concatenation.
    ActNorm            y = (x + b) * exp(log_scale) per channel (Kingma & Dhariwal 2018,
                       section 3.1), with b, log_scale initialised from the first batch so
                       that y has zero mean and unit variance per channel;
                       log_det = H W sum_c log_scale_c.
    InvertibleConv1x1  y = W x at every pixel, W a C x C matrix (Glow, section 3.2);
                       log_det = H W log |det W|. With lu=True, W = P L (U + diag(s)),
                       P a fixed permutation, L unit lower triangular, U strictly upper
                       triangular, so log |det W| = sum_c log |s_c| costs O(C).
    Scale              y = x * exp(s), one s per dimension: NICE's diagonal scaling layer
                       (Dinh et al. 2015, section 3.3); log_det = sum_d s_d.
    LogitTransform     y = logit(alpha + (1 - 2 alpha) x) for x in [0, 1] (Dinh et al.
                       2017, section 4.1, in the symmetric form of Papamakarios et al.
                       2017): data with bounded support mapped onto R, with
                       log_det = sum_d [log(1 - 2 alpha) - log s_d - log(1 - s_d)],
                       s = alpha + (1 - 2 alpha) x.
    Reverse            the order of the features reversed (axis 1). log_det 0.

Shapes: images (N, C, H, W), vectors (N, D); every log_det is (N,).
"""
from __future__ import annotations

import math

import numpy as np

import tinygen as tg
from tinygen import random as _random
from tinygen.nn import Parameter

from .base import Flow

__all__ = ["Squeeze", "Flatten", "FactorOut", "ActNorm", "InvertibleConv1x1", "Scale",
           "LogitTransform", "Reverse"]


def _zeros_log_det(x):
    return tg.zeros(x.shape[0], dtype=x.dtype, device=x.device)


def _check_image(owner, x, channels=None):
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{owner}: expected images {want}, got shape {x.shape}")


class Squeeze(Flow):
    """(N, C, H, W) -> (N, 4C, H/2, W/2): pixel (2i + di, 2j + dj) of channel c becomes
    pixel (i, j) of channel 4c + 2 di + dj (Dinh et al. 2017, section 3.6). For a grey
    image (C = 1) each half of the channels then holds two of the four pixels of every
    2x2 block, one of each checkerboard colour, so a channel coupling after the squeeze
    splits the pixels differently from the checkerboard couplings before it.

    Raises:
        ValueError: H or W odd, or not an image.
    """

    def forward(self, x):
        _check_image("Squeeze", x)
        n, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze: height and width must be even, got shape {x.shape}")
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4)
        return y.reshape(n, 4 * c, h // 2, w // 2), _zeros_log_det(x)

    def inverse(self, y):
        _check_image("Squeeze.inverse", y)
        n, c4, h, w = y.shape
        if c4 % 4:
            raise ValueError(f"Squeeze.inverse: channels must be a multiple of 4, got shape {y.shape}")
        x = y.reshape(n, c4 // 4, 2, 2, h, w).transpose(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c4 // 4, 2 * h, 2 * w)


class Flatten(Flow):
    """(N, *shape) -> (N, prod(shape)); its inverse restores ``shape``."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"Flatten: expected (N, {', '.join(map(str, self.shape))}), "
                             f"got shape {x.shape}")
        return x.reshape(x.shape[0], -1), _zeros_log_det(x)

    def inverse(self, y):
        return y.reshape(y.shape[0], *self.shape)


class FactorOut(Flow):
    """The multi-scale step: of an input h of shape (N, C, H, W), the first
    ``num_factored`` channels are the latent z_1 at this scale and leave the flow; the
    rest go through ``rest``, a Flow whose output is flat (N, D'). Output: the flat
    concatenation [z_1, rest(h_2)] of shape (N, num_factored H W + D').

    Both parts are scored by the same N(0, I) prior (Dinh et al. 2017; Glow instead
    learns a prior for z_1 conditioned on h_2, a refinement this library leaves out).

    Args:
        in_shape: (C, H, W) of the input.
        num_factored: channels factored out, 1 <= num_factored < C.
        rest: the Flow for the remaining channels, ending flat (e.g. with ``Flatten``).
    """

    def __init__(self, in_shape, num_factored: int, rest: Flow):
        super().__init__()
        c, h, w = (int(s) for s in in_shape)
        if not 1 <= num_factored < c:
            raise ValueError(f"FactorOut: num_factored must be in [1, {c - 1}] for {c} "
                             f"channels, got {num_factored}")
        self.in_shape, self.num_factored, self.rest = (c, h, w), int(num_factored), rest

    def forward(self, x):
        _check_image("FactorOut", x, self.in_shape[0])
        k = self.num_factored
        z1 = x[:, :k].reshape(x.shape[0], -1)
        z2, log_det = self.rest(x[:, k:])
        return tg.cat([z1, z2], axis=1), log_det

    def inverse(self, y):
        c, h, w = self.in_shape
        k = self.num_factored * h * w
        z1 = y[:, :k].reshape(y.shape[0], self.num_factored, h, w)
        return tg.cat([z1, self.rest.inverse(y[:, k:])], axis=1)


class ActNorm(Flow):
    """y = (x + bias) * exp(log_scale), per channel (axis 1), for (N, C, H, W) or (N, C).

    Data-dependent initialisation (Glow, section 3.1): the first call in training mode
    sets bias = -mean and log_scale = -log(std) of that batch per channel, so that the
    batch comes out with zero mean and unit variance; afterwards both are ordinary
    parameters. ``initialized`` is a buffer, so a loaded checkpoint is not re-initialised.

    log_det = (H W) sum_c log_scale_c for every example.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.num_channels, self.eps = int(num_channels), float(eps)
        self.bias = Parameter(tg.zeros(self.num_channels))
        self.log_scale = Parameter(tg.zeros(self.num_channels))
        self.register_buffer("initialized", tg.Tensor(np.array(0, dtype=np.int64)))

    def _view(self, p, x):
        return p.reshape(1, -1, *([1] * (x.ndim - 2)))

    def _initialize(self, x):
        if x.shape[0] * math.prod(x.shape[2:]) < 2:
            raise ValueError(f"ActNorm({self.num_channels}): its data-dependent "
                             "initialisation needs at least 2 values per channel (a batch of "
                             f"at least 2 examples), got shape {x.shape}")
        xp = tg.get_array_module(x.data)
        axes = (0,) + tuple(range(2, x.ndim))
        mean = x.data.mean(axis=axes)
        std = xp.sqrt(x.data.var(axis=axes)) + self.eps
        self.bias.data[...] = -mean
        self.log_scale.data[...] = -xp.log(std)
        self.initialized.data[...] = 1

    def forward(self, x):
        if x.ndim not in (2, 4) or x.shape[1] != self.num_channels:
            raise ValueError(f"ActNorm({self.num_channels}): expected (N, {self.num_channels}) "
                             f"or (N, {self.num_channels}, H, W), got shape {x.shape}")
        if self.training and not int(self.initialized.data):
            self._initialize(x)
        y = (x + self._view(self.bias, x)) * self._view(self.log_scale, x).exp()
        pixels = math.prod(x.shape[2:])
        log_det = (pixels * self.log_scale.sum()) * tg.ones(x.shape[0], dtype=x.dtype,
                                                             device=x.device)
        return y, log_det

    def inverse(self, y):
        return y * self._view(-self.log_scale, y).exp() - self._view(self.bias, y)


def _lu_decompose(w):
    """P, L, U with w = P L U (partial pivoting; Doolittle): float64 arrays, L unit lower
    triangular, U upper triangular. Used once, to parameterise a random rotation."""
    n = w.shape[0]
    u, perm, lower = w.astype(np.float64).copy(), np.arange(n), np.eye(n)
    for k in range(n):
        p = k + int(np.argmax(np.abs(u[k:, k])))  # the largest pivot: stable
        u[[k, p]], perm[[k, p]] = u[[p, k]], perm[[p, k]]
        lower[[k, p], :k] = lower[[p, k], :k]
        lower[k + 1:, k] = u[k + 1:, k] / u[k, k]
        u[k + 1:] -= lower[k + 1:, k:k + 1] * u[k]
    p_matrix = np.eye(n)[:, perm]  # P[perm[i], i] = 1, so that P^T w = L U
    return p_matrix, lower, np.triu(u)


class InvertibleConv1x1(Flow):
    """y = W x at every pixel: a learned C x C mixing of the channels (Glow, section 3.2).

    W starts as a random rotation (log |det W| = 0). With lu=False it is a free matrix
    and log_det = H W log |det W| through ``tinygen.slogdet`` (O(C^3)). With lu=True
    (the default, Glow's eq. 10) W = P L (U + diag(s)) with P fixed, L = the strictly
    lower triangle plus I, U strictly upper triangular, s = sign * exp(log_abs_s), so

        log |det W| = sum_c log |s_c|,     log_det = H W sum_c log |s_c|.

    Input (N, C, H, W) or (N, C).
    """

    def __init__(self, num_channels: int, lu: bool = True, seed: int | None = None):
        super().__init__()
        c = self.num_channels = int(num_channels)
        self.lu = bool(lu)
        rng = _random.generator(seed)  # without a seed: from tinygen.manual_seed's state
        q, _ = np.linalg.qr(rng.standard_normal((c, c)))
        if not self.lu:
            self.weight = Parameter(tg.tensor(q.astype(np.float32)))
            return
        p, lower, upper = _lu_decompose(q)
        s = np.diag(upper)
        self.register_buffer("permutation", tg.tensor(p.astype(np.float32)))
        self.register_buffer("sign_s", tg.tensor(np.sign(s).astype(np.float32)))
        self.register_buffer("lower_mask", tg.tensor(np.tril(np.ones((c, c)), -1).astype(np.float32)))
        self.register_buffer("eye", tg.tensor(np.eye(c, dtype=np.float32)))
        self.lower = Parameter(tg.tensor(np.tril(lower, -1).astype(np.float32)))
        self.upper = Parameter(tg.tensor(np.triu(upper, 1).astype(np.float32)))
        self.log_abs_s = Parameter(tg.tensor(np.log(np.abs(s)).astype(np.float32)))

    def matrix(self):
        """W, (C, C)."""
        if not self.lu:
            return self.weight
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.mT + self.eye * (self.sign_s * self.log_abs_s.exp())
        return self.permutation @ (lower @ upper)

    def log_abs_det(self):
        """log |det W|, a scalar Tensor."""
        if not self.lu:
            return tg.slogdet(self.weight)[1]
        return self.log_abs_s.sum()

    def _mix(self, x, w):
        if x.ndim == 2:
            return x @ w.mT
        return tg.conv2d(x, w.reshape(*w.shape, 1, 1))

    def forward(self, x):
        if x.ndim not in (2, 4) or x.shape[1] != self.num_channels:
            raise ValueError(f"InvertibleConv1x1({self.num_channels}): expected (N, "
                             f"{self.num_channels}, H, W) or (N, {self.num_channels}), got shape {x.shape}")
        pixels = math.prod(x.shape[2:])
        log_det = (pixels * self.log_abs_det()) * tg.ones(x.shape[0], dtype=x.dtype,
                                                           device=x.device)
        return self._mix(x, self.matrix()), log_det

    def inverse(self, y):
        return self._mix(y, tg.inv(self.matrix()))


class Scale(Flow):
    """NICE's diagonal scaling: y = x * exp(s), s one learned number per dimension
    (Dinh et al. 2015, section 3.3); log_det = sum_d s_d. Input (N, D)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.log_scale = Parameter(tg.zeros(int(num_features)))

    def forward(self, x):
        log_det = self.log_scale.sum() * tg.ones(x.shape[0], dtype=x.dtype, device=x.device)
        return x * self.log_scale.exp(), log_det

    def inverse(self, y):
        return y * (-self.log_scale).exp()


class LogitTransform(Flow):
    """x in [0, 1] -> y = logit(s), s = alpha + (1 - 2 alpha) x (RealNVP's pre-processing,
    Dinh et al. 2017, section 4.1, in the symmetric form of Papamakarios et al. 2017):
    squeezes the data away from 0 and 1, then onto R. Its Jacobian is
    diagonal, dy_d/dx_d = (1 - 2 alpha) / (s_d (1 - s_d)), so

        log_det = sum_d [log(1 - 2 alpha) - log s_d - log(1 - s_d)]   (nats),

    which the model's log p(x) includes: the density stays one of x in [0, 1]^D. But x
    in [0, 1] covers only y in [logit(alpha), logit(1 - alpha)], so whatever mass the
    flow after this layer puts outside that box belongs to no x: the density of x
    integrates to Z <= 1, and its NLL is an upper bound on that of the normalised model
    p / Z (RealNVP's practice; maximum likelihood pushes Z toward 1). The tests measure Z.

    Args:
        alpha: in (0, 1/2); 0.05 in RealNVP, 1e-6 in MAF.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ValueError(f"LogitTransform: alpha must be in (0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x):
        s = self.alpha + (1 - 2 * self.alpha) * x
        # 1 - s written as alpha + (1 - 2 alpha)(1 - x): for x near 1, 1 - x is exact in
        # floating point while 1 - s would cancel the digits s was rounded to
        log_s, log_1ms = s.log(), (self.alpha + (1 - 2 * self.alpha) * (1 - x)).log()
        y = log_s - log_1ms
        d = math.prod(x.shape[1:])
        log_det = d * math.log(1 - 2 * self.alpha) - (log_s + log_1ms).reshape(x.shape[0], -1).sum(axis=1)
        return y, log_det

    def inverse(self, y):
        return (y.sigmoid() - self.alpha) / (1 - 2 * self.alpha)


class Reverse(Flow):
    """The features (axis 1) in reverse order, so that the next coupling or
    autoregressive layer conditions the other way round. log_det = 0."""

    def forward(self, x):
        return x.flip(1), _zeros_log_det(x)

    def inverse(self, y):
        return y.flip(1)
