"""tinygen: deep generative models from scratch, on a small reverse-mode autograd engine.

The layers, lowest first: ``backend`` (NumPy or CuPy), ``autograd`` (Tensor, Function,
backward, grad), ``ops`` (the differentiable primitives). The names below are the ones
a user needs day to day.
"""
__version__ = "0.1.0"

from .autograd import (Function, Tensor, as_tensor, backward, enable_grad, grad,
                       is_grad_enabled, no_grad, set_grad_enabled, tensor)
from .backend import cuda_available, get_array_module
from .creation import arange, full, ones, ones_like, zeros, zeros_like
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .ops import (abs, add, all, any, astype, broadcast_to, cat, chunk, clip, cos, cumsum, div,
                  eq, exp, expand, flatten, flip, ge, getitem, gt, index_put, le, log, log1p,
                  logsumexp, lt, matmul, max, maximum, mean, min, minimum, mul, ne, neg,
                  pad, pow, reshape, sigmoid, sign, sin, split, sqrt, squeeze, stack, sub,
                  sum, sum_to, swapaxes, tanh, transpose, unsqueeze, var, where)
from .ops import (avg_pool2d, bce_with_logits, conv2d, conv_transpose2d, elu, fold,
                  leaky_relu, log_softmax, max_pool2d, relu, silu, softplus, standardize,
                  unfold)
from .ops import inv, slogdet, solve, solve_triangular
from .random import (generator, get_rng_state, manual_seed, rand, randint, randn,
                     set_rng_state)

float32 = "float32"
float64 = "float64"
from .serialization import load, save

from . import data, distributions, metrics, nn, optim  # noqa: E402  (after the core names)
