"""Pooling and upsampling layers: MaxPool2d, AvgPool2d, Upsample."""
from __future__ import annotations

from . import functional as F
from .module import Module, _check_size


def _check_window(owner, **sizes):
    """kernel_size, stride, dilation positive integers (or pairs), padding >= 0."""
    for name, value in sizes.items():
        for v in (value if isinstance(value, (tuple, list)) else (value,)):
            _check_size(owner, name, v, minimum=0 if name == "padding" else 1)


class MaxPool2d(Module):
    """The maximum over each kernel_size window. (N, C, H, W) -> (N, C, Ho, Wo)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        _check_window("MaxPool2d", kernel_size=kernel_size, padding=padding, dilation=dilation,
                      **({} if stride is None else {"stride": stride}))
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """The mean over each kernel_size window. (N, C, H, W) -> (N, C, Ho, Wo)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        _check_window("AvgPool2d", kernel_size=kernel_size, padding=padding,
                      **({} if stride is None else {"stride": stride}))
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding = padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Upsample(Module):
    """Nearest-neighbour upsampling by an integer factor. (N, C, H, W) -> (N, C, sH, sW)."""

    def __init__(self, scale_factor=2, mode="nearest"):
        super().__init__()
        self.scale_factor, self.mode = scale_factor, mode

    def forward(self, x):
        return F.interpolate(x, self.scale_factor, self.mode)

    def extra_repr(self):
        return f"scale_factor={self.scale_factor}, mode='{self.mode}'"
