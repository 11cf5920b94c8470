"""The one place tinygen draws random numbers.

Every random draw in the library goes through the generators held here, so that
``tinygen.manual_seed(seed)`` makes a whole run reproducible: it reseeds the NumPy
generator used for CPU tensors and, when CuPy is present, the one used for GPU tensors.
Library code never calls ``np.random`` directly.
"""
from __future__ import annotations

import numpy as np

from . import backend

_DEFAULT_SEED = 0
_seed = _DEFAULT_SEED
_np_rng = np.random.default_rng(_DEFAULT_SEED)
_cp_rng = None  # created on first use, seeded from _seed


def manual_seed(seed: int) -> None:
    """Seed the generators of both devices (NumPy's now, CuPy's on its first use)."""
    global _seed, _np_rng, _cp_rng
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be non-negative, got {seed}")
    _seed = seed
    _np_rng = np.random.default_rng(seed)
    _cp_rng = None
    # CuPy already imported: seed it now as well, if there is a GPU (CuPy may be
    # installed on a machine without one)
    if backend._cupy is not None and backend.cuda_available():
        _generator("cuda")


def _generator(device: str):
    """The generator for a device: numpy.random.Generator or cupy.random.RandomState."""
    global _cp_rng
    if backend.check_device(device) == "cpu":
        return _np_rng
    if _cp_rng is None:
        _cp_rng = backend._cupy.random.RandomState(_seed)
    return _cp_rng


def generator(seed=None) -> np.random.Generator:
    """An independent NumPy generator for one purpose (a data loader's shuffling, a
    dataset's noise), so that its draws do not shift the global stream. With a seed
    it is reproducible on its own; without one it is seeded from the global generator,
    which manual_seed controls."""
    if seed is None:
        seed = int(_np_rng.integers(0, 2 ** 63 - 1))
    return np.random.default_rng(int(seed))


def get_rng_state() -> dict:
    """The CPU generator's state, to store in a checkpoint.

    CuPy's generator cannot report its state; after ``set_rng_state`` it restarts from
    the seed, so a resumed run is reproducible on the CPU, not bit for bit on the GPU."""
    return {"seed": _seed, "numpy": _np_rng.bit_generator.state}


def set_rng_state(state: dict) -> None:
    """Restore a state returned by ``get_rng_state``."""
    global _seed, _cp_rng
    _seed = int(state["seed"])
    _np_rng.bit_generator.state = state["numpy"]
    _cp_rng = None


def _make(data, requires_grad):
    from .autograd import Tensor  # the autograd layer sits above this module
    return Tensor(data, requires_grad=requires_grad)


def _shape(shape):
    # Accept randn(2, 3) as well as randn((2, 3)), like torch.
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(s) for s in shape)


def randn(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    """Standard normal samples N(0, 1) of the given shape."""
    # numpy.random.Generator and cupy.random.RandomState share this signature.
    data = _generator(device).standard_normal(_shape(shape), dtype=np.dtype(dtype))
    return _make(data, requires_grad)


def rand(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    """Uniform samples on [0, 1) of the given shape."""
    g = _generator(device)
    dtype = np.dtype(dtype)
    if backend.check_device(device) == "cpu":
        data = g.random(_shape(shape), dtype=dtype)
    else:
        data = g.random_sample(_shape(shape), dtype=dtype)
    return _make(data, requires_grad)


def randint(low, high=None, size=(), dtype=np.int64, device="cpu"):
    """Integers uniform on [low, high) (or [0, low) when high is None), NumPy-style."""
    if high is None:
        low, high = 0, low
    g = _generator(device)
    size = (size,) if isinstance(size, int) else tuple(size)
    if backend.check_device(device) == "cpu":
        data = g.integers(low, high, size=size, dtype=dtype)
    else:
        data = g.randint(low, high, size=size, dtype=dtype)
    return _make(data, False)
