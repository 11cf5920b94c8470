"""Normalisation layers: BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm.

Each standardises activations over some axes, x_hat = (x - mu) / sqrt(sigma^2 + eps),
then applies a learned per-feature scale gamma (``weight``) and shift beta (``bias``).
They differ in the axes: batch norm over the batch (one statistic per channel, so it
keeps running estimates for evaluation), group norm over groups of channels within one
sample, layer norm over a sample's last axes.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import creation
from ..autograd import Tensor, mark_modified
from . import functional as F
from .module import Module, Parameter, _check_eps, _check_size


class _BatchNorm(Module):
    """momentum: the weight of each new batch in the running estimates; None gives the
    cumulative (equal-weight) average over all batches seen, counted by
    ``num_batches_tracked``, as in PyTorch."""

    _input_dims: tuple = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__()
        name = type(self).__name__
        num_features = _check_size(name, "num_features", num_features)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(
                momentum, numbers.Real) or not 0 <= momentum <= 1):
            raise ValueError(f"{name}: momentum must be a number in [0, 1] or None (the "
                             f"cumulative average), got {momentum!r}")
        _check_eps(name, eps)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(creation.ones(num_features))
            self.bias = Parameter(creation.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features))
            self.register_buffer("running_var", creation.ones(num_features))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.running_mean = self.running_var = None

    def forward(self, x):
        if x.ndim not in self._input_dims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input with "
                             f"{' or '.join(map(str, self._input_dims))} dims and "
                             f"{self.num_features} channels on axis 1, got shape {x.shape}")
        use_batch_stats = self.training or not self.track_running_stats
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            mark_modified(self.num_batches_tracked)
            if momentum is None:  # the cumulative average of the statistics of all batches:
                # running_k = running_{k-1} + (s_k - running_{k-1}) / k, as in PyTorch
                momentum = 1.0 / float(self.num_batches_tracked.data)
        return F.batch_norm(x, self.running_mean if self.track_running_stats else None,
                            self.running_var if self.track_running_stats else None,
                            self.weight, self.bias, use_batch_stats,
                            0.0 if momentum is None else momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) inputs, one statistic per channel C."""
    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) inputs, one statistic per channel C."""
    _input_dims = (4,)


class GroupNorm(Module):
    """Group norm of (N, C, ...) inputs: statistics per sample and group of C / G channels."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        num_groups = _check_size("GroupNorm", "num_groups", num_groups)
        num_channels = _check_size("GroupNorm", "num_channels", num_channels)
        _check_eps("GroupNorm", eps)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_channels} channels do not split into "
                             f"{num_groups} groups")
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        if affine:
            self.weight = Parameter(creation.ones(num_channels))
            self.bias = Parameter(creation.zeros(num_channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected "
                             f"input (N, {self.num_channels}, ...), got shape {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(Module):
    """Layer norm over the last axes, of shape normalized_shape; element-wise affine."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape:
            raise ValueError("LayerNorm: normalized_shape must name at least one axis, got ()")
        shape = tuple(_check_size("LayerNorm", "normalized_shape", n) for n in shape)
        _check_eps("LayerNorm", eps)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.ones(*shape))
            self.bias = Parameter(creation.zeros(*shape))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
