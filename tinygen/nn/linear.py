"""Identity, Linear and Embedding."""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor
from .. import creation
from . import functional as F, init
from .module import Module, Parameter, _check_size


def _default_init(weight, bias, fan_in):
    """PyTorch's default for Linear and Conv: kaiming_uniform with a = sqrt(5), which
    gives weights and biases uniform on [-1/sqrt(fan_in), 1/sqrt(fan_in)]."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b. x: (..., in_features) -> (..., out_features);
    weight (out_features, in_features), bias (out_features,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        # 0 is allowed, as in PyTorch: Linear(0, n) gives y = b
        in_features = _check_size("Linear", "in_features", in_features, minimum=0)
        out_features = _check_size("Linear", "out_features", out_features, minimum=0)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(creation.zeros(out_features, in_features))
        if bias:
            self.bias = Parameter(creation.zeros(out_features))
        else:
            self.register_parameter("bias", None)
        _default_init(self.weight, self.bias, in_features)

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): input's last "
                             f"axis has {x.shape[-1]} features (shape {x.shape})")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A table of num_embeddings vectors of size embedding_dim, looked up by integer
    index: (...) integers -> (..., embedding_dim). Initialised N(0, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        num_embeddings = _check_size("Embedding", "num_embeddings", num_embeddings, minimum=0)
        embedding_dim = _check_size("Embedding", "embedding_dim", embedding_dim, minimum=0)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(creation.zeros(num_embeddings, embedding_dim))
        init.normal_(self.weight)

    def forward(self, indices):
        idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got {idx.dtype}")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.num_embeddings):
            raise IndexError(f"Embedding: indices must lie in [0, {self.num_embeddings}), got "
                             f"[{int(idx.min())}, {int(idx.max())}]")
        return self.weight[idx]

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
