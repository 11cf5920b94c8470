"""Turning uint8 images into what a model is trained on (NumPy in, NumPy out).

- ``scale``: pixels 0..255 to float32 on [0, 1] (Bernoulli decoders, BCE) or [-1, 1]
  (tanh generators, diffusion models, whose noise is centred at 0).
- ``flatten``: (N, 28, 28) -> (N, 784) for MLPs.
- ``binarize``: dynamic binarisation, x_bin ~ Bernoulli(x), drawn afresh each time an
  image is used. Binary MNIST models (VAEs, NADE/MADE, the IWAE benchmarks) are trained
  this way: a fixed binarisation lets a large model memorise one set of bits and
  overfit, a new draw each epoch acts as data augmentation.
- ``dequantize``: uniform dequantisation, y = (x + u) / 256 with u ~ U[0, 1). A density
  model of continuous y would put infinite density on the 256 discrete values x can
  take; spreading each value over its bin [x/256, (x+1)/256) makes the continuous
  log-likelihood a lower bound on the discrete one (Theis et al., 2016), which is how
  flows report bits/dim.

Random draws come only from the ``numpy.random.Generator`` passed in (make one with
``tinygen.random.generator(seed)``), so a run is reproducible and the draws do not
shift any other stream of random numbers.
"""
from __future__ import annotations

import numpy as np

__all__ = ["scale", "flatten", "binarize", "dequantize"]


def _check_generator(generator, fn):
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{fn}: generator must be a numpy.random.Generator (e.g. "
                        f"tinygen.random.generator(seed)); got {type(generator).__name__}")


def _check_uint8(images, fn):
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"{fn}: expects uint8 images with values 0..255 (as load_mnist "
                        f"returns them); got dtype {images.dtype}")
    return images


def scale(images, to=(0, 1)):
    """uint8 images (any shape) -> float32 of the same shape on [0, 1] or [-1, 1].

    to=(0, 1): x / 255.  to=(-1, 1): x / 127.5 - 1. 0 maps to the lower end and 255 to
    the upper end exactly.
    """
    images = _check_uint8(images, "scale")
    to = tuple(to)
    if to == (0, 1):
        return images.astype(np.float32) / np.float32(255)
    if to == (-1, 1):
        return images.astype(np.float32) / np.float32(127.5) - np.float32(1)
    raise ValueError(f"scale: to must be (0, 1) or (-1, 1); got {to}")


def flatten(images):
    """(N, ...) -> (N, prod(...)): e.g. (N, 28, 28) -> (N, 784). A view when possible."""
    images = np.asarray(images)
    if images.ndim == 0:
        raise ValueError("flatten: expects a batch (N, ...); got a scalar")
    return images.reshape(images.shape[0], -1)


def binarize(x01, generator):
    """Dynamic binarisation: float32 array of x01's shape with x_bin ~ Bernoulli(x01).

    Each call draws new bits, so call it per batch (e.g. as a DataLoader transform).
    x01 must lie in [0, 1] (use ``scale`` first).
    """
    _check_generator(generator, "binarize")
    x01 = np.asarray(x01)
    if x01.dtype.kind != "f":
        raise TypeError(f"binarize: expects probabilities in [0, 1] as floats (use scale "
                        f"first); got dtype {x01.dtype}")
    # The comparisons are False for NaN too, so NaN is refused rather than becoming 0.
    if x01.size and not (x01.min() >= 0 and x01.max() <= 1):
        raise ValueError(f"binarize: values must lie in [0, 1]; got min {x01.min()}, "
                         f"max {x01.max()}")
    # P(u < x) = x for u ~ U[0, 1): exactly 0 for x = 0 and 1 for x = 1.
    u = generator.random(x01.shape, dtype=np.float32)
    return (u < x01).astype(np.float32)


def dequantize(images, generator):
    """Uniform dequantisation of uint8 images: float32 y = (x + u) / 256, u ~ U[0, 1).

    Every y lies in its pixel's bin: x/256 <= y < (x+1)/256, so 0 <= y < 1.
    """
    _check_generator(generator, "dequantize")
    x = _check_uint8(images, "dequantize").astype(np.float32)
    y = (x + generator.random(x.shape, dtype=np.float32)) / np.float32(256)
    # In float32, x + u rounds up to x + 1 when u is within half a unit in the last
    # place of 1 (for x >= 128 that is u > 1 - 2^-17), which would put y into the next
    # bin, and at x = 255 make it exactly 1: infinite for a logit transform. Clip to the
    # largest float32 below the bin's upper edge (x+1)/256, which is exact in float32.
    upper = np.nextafter((x + np.float32(1)) / np.float32(256), np.float32(0))
    return np.minimum(y, upper, out=y)
