"""Autoregressive models: p(x) = prod_i p(x_i | x_{<i}), exact likelihood in one pass,
sampling one variable at a time.

    base.py            the factorisation written once: log_prob, sample, completion
    nade.py            NADE (Larochelle & Murray 2011): weight sharing, O(D H)
    pixelcnn.py        PixelCNN (van den Oord et al. 2016): masked convolutions A and B
    gated_pixelcnn.py  gated PixelCNN (van den Oord et al. 2016b): vertical and
                       horizontal stacks, no blind spot

MADE (Germain et al. 2015), the masked-MLP member of the family, lives with the flows it
builds (``tinygen.models.flows.made``) and is re-exported here.
"""
from ..flows.made import MADE
from .base import AutoregressiveModel
from .gated_pixelcnn import GatedPixelCNN
from .nade import NADE
from .pixelcnn import MaskedConv2d, PixelCNN, causal_mask

__all__ = ["AutoregressiveModel", "GatedPixelCNN", "MADE", "MaskedConv2d", "NADE", "PixelCNN",
           "causal_mask"]
