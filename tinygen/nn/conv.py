"""Conv2d and ConvTranspose2d layers (the arithmetic lives in tinygen.ops.conv)."""
from __future__ import annotations

from .. import creation
from ..ops.conv import _pair
from . import functional as F
from .linear import _default_init
from .module import Module, Parameter, _check_size


def _check_geometry(owner, in_channels, out_channels, kernel_size, stride, padding,
                    dilation, groups):
    """Refuse sizes PyTorch refuses, naming the value: channels, kernel, stride,
    dilation and groups must be positive integers, padding non-negative."""
    in_channels = _check_size(owner, "in_channels", in_channels)
    out_channels = _check_size(owner, "out_channels", out_channels)
    groups = _check_size(owner, "groups", groups)
    for name, value, minimum in (("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0), ("dilation", dilation, 1)):
        for v in (value if isinstance(value, (tuple, list)) else (value,)):
            _check_size(owner, name, v, minimum)
    return in_channels, out_channels, groups


class Conv2d(Module):
    """2-D convolution. x: (N, in_channels, H, W) -> (N, out_channels, Ho, Wo);
    weight (out_channels, in_channels / groups, kh, kw), bias (out_channels,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True):
        super().__init__()
        in_channels, out_channels, groups = _check_geometry(
            "Conv2d", in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels {in_channels} and out_channels "
                             f"{out_channels} must be divisible by groups {groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.dilation, self.groups = _pair(dilation, "dilation"), groups
        kh, kw = self.kernel_size
        self.weight = Parameter(creation.zeros(out_channels, in_channels // groups, kh, kw))
        if bias:
            self.bias = Parameter(creation.zeros(out_channels))
        else:
            self.register_parameter("bias", None)
        _default_init(self.weight, self.bias, in_channels // groups * kh * kw)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), got "
                             f"shape {x.shape}")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class ConvTranspose2d(Module):
    """Transposed 2-D convolution (the adjoint of Conv2d, used to upsample).
    x: (N, in_channels, H, W) -> (N, out_channels, Ho, Wo),
    Ho = (H - 1) stride - 2 padding + dilation (kh - 1) + output_padding + 1;
    weight (in_channels, out_channels / groups, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1):
        super().__init__()
        in_channels, out_channels, groups = _check_geometry(
            "ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding,
            dilation, groups)
        for v in _pair(output_padding, "output_padding"):
            _check_size("ConvTranspose2d", "output_padding", v, minimum=0)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ConvTranspose2d: in_channels {in_channels} and out_channels "
                             f"{out_channels} must be divisible by groups {groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.output_padding = _pair(output_padding, "output_padding")
        self.dilation, self.groups = _pair(dilation, "dilation"), groups
        kh, kw = self.kernel_size
        self.weight = Parameter(creation.zeros(in_channels, out_channels // groups, kh, kw))
        if bias:
            self.bias = Parameter(creation.zeros(out_channels))
        else:
            self.register_parameter("bias", None)
        # PyTorch computes fan_in from weight.shape[1] here too
        _default_init(self.weight, self.bias, out_channels // groups * kh * kw)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), got "
                             f"shape {x.shape}")
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        return s + ("" if self.bias is not None else ", bias=False")
