"""The array module behind every tensor: NumPy on the CPU, CuPy on a CUDA GPU.

A tensor's device is a property of its data: a ``numpy.ndarray`` lives on ``"cpu"``,
a ``cupy.ndarray`` on ``"cuda"``. Everything above this module asks
``get_array_module(*xs)`` for the module that owns its inputs and calls that module's
functions, so one piece of code serves both devices.

CuPy is optional. It is imported lazily, the first time CUDA is asked about, so that
``import tinygen`` works on a machine without it.
"""
from __future__ import annotations

import os
import sys

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None           # the cupy module once imported successfully
_cupy_error = None     # why importing it failed, for the error message
_cupy_tried = False


def _import_cupy():
    """Return the cupy module, or None if it cannot be imported (the reason is kept)."""
    global _cupy, _cupy_error, _cupy_tried
    if not _cupy_tried:
        _cupy_tried = True
        try:
            import cupy  # noqa: F401  (optional dependency)
            _cupy = cupy
        except Exception as e:  # ImportError, or a broken CUDA install
            _cupy_error = e
    return _cupy


def _gpu_count() -> int:
    cp = _import_cupy()
    if cp is None:
        return 0
    try:
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no device
        return 0


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA GPU."""
    return _gpu_count() > 0


def check_device(device) -> str:
    """Validate a device string and return it in canonical form ("cpu" or "cuda").

    Asking for "cuda" where CuPy or a GPU is missing raises a RuntimeError that says
    which of the two is missing and how to fix it.
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, 'cpu' or 'cuda'; got {device!r}")
    name = device.lower()
    if name.startswith("cuda:"):  # "cuda:0" is accepted; tinygen uses the current GPU
        name = "cuda"
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if name == "cuda":
        if _import_cupy() is None:
            raise RuntimeError(
                "device 'cuda' needs CuPy, which could not be imported "
                f"({_cupy_error}). Install the build matching your CUDA toolkit, e.g. "
                "pip install 'tinygen[gpu]' (CUDA 12) or pip install cupy-cuda13x (CUDA 13).")
        if _gpu_count() == 0:
            raise RuntimeError(
                "device 'cuda' was requested and CuPy is installed, but no CUDA GPU is "
                "visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), so use device='cpu'.")
    return name


def is_cupy_array(x) -> bool:
    if _cupy is None:
        # The user may have imported CuPy without tinygen: recognise its arrays by module.
        if not type(x).__module__.startswith("cupy") or _import_cupy() is None:
            return False
    return isinstance(x, _cupy.ndarray)


def device_of(array) -> str:
    """The device string of a raw array: "cuda" for CuPy arrays, else "cpu"."""
    return "cuda" if is_cupy_array(array) else "cpu"


def array_module(device: str):
    """The array module (numpy or cupy) for a device string."""
    return _import_cupy() if check_device(device) == "cuda" else np


def get_array_module(*xs):
    """The module (numpy or cupy) owning the given arrays or tensors.

    Tensors are looked through to their ``.data``; Python scalars count as NumPy.
    Returns cupy if any argument lives on the GPU.
    """
    for x in xs:
        # A raw CuPy array is tested before looking through .data: its .data is its
        # memory pointer, not an array.
        if is_cupy_array(x) or is_cupy_array(getattr(x, "data", None)):
            return _cupy
    return np


def to_device(array, device: str):
    """Return ``array`` on ``device``, copying between host and GPU when they differ."""
    device = check_device(device)
    if device == "cuda":
        return _cupy.asarray(array)
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def to_numpy(array) -> np.ndarray:
    """A NumPy array with the values of ``array`` (copied from the GPU if needed)."""
    return array.get() if is_cupy_array(array) else np.asarray(array)


def _keep_freed_memory_for_reuse() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning large blocks to
    the kernel.

    A training step allocates and frees the same large arrays (im2col columns,
    activations) every time. By default glibc serves blocks above 32 MB straight from
    the kernel with mmap and gives them back on free, so every step pays for the
    kernel to zero-fill fresh pages on first touch: as much time as the work done on
    the array. Raising the mmap and trim thresholds makes those blocks come from the
    reused heap instead. Linux with glibc only; set TINYGEN_KEEP_MALLOC=1 to opt out.
    """
    if not sys.platform.startswith("linux") or os.environ.get("TINYGEN_KEEP_MALLOC"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
                    and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
        return False


ALLOCATOR_TUNED = _keep_freed_memory_for_reuse()
