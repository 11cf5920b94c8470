"""A stand-in for CuPy built on NumPy, for the tests only (not part of the package).

Why: tinygen's CUDA code paths (every ``xp is not np`` branch, moving arrays between
devices, saving device arrays) never ran on a machine without a GPU. tests/conftest.py
puts this folder first on sys.path when the real CuPy cannot be imported, so the "cuda"
cases of the device-parametrised tests run on the CPU, with this module as "cupy".

What it imitates: ``cupy.ndarray`` wraps a NumPy array and keeps CuPy's rules where
mistakes hide:
  - no implicit conversion to NumPy: ``np.asarray(x)``, ``np.array(x)`` and anything
    else that calls ``__array__`` raise CuPy's TypeError; ``x.get()`` (or
    ``cupy.asnumpy``) copies to the host explicitly;
  - no mixing with NumPy arrays in one operation: a ufunc or function (NumPy's or this
    module's) given a device array and a ``numpy.ndarray`` raises TypeError; Python and
    NumPy scalars are fine. As in CuPy, ``np.exp(x)`` on a device array alone works and
    stays on the device (NEP 13/18 dispatch);
  - reductions and full indexing return 0-d device arrays, not NumPy scalars; size-1
    arrays convert with ``float(x)``, ``int(x)``, ``bool(x)``, ``x.item()``;
  - ``x.data`` is a memory pointer, not the array itself (code that looks for
    ``.data`` to unwrap a tensor must not unwrap a raw array).
Module-level names are NumPy's, wrapped on first use so that they take and return
device arrays (``cupy.zeros``, ``cupy.add.at``, ...), plus the pieces tinygen reaches:
``asarray``/``asnumpy``, ``lib.stride_tricks.as_strided``, ``random.RandomState``,
``cuda.runtime.getDeviceCount`` (1), ``cuda.Device``, ``get_array_module``.
It does not imitate CuPy's numerics, its random streams, its missing NumPy functions,
or asynchronous execution.
"""
import sys as _sys

import numpy as _np

__version__ = "0.0.0+fakecupy"
IS_STAND_IN = True  # lets tests (and gpu_check) tell this apart from the real CuPy

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")


def _host_refused(x):
    return TypeError(f"Unsupported type {type(x)}: a numpy.ndarray cannot be mixed with "
                     "cupy.ndarray in one operation (use cupy.asarray or .get())")


def _unwrap(x, host_ok=False):
    """The NumPy arrays behind device arrays in x (recursing into lists and tuples).
    NumPy arrays are refused unless host_ok (CuPy converts them only for indices)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        if not host_ok:
            raise _host_refused(x)
        return x
    if isinstance(x, (list, tuple)) and type(x) in (list, tuple):
        return type(x)(_unwrap(v, host_ok) for v in x)
    return x


def _unwrap_kw(kwargs, host_ok=False):
    return {k: _unwrap(v, host_ok) for k, v in kwargs.items()}


def _wrap(x):
    """Device arrays for the NumPy arrays and scalars in a result."""
    if isinstance(x, _np.ndarray):
        return ndarray._of(x)
    if isinstance(x, _np.generic):  # CuPy returns 0-d arrays, never NumPy scalars
        return ndarray._of(_np.asarray(x))
    if type(x) in (list, tuple):
        return type(x)(_wrap(v) for v in x)
    return x


def _result(r, out):
    """The caller's own ``out`` array(s) when the result was written there."""
    if out is None:
        return _wrap(r)
    if isinstance(out, tuple):
        return out[0] if len(out) == 1 else out
    return out


def _check_ufunc_args(args):
    # A ufunc takes arrays and scalars only: CuPy refuses lists and NumPy arrays alike.
    for a in args:
        if isinstance(a, _np.ndarray) or type(a) in (list, tuple):
            raise _host_refused(a)


class ufunc:
    """A NumPy ufunc taking and returning device arrays (``cupy.exp``, ``cupy.add.at``)."""

    def __init__(self, np_ufunc):
        self._uf = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __repr__(self):
        return f"<ufunc 'cupy.{self.__name__}' (NumPy stand-in)>"

    def _apply(self, method, args, kwargs):
        _check_ufunc_args(args)
        out = kwargs.get("out")
        r = getattr(self._uf, method)(*_unwrap(args), **_unwrap_kw(kwargs))
        return _result(r, out)

    def __call__(self, *args, **kwargs):
        return self._apply("__call__", args, kwargs)

    def reduce(self, *args, **kwargs):
        return self._apply("reduce", args, kwargs)

    def accumulate(self, *args, **kwargs):
        return self._apply("accumulate", args, kwargs)

    def outer(self, *args, **kwargs):
        return self._apply("outer", args, kwargs)

    def at(self, a, indices, b=None):
        # Like CuPy's scatter: indices and values may come from the host.
        if not isinstance(a, ndarray):
            raise _host_refused(a)
        args = (a._a, _unwrap(indices, True)) + (() if b is None else (_unwrap(b, True),))
        self._uf.at(*args)


def _function(np_func):
    """A NumPy function taking and returning device arrays."""
    def f(*args, **kwargs):
        out = kwargs.get("out")
        return _result(np_func(*_unwrap(args), **_unwrap_kw(kwargs)), out)
    f.__name__ = f.__qualname__ = getattr(np_func, "__name__", "function")
    f.__doc__ = f"cupy.{f.__name__} (stand-in wrapping numpy.{f.__name__})"
    return f


def _lookup(np_module, name):
    value = getattr(np_module, name)  # AttributeError for names NumPy lacks
    if isinstance(value, _np.ufunc):
        return ufunc(value)
    if callable(value) and not isinstance(value, type):
        return _function(value)
    return value  # dtypes, scalar types, constants: shared with NumPy, as in CuPy


class _Namespace:
    """A submodule (cupy.linalg, cupy.fft, ...) wrapping a NumPy submodule's functions."""

    def __init__(self, np_module):
        self._np = np_module

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _lookup(self._np, name)
        setattr(self, name, value)
        return value


class ndarray(_np.lib.mixins.NDArrayOperatorsMixin):
    """A device array: a NumPy array that refuses to be taken for one."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = _np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a):
        x = cls.__new__(cls)
        x._a = a
        return x

    # --- the refusals
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        if method == "at":
            return ufunc(uf).at(*inputs, **kwargs)
        return ufunc(uf)._apply(method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        out = kwargs.get("out")
        return _result(func(*_unwrap(args), **_unwrap_kw(kwargs)), out)

    # --- explicit copies to the host
    def get(self, stream=None, order="C", out=None):
        if out is not None:
            _np.copyto(out, self._a)
            return out
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        _np.copyto(self._a, arr)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __index__(self):
        return self._a.__index__()

    def __bool__(self):
        return bool(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    # --- shape, indexing, iteration
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def data(self):
        return cuda.MemoryPointer(self._a)

    @property
    def device(self):
        return cuda.Device(0)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self._a)))

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, host_ok=True)])

    def __setitem__(self, key, value):
        key = _unwrap(key, host_ok=True)
        advanced = any(isinstance(k, (_np.ndarray, list))
                       for k in (key if isinstance(key, tuple) else (key,)))
        if isinstance(value, _np.ndarray) and value.ndim and not advanced:
            # CuPy fills a basic slice from a scalar only; a NumPy array must be copied first
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a[key] = _unwrap(value, host_ok=True)

    def __copy__(self):
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._of(self._a.copy())

    def __reduce__(self):
        return _from_host, (self._a.copy(),)

    # --- everything else: NumPy's methods and attributes, on device arrays
    def __getattr__(self, name):
        if name.startswith("_") or name in ("ctypes", "tofile", "dump", "dumps"):
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        value = getattr(self._a, name)
        if callable(value):
            return _function(value)
        return _wrap(value)


ndarray.__module__ = "cupy"


def _from_host(a):
    return ndarray._of(a)


# --- module-level functions that differ from a plain wrap

def asarray(a, dtype=None, order=None, **kwargs):
    """Device array of ``a``; a NumPy array is copied to the device, as in CuPy."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return ndarray._of(_np.array(_unwrap(a, host_ok=True), dtype=dtype, order=order or "K"))


def array(obj, dtype=None, copy=True, order="K", ndmin=0, **kwargs):
    if isinstance(obj, ndarray):
        return ndarray._of(_np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    return ndarray._of(_np.array(_unwrap(obj, host_ok=True), dtype=dtype, order=order,
                                 ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None):
    return a.get(order=order, out=out) if isinstance(a, ndarray) else _np.asarray(a, order=order)


def get_array_module(*args):
    return _this if any(isinstance(a, ndarray) for a in args) else _np


def _as_strided(x, shape=None, strides=None):
    return ndarray._of(_np.lib.stride_tricks.as_strided(x._a, shape, strides))


class _Generator:
    """cupy.random.RandomState: CuPy's signatures (dtype arguments), NumPy's numbers."""

    def __init__(self, seed=None):
        self.seed(seed)

    def seed(self, seed=None):
        self._g = _np.random.default_rng(seed)

    def standard_normal(self, size=None, dtype=float):
        return ndarray._of(_np.asarray(self._g.standard_normal(size, dtype=dtype)))

    def random_sample(self, size=None, dtype=float):
        return ndarray._of(_np.asarray(self._g.random(size, dtype=dtype)))

    def randint(self, low, high=None, size=None, dtype="l"):
        if high is None:
            low, high = 0, low
        return ndarray._of(_np.asarray(self._g.integers(low, high, size, dtype=dtype)))

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return ndarray._of(_np.asarray(self._g.normal(loc, scale, size)).astype(dtype))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return ndarray._of(_np.asarray(self._g.uniform(low, high, size)).astype(dtype))

    def permutation(self, num):
        return ndarray._of(self._g.permutation(_unwrap(num)))


class MemoryPointer:
    """cupy.cuda.MemoryPointer: what ``x.data`` is on a CuPy array."""

    def __init__(self, a):
        self.ptr = a.__array_interface__["data"][0]


class _Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def deviceSynchronize():
        pass


class _Cuda:
    runtime = _Runtime
    Device = _Device
    MemoryPointer = MemoryPointer

    @staticmethod
    def is_available():
        return True


MemoryPointer.__module__ = _Device.__module__ = "cupy.cuda"
_Device.__name__ = _Device.__qualname__ = "Device"
_Generator.__name__ = _Generator.__qualname__ = "RandomState"
cuda = _Cuda()
random = _Namespace(_np.random)
random.RandomState = _Generator
linalg = _Namespace(_np.linalg)
fft = _Namespace(_np.fft)
lib = _Namespace(_np.lib)
lib.stride_tricks = _Namespace(_np.lib.stride_tricks)
lib.stride_tricks.as_strided = _as_strided


def __getattr__(name):
    """Any other NumPy name, wrapped to take and return device arrays (PEP 562)."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        value = _lookup(_np, name)
    except AttributeError:
        raise AttributeError(f"module 'cupy' (stand-in) has no attribute {name!r}") from None
    globals()[name] = value
    return value


_this = _sys.modules[__name__]
