"""RealNVP: density estimation using Real NVP (Dinh, Sohl-Dickstein & Bengio, ICLR 2017).

The affine coupling (eqs. 4-5 and, masked, eq. 9 of the paper; ``MaskedCoupling`` and
``ChannelCoupling``):

    y = b x + (1 - b) (x exp(s(b x)) + t(b x)),     log |det dy/dx| = sum (1 - b) s(b x),

with the mask b a checkerboard (b_ij = (i + j) mod 2) or a split of the channels, so
that unlike NICE each layer can change volume. The multi-scale architecture (section
3.6), for images:

    scale i:  3 checkerboard couplings (alternating parity)
              squeeze  (C, H, W) -> (4C, H/2, W/2)
              3 channel couplings (alternating halves)
              factor out half of the channels: they are final latents z_i
    last:     4 checkerboard couplings on what remains

so later layers work on fewer, coarser dimensions. The factored-out latents and the last
output together are z, of the same dimension D as x, with log p(x) = log N(z; 0, I) +
the sum of every layer's log-determinant. s is bounded as s = scale * tanh(.), the
scale learned per channel (the paper's networks end the same way).

Data in [0, 1] go first through the logit transform (section 4.1; ``LogitTransform``),
its log-determinant included. For 2-D points the model is a stack of couplings with
alternating masks and MLP networks.

Simplifications against the paper: the s, t networks are small convolutional nets
(``CouplingConvNet``), not deep ResNets with batch normalisation; ActNorm (Glow's
data-initialised per-channel affine layer) stands in for the paper's batch
normalisation of the flow's activations, which would make log p(x) depend on the batch.
"""
from __future__ import annotations

from .base import NormalizingFlow, SequentialFlow
from .coupling import (ChannelCoupling, CouplingConvNet, CouplingMLP, MaskedCoupling,
                       alternating_mask, checkerboard_mask)
from .layers import ActNorm, FactorOut, Flatten, LogitTransform, Reverse, Squeeze

__all__ = ["RealNVP"]


def _checkerboard_couplings(shape, count, hidden, num_layers):
    c = shape[0]
    layers = []
    for k in range(count):
        layers.append(MaskedCoupling(checkerboard_mask(shape, parity=k % 2),
                                     CouplingConvNet(c, c, hidden, num_layers), scale="tanh"))
        layers.append(ActNorm(c))
    return layers


def _channel_couplings(channels, count, hidden, num_layers):
    layers = []
    for k in range(count):
        if k:
            layers.append(Reverse())  # the other half is transformed next
        layers.append(ChannelCoupling(channels, CouplingConvNet(channels // 2, channels // 2,
                                                                hidden, num_layers),
                                      scale="tanh"))
        layers.append(ActNorm(channels))
    return layers


def _image_flow(shape, num_scales, hidden, num_layers):
    """The multi-scale flow for images of ``shape`` (C, H, W), ending flat (N, D)."""
    c, h, w = shape
    if num_scales == 0:
        return SequentialFlow(*_checkerboard_couplings(shape, 4, hidden, num_layers),
                              Flatten(shape))
    if h % 2 or w % 2:
        raise ValueError(f"RealNVP: {num_scales} more scale(s) need even height and width, "
                         f"got an image of shape {shape}")
    layers = _checkerboard_couplings(shape, 3, hidden, num_layers)
    layers.append(Squeeze())
    layers += _channel_couplings(4 * c, 3, hidden, num_layers)
    squeezed = (4 * c, h // 2, w // 2)
    rest = _image_flow((2 * c, h // 2, w // 2), num_scales - 1, hidden, num_layers)
    layers.append(FactorOut(squeezed, 2 * c, rest))
    return SequentialFlow(*layers)


class RealNVP(NormalizingFlow):
    """RealNVP for images (C, H, W) in [0, 1], or for points (D,).

    Args:
        event_shape: (C, H, W) or (D,).
        num_scales: images: scales before the last (each halves H and W and factors out
            half the channels); 2 for 28 x 28 (28 -> 14 -> 7).
        hidden, num_layers: width and depth of each s, t network.
        num_couplings: points only: the number of couplings (alternating masks).
        logit_alpha: images: the alpha of the leading logit transform; None for none.
    Raises:
        ValueError: an image too small for ``num_scales`` squeezes.
    """

    def __init__(self, event_shape, num_scales=2, hidden=64, num_layers=2, num_couplings=8,
                 logit_alpha=0.05):
        event_shape = tuple(int(s) for s in event_shape)
        if len(event_shape) == 1:
            d = event_shape[0]
            layers = []
            for k in range(num_couplings):
                layers += [MaskedCoupling(alternating_mask(d, parity=k % 2),
                                          CouplingMLP(d, d, hidden, num_layers), scale="tanh"),
                           ActNorm(d)]
            super().__init__(SequentialFlow(*layers), event_shape)
            return
        layers = [LogitTransform(logit_alpha)] if logit_alpha else []
        layers.append(_image_flow(event_shape, num_scales, hidden, num_layers))
        super().__init__(SequentialFlow(*layers), event_shape,
                         latent_shape=(event_shape[0] * event_shape[1] * event_shape[2],))
