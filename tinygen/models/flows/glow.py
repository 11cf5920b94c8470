"""Glow: generative flow with invertible 1x1 convolutions (Kingma & Dhariwal, NeurIPS
2018).

One step of flow (Figure 2a, Table 1 of the paper) is three invertible layers:

    ActNorm:        y = (x + b) exp(log_scale)     log_det = H W sum log_scale
    1x1 conv:       y = W x (every pixel)          log_det = H W log |det W|
                    W = P L (U + diag(s))  (eq. 10)         = H W sum log |s|
    affine coupling: x_a, x_b = split(x);  (log_s, t) = NN(x_a);  s = sigmoid(. + 2)
                    y_b = s x_b + t                log_det = sum log s

The 1x1 convolution is a learned generalisation of RealNVP's fixed channel permutations.
The multi-scale architecture (Figure 2b) repeats L levels of

    squeeze  ->  K steps of flow  ->  split (factor out half the channels)

without the last split. z ~ N(0, I) for every factored-out part (the paper learns a
prior for them conditioned on the rest; left out here). Sampling at temperature T draws
z ~ N(0, T^2 I) (section 6): T < 1 gives smoother, more typical images.

Data in [0, 1] first pass through ``LogitTransform`` (optional; the paper instead
centres x to [-1/2, 1/2], which ActNorm also covers).
"""
from __future__ import annotations

from .base import NormalizingFlow, SequentialFlow
from .coupling import ChannelCoupling, CouplingConvNet, CouplingMLP
from .layers import (ActNorm, FactorOut, Flatten, InvertibleConv1x1, LogitTransform,
                     Squeeze)

__all__ = ["Glow", "flow_step"]


def flow_step(channels, hidden, num_layers=2, lu=True, image=True, seed=None):
    """One step of flow: ActNorm -> invertible 1x1 conv -> affine coupling (a list)."""
    if image:
        net = CouplingConvNet(channels // 2, channels // 2, hidden, num_layers)
    else:
        net = CouplingMLP(channels // 2, channels // 2, hidden, num_layers)
    return [ActNorm(channels), InvertibleConv1x1(channels, lu=lu, seed=seed),
            ChannelCoupling(channels, net, scale="sigmoid")]


def _levels(shape, num_levels, steps, hidden, num_layers, lu, seed):
    c, h, w = shape
    if h % 2 or w % 2:
        raise ValueError(f"Glow: a level needs even height and width, got an image of "
                         f"shape {shape} with {num_levels} level(s) to go")
    squeezed = (4 * c, h // 2, w // 2)
    layers = [Squeeze()]
    for k in range(steps):
        layers += flow_step(4 * c, hidden, num_layers, lu,
                            seed=None if seed is None else seed + 1000 * num_levels + k)
    if num_levels == 1:
        return SequentialFlow(*layers, Flatten(squeezed))
    rest = _levels((2 * c, h // 2, w // 2), num_levels - 1, steps, hidden, num_layers, lu, seed)
    return SequentialFlow(*layers, FactorOut(squeezed, 2 * c, rest))


class Glow(NormalizingFlow):
    """Glow for images (C, H, W) in [0, 1], or for points (D,) (steps of flow with MLPs).

    Args:
        event_shape: (C, H, W) or (D,) with D even.
        num_levels: L; each squeezes, runs K steps, and (but the last) splits. 2 for
            28 x 28 (-> 14 x 14 -> 7 x 7).
        steps: K, steps of flow per level.
        hidden, num_layers: the coupling network's width and depth.
        lu: LU-parameterised 1x1 convolutions (True) or free matrices with slogdet.
        logit_alpha: the alpha of the leading logit transform; None for none.
        seed: seeds the random rotations that start each 1x1 convolution.
    """

    def __init__(self, event_shape, num_levels=2, steps=8, hidden=64, num_layers=2, lu=True,
                 logit_alpha=0.05, seed=0):
        event_shape = tuple(int(s) for s in event_shape)
        if len(event_shape) == 1:
            d = event_shape[0]
            if d % 2:
                raise ValueError(f"Glow: points need an even dimension, got {d}")
            layers = []
            for k in range(steps):
                layers += flow_step(d, hidden, num_layers, lu, image=False,
                                    seed=None if seed is None else seed + k)
            super().__init__(SequentialFlow(*layers), event_shape)
            return
        layers = [LogitTransform(logit_alpha)] if logit_alpha else []
        layers.append(_levels(event_shape, num_levels, steps, hidden, num_layers, lu, seed))
        c, h, w = event_shape
        super().__init__(SequentialFlow(*layers), event_shape, latent_shape=(c * h * w,))
