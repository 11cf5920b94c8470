"""Devices, the array module, and the one source of random numbers."""
import subprocess
import sys

import numpy as np
import pytest

import tinygen as tg
from tinygen import backend


def test_importing_tinygen_does_not_import_cupy():
    out = subprocess.run([sys.executable, "-c",
                          "import sys, tinygen; tinygen.tensor([1.0]) * 2; "
                          "print('cupy' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_device_strings():
    assert backend.check_device("cpu") == "cpu"
    assert backend.check_device("CPU") == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backend.check_device("tpu")
    with pytest.raises(TypeError):
        backend.check_device(0)


def test_cuda_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_tried", True)
    monkeypatch.setattr(backend, "_cupy_error", ImportError("No module named 'cupy'"))
    assert not tg.cuda_available()
    with pytest.raises(RuntimeError, match=r"needs CuPy.*pip install"):
        tg.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match="needs CuPy"):
        tg.tensor([1.0]).to("cuda")


def test_cuda_without_a_gpu_says_so(monkeypatch):
    class FakeCupy:
        class cuda:
            class runtime:
                @staticmethod
                def getDeviceCount():
                    raise RuntimeError("cudaErrorNoDevice")
    monkeypatch.setattr(backend, "_cupy", FakeCupy)
    monkeypatch.setattr(backend, "_cupy_tried", True)
    assert not tg.cuda_available()
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
        backend.check_device("cuda")
    tg.manual_seed(3)  # CPU work goes on where CuPy is installed without a GPU
    assert tg.randn(2).shape == (2,)


def test_get_array_module(device):
    x = tg.tensor([1.0], device=device)
    xp = backend.get_array_module(x)
    assert xp is (np if device == "cpu" else backend._cupy)
    assert backend.get_array_module(np.zeros(2), 3.0) is np
    assert isinstance(x.data, xp.ndarray)
    # A raw array too (a CuPy array's .data is a memory pointer, not the array)
    assert backend.get_array_module(x.data) is xp
    assert backend.get_array_module(np.zeros(2), x.data) is xp


def test_to_copies_between_devices(device):
    x = tg.tensor([1.0, 2.0])
    y = x.to(device)
    assert y.device == device
    back = y.to("cpu")
    np.testing.assert_array_equal(back.numpy(), [1.0, 2.0])
    if device == "cuda":
        assert back.data is not x.data
    else:
        assert y is x  # no copy when the device does not change


def test_ops_run_on_the_tensors_device(device):
    x = tg.randn(3, 4, device=device)
    for y in (x.exp(), x @ x.T, x.sum(axis=0), x[1:], tg.cat([x, x])):
        assert y.device == device


# --------------------------------------------------------------------------- random numbers

def test_manual_seed_makes_draws_reproducible(device):
    tg.manual_seed(123)
    a = (tg.randn(5, device=device).numpy(), tg.rand(5, device=device).numpy(),
         tg.randint(0, 10, (5,), device=device).numpy())
    tg.manual_seed(123)
    b = (tg.randn(5, device=device).numpy(), tg.rand(5, device=device).numpy(),
         tg.randint(0, 10, (5,), device=device).numpy())
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    tg.manual_seed(124)
    assert not np.array_equal(tg.randn(5, device=device).numpy(), a[0])


def test_random_dtypes_ranges_and_moments(device):
    tg.manual_seed(0)
    z = tg.randn(100_000, device=device)
    assert z.dtype == np.float32 and z.device == device
    assert abs(z.numpy().mean()) < 0.02 and abs(z.numpy().std() - 1) < 0.02
    u = tg.rand(2, 3, dtype=np.float64, device=device)
    assert u.dtype == np.float64 and u.shape == (2, 3)
    assert 0 <= u.numpy().min() and u.numpy().max() < 1
    k = tg.randint(3, 7, size=1000, device=device).numpy()
    assert k.dtype == np.int64 and k.min() == 3 and k.max() == 6
    assert tg.randn(2, 2, requires_grad=True).requires_grad


def test_rng_state_round_trip():
    tg.manual_seed(5)
    state = tg.get_rng_state()
    a = tg.randn(4).numpy()
    tg.set_rng_state(state)
    np.testing.assert_array_equal(tg.randn(4).numpy(), a)


def test_independent_generators():
    a = tg.generator(7).standard_normal(3)
    np.testing.assert_array_equal(a, tg.generator(7).standard_normal(3))
    tg.manual_seed(1)
    b = tg.generator().standard_normal(3)
    tg.manual_seed(1)
    np.testing.assert_array_equal(b, tg.generator().standard_normal(3))
