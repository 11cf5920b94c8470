"""Stateless building blocks of networks, with PyTorch's names and argument orders.

Imported as ``F`` (``from tinygen.nn import functional as F``). Shapes follow PyTorch:
(N, C) for features, (N, C, H, W) for images. Losses take ``reduction`` = "mean"
(average over all elements), "sum", or "none" (element-wise).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from ..autograd import Tensor, as_tensor, mark_modified
from .. import ops
from ..ops.activation import elu, leaky_relu, relu, silu, softplus
from ..ops.conv import avg_pool2d, conv2d, conv_transpose2d, max_pool2d
from ..ops.normalization import standardize
from ..ops.elementwise import sigmoid, tanh
from .. import random as _random

__all__ = [
    "relu", "leaky_relu", "silu", "softplus", "elu", "sigmoid", "tanh", "logsigmoid",
    "softmax", "log_softmax", "linear", "dropout", "one_hot",
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "interpolate", "upsample",
    "batch_norm", "group_norm", "layer_norm",
    "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
    "nll_loss", "gaussian_nll_loss",
]


# --------------------------------------------------------------------------- activations

def logsigmoid(x):
    """log sigmoid(x) = -softplus(-x), stable for any x."""
    return -softplus(-as_tensor(x))


def softmax(x, axis=-1):
    """exp(x_i) / sum_j exp(x_j) along ``axis``, computed as exp(log_softmax)."""
    return ops.exp(log_softmax(x, axis))


def log_softmax(x, axis=-1):
    """x_i - log sum_j exp(x_j) along ``axis``; stable for large |x|, and a +inf logit
    gives the limit (log-probability 0 for it, -inf for the finite ones), not nan."""
    return ops.log_softmax(x, axis)


# --------------------------------------------------------------------------- layers as functions

def linear(x, weight, bias=None):
    """x W^T + b. x: (..., in_features), weight: (out_features, in_features),
    bias: (out_features,) -> (..., out_features)."""
    y = ops.matmul(x, weight.mT)
    return y if bias is None else y + bias


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1 / (1 - p), so the
    expected value is unchanged (inverted dropout). The identity when not training."""
    if not 0 <= p < 1:
        if p == 1 and training:
            return x * 0.0
        if p != 1:
            raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    keep = _random.rand(*x.shape, dtype=x.dtype, device=x.device).data >= p
    return x * Tensor((keep / (1 - p)).astype(x.dtype))


def one_hot(target, num_classes=-1):
    """Integer labels (...,) -> float32 one-hot vectors (..., num_classes)."""
    t = as_tensor(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got {t.dtype}")
    xp = backend.get_array_module(t)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or \
            num_classes < -1:
        raise ValueError(f"one_hot: num_classes must be an integer >= 0, or -1 (inferred "
                         f"from the labels), got {num_classes!r}")
    if num_classes < 0:
        num_classes = int(t.data.max()) + 1 if t.size else 0
    if t.size and (int(t.data.min()) < 0 or int(t.data.max()) >= num_classes):
        raise ValueError(f"one_hot: labels must lie in [0, {num_classes}), got "
                         f"[{int(t.data.min())}, {int(t.data.max())}]")
    return Tensor((t.data[..., None] == xp.arange(num_classes)).astype(np.float32))


def interpolate(x, scale_factor=2, mode="nearest"):
    """Upsample (N, C, H, W) -> (N, C, s H, s W) by repeating each pixel s x s times
    (nearest neighbour, an integer scale factor)."""
    x = as_tensor(x)
    if mode != "nearest":
        raise NotImplementedError(f"interpolate: only mode='nearest' exists, got {mode!r}")
    s = int(scale_factor)
    if s != scale_factor or s < 1:
        raise ValueError(f"interpolate: scale_factor must be a positive integer, got "
                         f"{scale_factor}")
    if x.ndim != 4:
        raise ValueError(f"interpolate: expected input (N, C, H, W), got shape {x.shape}")
    N, C, H, W = x.shape
    # view each pixel as a 1 x 1 block, broadcast it to s x s, and merge the axes back
    blocks = x.reshape(N, C, H, 1, W, 1).broadcast_to((N, C, H, s, W, s))
    return blocks.reshape(N, C, H * s, W * s)


upsample = interpolate


# --------------------------------------------------------------------------- normalisation

def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise each channel over the batch (and spatial axes):
    y = (x - mu_B) / sqrt(sigma_B^2 + eps) * gamma + beta.

    x: (N, C) or (N, C, L) or (N, C, H, W). In training the batch statistics are used
    and the running estimates (Tensors of shape (C,), may be None) are updated in place,
    running = (1 - momentum) running + momentum * batch statistic, with the unbiased
    variance; in evaluation the running estimates are used instead. (BatchNorm's
    momentum=None, the cumulative average, passes momentum = 1 / batches seen here.)
    """
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input (N, C, ...), got shape {x.shape}")
    if (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
            or not 0 <= momentum <= 1):
        raise ValueError(f"batch_norm: momentum must be a number in [0, 1], got {momentum!r}")
    C = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    shape = _channel_shape(x)
    if training:
        n = x.size // C
        if n <= 1:
            raise ValueError(f"batch_norm: training needs more than one value per channel, "
                             f"got input of shape {x.shape}")
        stats = [] if running_mean is not None else None
        y = standardize(x, axes, eps, stats=stats)
        if running_mean is not None:
            mu, biased = (s.reshape(C) for s in stats[0])  # standardize's own, accurate ones
            unbiased = biased * (n / (n - 1))
            running_mean.data *= 1 - momentum
            running_mean.data += momentum * mu.astype(running_mean.dtype, copy=False)
            running_var.data *= 1 - momentum
            running_var.data += momentum * unbiased.astype(running_var.dtype, copy=False)
            mark_modified(running_mean, running_var)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        y = (x - running_mean.reshape(shape)) * ((running_var.reshape(shape) + eps) ** -0.5)
    return _affine(y, weight, bias, shape)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each sample over groups of channels: the C channels split into G groups
    of C / G, and each (sample, group) is standardised over its channels and positions,
    then scaled and shifted per channel. x: (N, C, ...)."""
    x = as_tensor(x)
    N, C = x.shape[:2]
    if C % num_groups:
        raise ValueError(f"group_norm: {C} channels do not split into {num_groups} groups")
    y = standardize(x.reshape(N, num_groups, -1), axis=2, eps=eps).reshape(x.shape)
    return _affine(y, weight, bias, _channel_shape(x))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise each sample over its last axes (those of ``normalized_shape``), then
    scale and shift element-wise. x: (..., *normalized_shape)."""
    x = as_tensor(x)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with "
                         f"normalized_shape {shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    y = standardize(x, axes, eps)
    return _affine(y, weight, bias, shape)


# --------------------------------------------------------------------------- losses

def _reduce(loss, reduction, name):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_same_shape(name, input, target):
    if input.shape != target.shape:
        raise ValueError(f"{name}: input of shape {input.shape} and target of shape "
                         f"{target.shape} must have the same shape")


def _log_floored(p, floor=-100.0):
    """max(log p, floor) without ever computing log 0: where p is below e^floor the
    log is taken of 1 instead and its (zero) gradient discarded, so neither the value
    nor the gradient is ever inf or nan."""
    ok = p.data > math.exp(floor)
    return ops.where(ok, ops.log(ops.where(ok, p, 1.0)), floor)


def mse_loss(input, target, reduction="mean"):
    """(input - target)^2."""
    input, target = as_tensor(input), as_tensor(target, like=input)
    _check_same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


def binary_cross_entropy(input, target, reduction="mean"):
    """-(y log p + (1 - y) log(1 - p)) for probabilities p = input. The logs are
    clamped at -100, as in PyTorch, so p = 0 or 1 gives a large but finite loss.
    Prefer binary_cross_entropy_with_logits, which never needs the clamp."""
    p, y = as_tensor(input), as_tensor(target, like=input)
    _check_same_shape("binary_cross_entropy", p, y)
    log_p, log_1mp = _log_floored(p), _log_floored(1 - p)
    return _reduce(-(y * log_p + (1 - y) * log_1mp), reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, reduction="mean"):
    """The binary cross-entropy of sigmoid(l) with target y, from the logits l:
    -(y log sigmoid(l) + (1 - y) log(1 - sigmoid(l))) = softplus(l) - y l,
    exact and stable for logits of any size; at l = +-inf the limit, with 0 inf = 0
    (l = +inf: (1 - y) inf, l = -inf: y inf), and a finite gradient for l."""
    l, y = as_tensor(input), as_tensor(target, like=input)
    _check_same_shape("binary_cross_entropy_with_logits", l, y)
    return _reduce(ops.bce_with_logits(l, y), reduction, "binary_cross_entropy_with_logits")


def nll_loss(input, target, reduction="mean"):
    """-log p[target] from log-probabilities. input: (N, C), target: (N,) integers."""
    logp, t = as_tensor(input), as_tensor(target)
    if logp.ndim != 2 or t.shape != (logp.shape[0],):
        raise ValueError(f"nll_loss: expected input (N, C) and target (N,), got "
                         f"{logp.shape} and {t.shape}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold integer class indices, got {t.dtype}")
    C = logp.shape[1]
    if t.size:  # else -1 would silently pick the last class (NumPy's negative indexing)
        lo, hi = int(t.data.min()), int(t.data.max())
        if lo < 0 or hi >= C:
            bad = lo if lo < 0 else hi
            raise IndexError(f"nll_loss: target {bad} is out of bounds: class indices must "
                             f"lie in [0, {C}) for input of shape {logp.shape}")
    xp = backend.get_array_module(logp)
    picked = logp[xp.arange(logp.shape[0]), t.data]
    return _reduce(-picked, reduction, "nll_loss")


def cross_entropy(input, target, reduction="mean"):
    """-log softmax(input)[target]. input: (N, C) logits, target: (N,) class indices."""
    return nll_loss(log_softmax(input, axis=1), target, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """The negative log-likelihood of target under N(input, var):
    0.5 (log var + (input - target)^2 / var) [+ 0.5 log 2 pi if full].

    var is clamped below at eps for stability, as in PyTorch, and as there the clamp
    changes the value only: the gradient with respect to var is the loss's derivative at
    the clamped value, passed on unchanged (not cut to 0), so a variance below eps is
    still pushed by the loss. For var = 1e-8, input 2, target 0, eps 1: d/dvar = -1.5."""
    mu, x = as_tensor(input), as_tensor(target, like=input)
    var = as_tensor(var, like=mu)
    _check_same_shape("gaussian_nll_loss", mu, x)
    var = var.clip(min=eps, straight_through=True)
    loss = 0.5 * (ops.log(var) + (mu - x) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction, "gaussian_nll_loss")
