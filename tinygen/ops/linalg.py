"""The matrix product, where nearly all of a network's arithmetic happens.

For C = A B (each possibly a batch of matrices, broadcasting over the batch axes),

    dL/dA = (dL/dC) B^T,        dL/dB = A^T (dL/dC),

with ^T swapping the last two axes. When a batch axis was broadcast, the engine sums
these back to the input's shape.
"""
from __future__ import annotations

from ..autograd import Function, as_tensor
from .shape import squeeze, unsqueeze


class MatMul(Function):
    """y = a b (matrices);  dL/da = g b^T,  dL/db = a^T g  (^T swaps the last two axes)."""
    saves = "cross"  # dL/da reads b, dL/db reads a

    def forward(self, a, b):
        if a.shape[-1] == 1:
            # An outer product (inner dimension 1, e.g. the backward of a 1-channel
            # convolution): a broadcast multiply gives the same numbers as a @ b and took
            # 1/1.8 to 1/2.5 of its time for (576, 1) @ (1, 50176) here (timeit, 2 cores).
            return a * b
        return a @ b

    def backward(self, g):
        a, b = self.inputs
        ga = gb = None
        # Each gradient is computed in its input's memory layout: for an input that is a
        # transposed view (as W^T in x @ W^T, how Linear uses its weight), the transposed
        # product (X^T)^T is formed, which costs the same, so that once the transpose is
        # undone the gradient is contiguous again (and an optimizer can stream through it
        # without copying it first; test_fast_routes compares it with the plain product).
        # It is one of the changes of commit 01a9fb4, which together took mlp_vae from
        # 8.9 to 4.5 ms per step; alone, an Adam step on a 400 x 784 weight measured the
        # same here with either layout of its gradient, within the noise.
        if self.needs_input_grad[0]:
            ga = (b @ g.mT).mT if _is_transposed(a.data) else g @ b.mT
        if self.needs_input_grad[1]:
            gb = (g.mT @ a).mT if _is_transposed(b.data) else a.mT @ g
        return ga, gb


def matmul(a, b):
    """The matrix product a @ b.

    Shapes: (..., n, k) @ (..., k, m) -> (..., m) with the batch axes broadcast. A 1-D
    argument is a vector: (k,) @ (k, m) -> (m,) and (n, k) @ (k,) -> (n,).
    """
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: needs at least 1-D inputs, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1:
        return squeeze(matmul(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(matmul(a, unsqueeze(b, -1)), -1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a.shape[-1]} (last axis of the first) != {b.shape[-2]} "
                         "(second-to-last axis of the second)")
    try:
        return MatMul.apply(a, b)
    except ValueError:
        raise ValueError(f"matmul: the batch axes of shapes {a.shape} and {b.shape} cannot "
                         "be broadcast together") from None


def _is_transposed(x) -> bool:
    """Whether x is laid out as the transpose of a C-contiguous array (last two axes)."""
    return (x.ndim >= 2 and not x.flags.c_contiguous and x.shape[-1] > 1 and x.shape[-2] > 1
            and x.strides[-2] == x.itemsize and x.strides[-1] == x.shape[-2] * x.itemsize)
