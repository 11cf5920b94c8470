"""The one piece of cupyx that tinygen reaches, on the NumPy stand-in for CuPy (see
tests/fakecupy/cupy/__init__.py)."""
import cupy as _cp


def scatter_add(a, slices, value):
    """a[slices] += value, once per occurrence of a repeated index (CuPy's cupyx.scatter_add)."""
    _cp.add.at(a, slices, value)
