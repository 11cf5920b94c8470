"""The CuPy rules that the "cuda" cases rely on to catch mistakes.

Where CuPy is missing these run on the NumPy stand-in (tests/fakecupy), and check that it
keeps CuPy's rules; on a GPU they run on the real CuPy, and check that the stand-in's
rules are CuPy's.
"""
import copy

import numpy as np
import pytest

import tinygen as tg
from conftest import CUDA_SKIP_REASON, FAKE_CUPY
from tinygen import backend

pytestmark = pytest.mark.skipif(not tg.cuda_available(), reason=CUDA_SKIP_REASON)


@pytest.fixture
def cp():
    return backend.array_module("cuda")


def test_the_stand_in_is_in_use_exactly_when_cupy_is_missing(cp):
    assert getattr(cp, "IS_STAND_IN", False) == FAKE_CUPY
    assert type(cp.zeros(2)).__module__.startswith("cupy")


def test_implicit_conversion_to_numpy_is_refused(cp):
    x = cp.arange(3.0)
    for convert in (np.asarray, np.array, lambda a: a.__array__(),
                    lambda a: np.testing.assert_allclose(a, [0, 1, 2])):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
            convert(x)
    host = np.empty(3)
    with pytest.raises(TypeError):
        host[...] = x  # a host buffer filled from device data


def test_mixing_with_numpy_arrays_is_refused_and_scalars_are_fine(cp):
    x, h = cp.arange(3.0), np.ones(3)
    for mix in (lambda: x + h, lambda: h * x, lambda: np.add(x, h), lambda: cp.maximum(x, h),
                lambda: np.concatenate([x, h]), lambda: cp.stack([x, h]),
                lambda: np.exp(np.zeros(0)) + x[:0]):
        with pytest.raises(TypeError):
            mix()
    for scalar in (2, 2.5, np.float32(2), np.float64(2), np.int64(2), True):
        y = x * scalar + scalar
        assert isinstance(y, cp.ndarray)
    assert (x * np.float32(2)).dtype == x.dtype


def test_get_copies_to_the_host_and_size_1_arrays_convert(cp):
    x = cp.asarray(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32))
    h = x.get()
    assert type(h) is np.ndarray and h.dtype == np.float32
    h[0, 0] = 99
    assert float(x[0, 0]) == 1.0  # a copy, not a view
    np.testing.assert_array_equal(cp.asnumpy(x), [[1, 2], [3, 4]])
    s = x.sum()
    assert isinstance(s, cp.ndarray) and s.shape == ()  # not a NumPy scalar
    assert float(s) == 10.0 and s.item() == 10.0 and int(x[1, 1]) == 4 and bool(s > 5)
    assert f"{s:.1f}" == "10.0"


def test_device_arrays_behave_like_arrays(cp):
    x = cp.arange(12, dtype=np.float64).reshape(3, 4)
    for y in (x.T, x[1:, ::2], x[0], x.reshape(4, 3), x[x > 5], x[cp.asarray([0, 2])],
              x[np.array([0, 2])], x.astype(np.float32), np.exp(x), x @ x.T):
        assert isinstance(y, cp.ndarray)
    assert x.T.shape == (4, 3) and x.strides == (32, 8) and x.dtype == np.float64
    v = x[0]
    v += 100  # a view: writes through
    x[1, :2] = 0
    x[2] *= -1
    np.testing.assert_array_equal(x.get(), [[100, 101, 102, 103], [0, 0, 6, 7],
                                            [-8, -9, -10, -11]])
    cp.add.at(x, (cp.asarray([0, 0]), 0), 1.0)
    assert float(x[0, 0]) == 102
    assert isinstance(copy.deepcopy(x), cp.ndarray)
    windows = cp.lib.stride_tricks.as_strided(x, (3, 2), (x.strides[0], x.strides[1]))
    np.testing.assert_array_equal(windows.get(), x[:, :2].get())


def test_a_raw_arrays_data_is_not_an_array(cp):
    # So code that looks through a tensor's .data must not look through a raw array's.
    x = cp.zeros(2)
    assert not isinstance(x.data, cp.ndarray)
    assert backend.get_array_module(x) is cp
    assert backend.get_array_module(tg.tensor([1.0], device="cuda")) is cp


# --------------------------------------------------------------------------- planted mistakes

def _scale_by_host_weights(x):
    w = np.linspace(0.5, 1.5, x.shape[-1])  # a host array next to x's data: the mistake
    return x.data * w


def _to_list_without_get(x):
    return np.asarray(x.data).tolist()  # the mistake: should be backend.to_numpy


def _fill_host_buffer(x):
    out = np.empty(x.shape, dtype=x.dtype)  # the mistake: should be xp.empty
    out[...] = np.exp(x.data)
    return out


@pytest.mark.parametrize("mistake", [_scale_by_host_weights, _to_list_without_get,
                                     _fill_host_buffer])
def test_planted_mistakes_pass_on_the_cpu_and_are_caught_on_cuda(mistake):
    mistake(tg.randn(2, 3))  # NumPy lets each of them through
    with pytest.raises(TypeError):
        mistake(tg.randn(2, 3, device="cuda"))
