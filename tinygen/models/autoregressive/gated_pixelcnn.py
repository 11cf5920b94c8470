"""The gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves &
Kavukcuoglu 2016, "Conditional Image Generation with PixelCNN Decoders", section 2): two
stacks of convolutions that together see every pixel before (i, j), without the plain
PixelCNN's blind spot (pixelcnn.py), and gated activations.

The vertical stack v sees the rows above and the current row, through kernels of
(floor(k/2) + 1) x k taps, the input padded floor(k/2) rows on top: the feature v(i, j)
depends on the window of rows i - floor(k/2) .. i, all k columns around j. It grows
upward with depth and has no blind spot, but it sees the current row, so it may feed the
output only one row lower (section 2.2):

    h_pre(i, j) = W_h * h (i, j)  +  W_vh * v_pre(i - 1, j)        (down-shift of v)   (1)

The horizontal stack h sees the current row to the left, through 1 x (floor(k/2) + 1)
kernels, padded on the left; in the first layer its input is shifted right by one pixel,
so x(i, j) itself is not seen (the type-A mask). Together: rows above (all columns the
vertical stack reaches) and the current row to the left.

The gated activation unit (eq. 2 of the paper): each convolution gives 2p channels,
split into a filter and a gate,

    y = tanh(W_f * x) ⊙ sigmoid(W_g * x).                                              (2)

One layer (figure 2 of the paper, without the class conditioning):

    v_pre = W_v * v                                  (2p channels)
    v'    = tanh(v_pre[:p]) ⊙ sigmoid(v_pre[p:])                                       (2)
    h_pre = W_h * h + W_vh (down-shift v_pre)        (2p channels; eq. 1)
    h'    = h + W_o (tanh(h_pre[:p]) ⊙ sigmoid(h_pre[p:]))   (residual, after layer 1)

The output: ReLU -> Conv1x1 -> ReLU -> Conv1x1 of the last h: the logits, as PixelCNN.

Shifts rather than masks: a k x k kernel masked to its upper half would compute the
masked taps as zeros; the shaped kernels and the one-pixel shifts compute only the taps
that exist, and show where the causality comes from.

Symbols and code:

    symbol                  code                                shape
    v, h                    the two stacks' features            (N, p, H, W)
    W_v (floor(k/2)+1) x k  GatedLayer.vertical                 (2p, p, k//2 + 1, k)
    W_h 1 x (floor(k/2)+1)  GatedLayer.horizontal               (2p, p, 1, k//2 + 1)
    W_vh, W_o (1 x 1)       GatedLayer.vertical_to_horizontal, GatedLayer.horizontal_out
    p                       channels
    the logits l            GatedPixelCNN(x)                    (N, 1, H, W) or (N, K, H, W)
"""
from __future__ import annotations


from ... import nn, pad
from ...nn import functional as F
from ...nn.module import _check_size
from .base import AutoregressiveModel
from .pixelcnn import image_hw


def down_shift(x):
    """x moved one row down (a zero row on top, the last row dropped): out(i, j) =
    x(i - 1, j). (N, C, H, W) -> the same shape."""
    return pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1, :]


def right_shift(x):
    """x moved one column right: out(i, j) = x(i, j - 1). (N, C, H, W) -> the same."""
    return pad(x, ((0, 0), (0, 0), (0, 0), (1, 0)))[:, :, :, :-1]


def gate(x):
    """Eq. (2): tanh of the first half of the channels times sigmoid of the second.
    (N, 2p, H, W) -> (N, p, H, W)."""
    f, g = x.chunk(2, axis=1)
    return f.tanh() * g.sigmoid()


class GatedLayer(nn.Module):
    """One layer of both stacks (module docstring). (v, h) -> (v', h'), each
    (N, p, H, W) (the first layer takes the image's in_channels for both).

    Args:
        in_channels: channels of v and h coming in.
        channels: p, channels going out.
        kernel_size: k (odd): the vertical kernel is (k//2 + 1) x k, the horizontal
            1 x (k//2 + 1).
        first: the first layer shifts h right (the type-A mask) and has no residual.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3,
                 first: bool = False):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"GatedLayer: kernel_size must be odd, got {kernel_size}")
        self.k, self.first = kernel_size, first
        half = kernel_size // 2
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (half + 1, kernel_size))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, half + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v, h):
        half = self.k // 2
        # rows i - half .. i, columns j - half .. j + half: padded on top and both sides
        v_pre = self.vertical(pad(v, ((0, 0), (0, 0), (half, 0), (half, half))))
        if self.first:
            h = right_shift(h)   # the pixel itself is not seen (type A)
        # columns j - half .. j: padded on the left only
        h_pre = self.horizontal(pad(h, ((0, 0), (0, 0), (0, 0), (half, 0))))
        h_pre = h_pre + self.vertical_to_horizontal(down_shift(v_pre))        # eq. (1)
        h_new = self.horizontal_out(gate(h_pre))
        if not self.first:
            h_new = h + h_new
        return gate(v_pre), h_new


class GatedPixelCNN(AutoregressiveModel):
    """The gated PixelCNN of the module docstring, for binary images (1, H, W) or
    K-valued grids (H, W).

    Args:
        image_size: (H, W), or one int for a square image.
        channels: p, the features of each stack.
        num_layers: L >= 1 gated layers (the first is type A).
        kernel_size: k (odd).
        hidden_output: the channels of the 1 x 1 output layers.
        num_classes: None for binary pixels, K >= 2 for K-valued ones.

    Raises:
        ValueError: a size < 1, an even kernel, num_classes < 2.
        TypeError: a size is not an integer.
    """

    def __init__(self, image_size=28, channels: int = 32, num_layers: int = 12,
                 kernel_size: int = 3, hidden_output: int = 64,
                 num_classes: int | None = None):
        super().__init__()
        name = type(self).__name__
        H, W = image_hw(name, image_size)
        channels = _check_size(name, "channels", channels)
        num_layers = _check_size(name, "num_layers", num_layers)
        if _check_size(name, "kernel_size", kernel_size) % 2 == 0:
            raise ValueError(f"{name}: kernel_size must be odd, got {kernel_size}")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"{name}: num_classes must be None (binary) or >= 2, got "
                             f"{num_classes}")
        self.num_classes = num_classes
        self.event_shape = (1, H, W) if num_classes is None else (H, W)
        self.channels, self.num_layers = channels, num_layers
        in_channels = 1 if num_classes is None else num_classes
        self.layers = nn.ModuleList(
            GatedLayer(in_channels if i == 0 else channels, channels, kernel_size, first=i == 0)
            for i in range(num_layers))
        self.output_hidden = nn.Conv2d(channels, _check_size(name, "hidden_output",
                                                             hidden_output), 1)
        self.output = nn.Conv2d(hidden_output, in_channels, 1)

    def embed(self, x):
        """2 x - 1 for binary pixels (N, 1, H, W); one-hot (N, K, H, W) for codes."""
        if self.num_classes is None:
            return x * 2.0 - 1.0
        return F.one_hot(x, self.num_classes).transpose(0, 3, 1, 2)

    def forward(self, x):
        """The logits of every conditional: (N, 1, H', W') binary or (N, H', W') codes ->
        (N, 1, H', W') or (N, K, H', W'), any H', W'."""
        v = h = self.embed(x)
        for layer in self.layers:
            v, h = layer(v, h)
        return self.output(F.relu(self.output_hidden(F.relu(h))))

    def logits_for_row(self, x, row: int):
        # nothing looks down (the vertical stack is padded on top only): rows <= r suffice
        return self(x[..., :row + 1, :])[..., row, :]
