"""Normalizing flows: exact likelihood by the change of variables.

    base.py       log p(x) = log p_Z(f(x)) + log |det df/dx|, written once: the Flow
                  interface (forward -> (y, log_det), inverse), SequentialFlow,
                  NormalizingFlow over N(0, I) with sampling at a temperature
    layers.py     squeeze, flatten, factor-out (multi-scale), ActNorm, the invertible
                  1x1 convolution (free or LU-parameterised), NICE's scaling, the logit
                  transform, reversal
    coupling.py   additive and affine couplings with binary (alternating, checkerboard)
                  or channel masks, and their s, t networks
    nice.py       NICE (Dinh et al. 2015)
    realnvp.py    RealNVP (Dinh et al. 2017)
    glow.py       Glow (Kingma & Dhariwal 2018)
    made.py       MADE (Germain et al. 2015): masked autoencoders, Bernoulli and Gaussian,
                  with the order-agnostic ensemble
    maf.py        MAF (Papamakarios et al. 2017): stacked Gaussian MADEs, batch norm
"""
from .base import Flow, NormalizingFlow, SequentialFlow, standard_normal_log_prob
from .coupling import (ChannelCoupling, CouplingConvNet, CouplingMLP, MaskedCoupling,
                       alternating_mask, checkerboard_mask)
from .glow import Glow
from .layers import (ActNorm, FactorOut, Flatten, InvertibleConv1x1, LogitTransform,
                     Reverse, Scale, Squeeze)
from .made import GaussianMADE, MADE, MaskedLinear
from .maf import MAF, BatchNormFlow, MAFLayer, Permute
from .nice import NICE
from .realnvp import RealNVP

__all__ = ["Flow", "NormalizingFlow", "SequentialFlow", "standard_normal_log_prob",
           "ChannelCoupling", "CouplingConvNet", "CouplingMLP", "MaskedCoupling",
           "alternating_mask", "checkerboard_mask", "Glow", "ActNorm", "FactorOut",
           "Flatten", "InvertibleConv1x1", "LogitTransform", "Reverse", "Scale", "Squeeze",
           "NICE", "RealNVP", "GaussianMADE", "MADE", "MaskedLinear", "MAF", "BatchNormFlow",
           "MAFLayer", "Permute"]
