"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks", section 3.5): the autoregressive factorisation (base.py, eq. 1) computed by a
stack of masked convolutions.

A convolution makes every output pixel a function of a k x k window around it. To make
the output at pixel (i, j) a function of the pixels before it in raster order only, the
kernel is multiplied by a mask that zeroes the taps at and after the centre (section 3.4,
figure 2 of the paper; c = floor(k / 2) is the centre, (a, b) a tap's row and column):

    mask_A[a, b] = 1  if a < c, or a = c and b < c         (the first layer: the pixel
                   0  otherwise                               itself is not seen)     (1)
    mask_B[a, b] = 1  if a < c, or a = c and b <= c        (every later layer: a feature
                   0  otherwise                               at (i, j) may use the
                                                              features at (i, j), which
                                                              saw only x_{<(i,j)})   (2)

By induction over the layers, the network's output at (i, j) depends only on x at pixels
strictly before (i, j): the logit of p(x_ij = 1 | x_{<ij}). The log-likelihood is one pass
(teacher forcing); sampling is H W passes.

The network (section 3.5 and figure 5 of the paper):

    x -> MaskedConv_A k1 x k1 (1 -> 2h)
      -> R residual blocks:  y = x + Conv1x1(ReLU(MaskedConv_B 3x3(ReLU(Conv1x1(ReLU(x)))))),
                             the 1x1 convolutions 2h -> h -> 2h
      -> ReLU -> Conv1x1 (2h -> h_out) -> ReLU -> Conv1x1 (h_out -> 1 or K): the logits.

The blind spot (van den Oord et al. 2016b, section 2.2, figure 1): a feature at (r, s)
never sees the pixels to the right of s in its own row r, whatever the depth. Output
(i, j) sees the row above through the features of row i - 1, which stop at their own
column, and through the features of row i to its left, which reach one column further
right per 3 x 3 layer only by looking up a row. So in row i - 1 the pixels from
j + k1 // 2 + 1 on (k1 the first layer's kernel: from j + 2 with k1 = 3, from j + 4 with
k1 = 7), and a growing triangle above them, never reach (i, j): the network ignores part
of the context it is allowed to use. The gated PixelCNN (gated_pixelcnn.py) removes it;
a test and demos/pixelcnn_mnist.py show both.

Pixels enter as 2 x - 1 in {-1, 1}, so that the zero padding at the border reads as
"no pixel", not as a black one. K-valued inputs (VQ-VAE codes) enter one-hot.

Symbols and code:

    symbol                  code                               shape
    mask_A, mask_B (1, 2)   causal_mask(k, "A" | "B")          (k, k)
    masked convolution      MaskedConv2d                       weight (out, in, k, k)
    2h, h_out               channels, hidden_output
    R                       num_blocks
    the logits l            PixelCNN(x)                        (N, 1, H, W) or (N, K, H, W)
"""
from __future__ import annotations

import numpy as np

from ... import nn
from ...autograd import Tensor
from ...nn import functional as F
from ...nn.module import _check_size
from .base import AutoregressiveModel

MASK_TYPES = ("A", "B")


def image_hw(owner: str, image_size) -> tuple:
    """(H, W) from one int or a pair, each >= 1; ValueError or TypeError naming
    ``owner`` otherwise."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        H, W = image_size
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: image_size must be an int or a pair (H, W), got "
                         f"{image_size!r}") from None
    return _check_size(owner, "image height", H), _check_size(owner, "image width", W)


def causal_mask(kernel_size: int, mask_type: str) -> np.ndarray:
    """The mask of eq. (1) (type "A") or eq. (2) (type "B") for a k x k kernel, k odd:
    float32 (k, k) of 0 and 1.

    Raises:
        ValueError: k is not an odd integer >= 1, or the type is not "A" or "B".
    """
    k = _check_size("causal_mask", "kernel_size", kernel_size)
    if k % 2 == 0:
        raise ValueError(f"causal_mask: kernel_size must be odd (a centre tap), got {k}")
    if mask_type not in MASK_TYPES:
        raise ValueError(f"causal_mask: mask_type must be 'A' or 'B', got {mask_type!r}")
    c = k // 2
    a, b = np.mgrid[:k, :k]
    keep = (a < c) | ((a == c) & ((b < c) if mask_type == "A" else (b <= c)))
    return keep.astype(np.float32)


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution (padding k // 2, stride 1: the image keeps its size) whose
    kernel is multiplied by ``causal_mask(k, mask_type)``: output (i, j) sees only the
    input pixels before (i, j) in raster order (type A) or at and before it (type B).

    x: (N, in_channels, H, W) -> (N, out_channels, H, W). The mask is a buffer (saved,
    moved with the module, never trained); masked weights get zero gradient.

    Raises:
        ValueError: as Conv2d; an even kernel size or an unknown mask type.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 mask_type: str, bias: bool = True):
        mask = causal_mask(kernel_size, mask_type)
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         bias=bias)
        self.mask_type = mask_type
        # the weights a masked tap would use are never used: start them at 0 so the
        # initial output's scale reflects the taps that exist
        self.weight.data *= mask
        self.register_buffer("mask", Tensor(mask[None, None]))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), got "
                             f"shape {x.shape}")
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return super().extra_repr() + f", mask_type={self.mask_type!r}"


class ResidualBlock(nn.Module):
    """Figure 5 of the paper: y = x + Conv1x1(ReLU(MaskedConv_B(ReLU(Conv1x1(ReLU(x)))))),
    channels 2h -> h -> h -> 2h; (N, 2h, H, W) -> the same shape."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        h = max(channels // 2, 1)
        self.reduce = nn.Conv2d(channels, h, 1)
        self.masked = MaskedConv2d(h, h, kernel_size, "B")
        self.expand = nn.Conv2d(h, channels, 1)

    def forward(self, x):
        y = self.reduce(F.relu(x))
        y = self.masked(F.relu(y))
        return x + self.expand(F.relu(y))


class PixelCNN(AutoregressiveModel):
    """The PixelCNN of the module docstring, for binary images (1, H, W) or K-valued grids
    (H, W).

    Args:
        image_size: (H, W), or one int for a square image.
        channels: 2h, the feature maps of the residual stack (even, >= 2).
        num_blocks: R >= 0, residual blocks of masked 3 x 3 convolutions.
        first_kernel_size: k1 of the type-A first layer (odd).
        kernel_size: of the blocks' masked convolutions (odd).
        hidden_output: h_out, the channels of the 1 x 1 output layers.
        num_classes: None for binary pixels (one logit each), K >= 2 for K-valued ones.

    Raises:
        ValueError: a size < 1, an even kernel or channels, a first kernel of 1 (its
            type-A mask is all zero: the output would ignore the input), num_classes < 2.
        TypeError: a size is not an integer.
    """

    def __init__(self, image_size=28, channels: int = 64, num_blocks: int = 8,
                 first_kernel_size: int = 7, kernel_size: int = 3, hidden_output: int = 64,
                 num_classes: int | None = None):
        super().__init__()
        name = type(self).__name__
        H, W = image_hw(name, image_size)
        channels = _check_size(name, "channels", channels)
        if channels % 2:
            raise ValueError(f"{name}: channels (2h) must be even, got {channels}")
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, (int, np.integer)):
            raise TypeError(f"{name}: num_blocks must be an integer, got {num_blocks!r}")
        if num_blocks < 0:
            raise ValueError(f"{name}: num_blocks must be >= 0, got {num_blocks}")
        for what, k in (("first_kernel_size", first_kernel_size), ("kernel_size", kernel_size)):
            if _check_size(name, what, k) % 2 == 0:
                raise ValueError(f"{name}: {what} must be odd (a centre tap), got {k}")
        if first_kernel_size < 3:
            raise ValueError(f"{name}: first_kernel_size must be at least 3 (a 1 x 1 "
                             f"type-A mask is all zero), got {first_kernel_size}")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"{name}: num_classes must be None (binary) or >= 2, got "
                             f"{num_classes}")
        self.num_classes = num_classes
        self.event_shape = (1, H, W) if num_classes is None else (H, W)
        self.channels, self.num_blocks = channels, int(num_blocks)
        in_channels = 1 if num_classes is None else num_classes
        self.input_conv = MaskedConv2d(in_channels, channels, first_kernel_size, "A")
        self.blocks = nn.ModuleList(ResidualBlock(channels, kernel_size)
                                    for _ in range(self.num_blocks))
        self.output_hidden = nn.Conv2d(channels, _check_size(name, "hidden_output",
                                                             hidden_output), 1)
        self.output = nn.Conv2d(hidden_output, in_channels, 1)

    def embed(self, x):
        """The network's input: 2 x - 1 for binary pixels (N, 1, H, W); one-hot
        (N, K, H, W) for integer grids (N, H, W)."""
        if self.num_classes is None:
            return x * 2.0 - 1.0
        return F.one_hot(x, self.num_classes).transpose(0, 3, 1, 2)

    def forward(self, x):
        """The logits of every conditional: x (N, 1, H', W') binary or (N, H', W') codes
        -> (N, 1, H', W') or (N, K, H', W'). Any H', W' (the masks make the output causal
        at any size; sampling feeds the rows above and including the current one)."""
        y = self.input_conv(self.embed(x))
        for block in self.blocks:
            y = block(y)
        return self.output(F.relu(self.output_hidden(F.relu(y))))

    def logits_for_row(self, x, row: int):
        # the outputs of row r depend on rows <= r only (no mask looks down), so the
        # rows below need not be computed: sampling costs about half the full passes
        return self(x[..., :row + 1, :])[..., row, :]
