"""Differentiable primitives, grouped by kind. Each is a Function with forward on raw
arrays and backward written with these same ops (so gradients can be differentiated),
its derivative stated in the first line of its docstring (g = dL/dy), and its public
function beside it: read in order, these files are the table of derivatives."""
from .elementwise import (abs, add, clip, cos, div, eq, exp, ge, gt, le, log, log1p, lt,
                          maximum, minimum, mul, ne, neg, pow, sigmoid, sign, sin, sqrt,
                          sub, tanh, where)
from .activation import bce_with_logits, elu, leaky_relu, relu, silu, softplus
from .conv import avg_pool2d, conv2d, conv_transpose2d, fold, max_pool2d, unfold
from .linalg import inv, matmul, slogdet, solve, solve_triangular
from .normalization import standardize
from .reduce import all, any, cumsum, log_softmax, logsumexp, max, mean, min, sum, var
from .shape import (astype, broadcast_to, cat, chunk, expand, flatten, flip, getitem,
                    index_put, pad, reshape, split, squeeze, stack, sum_to, swapaxes,
                    transpose, unsqueeze)

__all__ = [
    "abs", "add", "clip", "cos", "div", "eq", "exp", "ge", "gt", "le", "log", "log1p", "lt",
    "maximum", "minimum", "mul", "ne", "neg", "pow", "sigmoid", "sign", "sin", "sqrt", "sub",
    "tanh", "where", "matmul", "inv", "slogdet", "solve", "solve_triangular",
    "all", "any", "cumsum", "log_softmax", "logsumexp", "max", "mean", "min", "sum", "var",
    "astype", "broadcast_to", "cat", "chunk", "expand", "flatten", "flip", "getitem",
    "index_put", "pad", "reshape", "split", "squeeze", "stack", "sum_to", "swapaxes",
    "transpose", "unsqueeze",
    "bce_with_logits", "elu", "leaky_relu", "relu", "silu", "softplus",
    "avg_pool2d", "conv2d", "conv_transpose2d", "fold", "max_pool2d", "unfold",
    "standardize",
]
