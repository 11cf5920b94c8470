"""NICE: Non-linear Independent Components Estimation (Dinh, Krueger & Bengio, ICLR 2015
workshop).

A stack of additive couplings (eq. 3 of the paper), each changing the half of the
features that the previous one left alone, then a diagonal scaling (section 3.3):

    h_k = h_{k-1} + (1 - b_k) t_k(b_k h_{k-1}),    k = 1..K,   log |det| = 0
    z   = exp(s) h_K,                                            log |det| = sum_d s_d

so the whole Jacobian has determinant prod_d exp(s_d): the couplings preserve volume,
and only the scaling layer can concentrate the density. log p(x) = log N(z; 0, I) +
sum_d s_d (the paper's eq. 1 with a Gaussian prior; for MNIST it used a logistic one).

Images are flattened to vectors (N, D); the masks alternate between the even and the
odd features (the paper's partition for MNIST). ``preprocess`` may put the logit
transform of ``LogitTransform`` in front, its log-determinant counted.
"""
from __future__ import annotations

import math

from .base import NormalizingFlow, SequentialFlow
from .coupling import CouplingMLP, MaskedCoupling, alternating_mask
from .layers import Flatten, LogitTransform, Scale

__all__ = ["NICE"]


class NICE(NormalizingFlow):
    """NICE over data of shape ``event_shape`` (flattened to D features).

    Args:
        event_shape: (D,) for points, (C, H, W) for images.
        num_couplings: K additive couplings (4 in the paper).
        hidden, num_layers: each t_k is an MLP with ``num_layers`` hidden layers of
            ``hidden`` ReLU units (paper, MNIST: 5 layers of 1000).
        logit_alpha: None, or the alpha of a leading ``LogitTransform`` (for images in
            [0, 1]).
    """

    def __init__(self, event_shape, num_couplings=4, hidden=1000, num_layers=4,
                 logit_alpha=None):
        event_shape = tuple(int(s) for s in event_shape)
        d = math.prod(event_shape)
        layers = [LogitTransform(logit_alpha)] if logit_alpha else []
        if len(event_shape) > 1:
            layers.append(Flatten(event_shape))
        for k in range(num_couplings):
            layers.append(MaskedCoupling(alternating_mask(d, parity=k % 2),
                                         CouplingMLP(d, d, hidden, num_layers),
                                         scale="additive"))
        layers.append(Scale(d))
        super().__init__(SequentialFlow(*layers), event_shape, latent_shape=(d,))
