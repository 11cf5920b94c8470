"""The fast convolution and pooling ops against their naive twins, on drawn geometry.
(Their gradients, first and second order, are in test_op_gradients.py.)"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
from tinygen.nn import functional as F
from conftest import DEVICES
from conv_reference import (conv_geometry, naive_conv2d, naive_conv_transpose2d,
                            naive_pool2d)


def _draw(data, shape):
    return np.asarray(data.draw(st.lists(st.floats(-2, 2, allow_subnormal=False),
                                         min_size=int(np.prod(shape)),
                                         max_size=int(np.prod(shape)))),
                      dtype=np.float64).reshape(shape)


@pytest.mark.parametrize("device", DEVICES)
@given(g=conv_geometry(), data=st.data())
def test_conv2d_matches_naive(g, data, device):
    C, O = g["Cg"] * g["groups"], g["Og"] * g["groups"]
    x = _draw(data, (g["N"], C) + g["size"])
    w = _draw(data, (O, g["Cg"]) + g["kernel"])
    b = _draw(data, (O,)) if data.draw(st.booleans()) else None
    y = F.conv2d(tg.tensor(x, device=device), tg.tensor(w, device=device),
                 None if b is None else tg.tensor(b, device=device),
                 g["stride"], g["padding"], g["dilation"], g["groups"])
    ref = naive_conv2d(x, w, b, g["stride"], g["padding"], g["dilation"], g["groups"])
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@given(g=conv_geometry(transposed=True), data=st.data())
def test_conv_transpose2d_matches_naive(g, data, device):
    Cin, Cout = g["Cg"] * g["groups"], g["Og"] * g["groups"]
    x = _draw(data, (g["N"], Cin) + g["size"])
    w = _draw(data, (Cin, g["Og"]) + g["kernel"])
    b = _draw(data, (Cout,)) if data.draw(st.booleans()) else None
    y = F.conv_transpose2d(tg.tensor(x, device=device), tg.tensor(w, device=device),
                           None if b is None else tg.tensor(b, device=device), g["stride"],
                           g["padding"], g["output_padding"], g["groups"], g["dilation"])
    ref = naive_conv_transpose2d(x, w, b, g["stride"], g["padding"], g["output_padding"],
                                 g["dilation"], g["groups"])
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_pooling_matches_naive(data, device):
    k = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    p = (data.draw(st.integers(0, k[0] // 2)), data.draw(st.integers(0, k[1] // 2)))
    size = (data.draw(st.integers(k[0], 7)), data.draw(st.integers(k[1], 7)))
    x = _draw(data, (2, 2) + size)
    tx = tg.tensor(x, device=device)
    np.testing.assert_allclose(F.max_pool2d(tx, k, s, p).numpy(),
                               naive_pool2d(x, k, s, p, np.max, -np.inf))
    np.testing.assert_allclose(F.avg_pool2d(tx, k, s, p).numpy(),
                               naive_pool2d(x, k, s, p, np.mean, 0.0), atol=1e-12)


def test_transposed_convolution_is_the_adjoint_of_convolution():
    """<conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for every x and y."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 2))
    y = rng.standard_normal((2, 6, 5, 4))   # the output shape of conv2d(x, w)
    kw = dict(stride=2, padding=1, dilation=(1, 2), groups=2)
    lhs = (F.conv2d(tg.tensor(x), tg.tensor(w), **kw).numpy() * y).sum()
    out = F.conv_transpose2d(tg.tensor(y), tg.tensor(w), output_padding=(0, 1), **kw)
    assert out.shape == x.shape
    assert np.isclose(lhs, (x * out.numpy()).sum())


def test_convolution_keeps_float32_and_gives_contiguous_gradients():
    x = tg.randn(2, 3, 8, 8, requires_grad=True)
    conv = tg.nn.Conv2d(3, 4, 3, padding=1)
    y = conv(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32 and conv.weight.grad.dtype == np.float32


def test_geometry_errors_are_clear():
    x = tg.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        F.conv2d(x, tg.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(x, tg.zeros(2, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"expected input \(N, C, H, W\)"):
        F.conv2d(tg.zeros(3, 4, 4), tg.zeros(2, 3, 3, 3))
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, tg.zeros(3, 2, 3, 3), stride=2, output_padding=2)


def test_transposed_convolution_with_output_padding_beyond_the_stride():
    """output_padding may reach the dilation when it exceeds the stride; the extra
    output positions then lie outside every window (found by hypothesis)."""
    x = tg.tensor(np.array([[[[1.0, 2.0]]]]), requires_grad=True)
    w = tg.tensor(np.array([[[[3.0]]]]), requires_grad=True)
    f = lambda x, w: F.conv_transpose2d(x, w, dilation=(1, 2), output_padding=(0, 1))  # noqa: E731
    np.testing.assert_array_equal(f(x, w).numpy(), [[[[3.0, 6.0, 0.0]]]])
    assert tg.gradcheck(f, [x, w]) and tg.gradgradcheck(f, [x, w])


@pytest.mark.parametrize("geometry", [
    dict(kernel=(4, 4), stride=2, padding=1, output_padding=0, dilation=1),    # DCGAN, U-Net
    dict(kernel=(3, 3), stride=2, padding=1, output_padding=1, dilation=1),    # k % s != 0
    dict(kernel=(5, 2), stride=(3, 2), padding=(4, 0), output_padding=(2, 1), dilation=1),
    dict(kernel=(1, 1), stride=2, padding=0, output_padding=0, dilation=1),    # k < s
    dict(kernel=(3, 3), stride=2, padding=1, output_padding=1, dilation=2),    # fold
    dict(kernel=(3, 3), stride=1, padding=1, output_padding=0, dilation=1),    # a conv2d
])
def test_every_route_of_the_transposed_convolution_matches_naive(geometry):
    """Stride > 1 goes by phases (sub-pixel), dilated strides by fold, stride 1 by a
    flipped convolution: each against the definition, values and gradients."""
    g = geometry
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 3) + g["kernel"])
    b = rng.standard_normal(6)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    args = [pair(g[k]) for k in ("stride", "padding", "output_padding")]
    y = F.conv_transpose2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), *args, 2, g["dilation"])
    ref = naive_conv_transpose2d(x, w, b, *args, pair(g["dilation"]), 2)
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)
    f = lambda x, w: F.conv_transpose2d(x, w, None, *args, 2, g["dilation"])  # noqa: E731
    xs = tg.tensor(x[:1, :, :3, :4], requires_grad=True)
    ws = tg.tensor(w, requires_grad=True)
    assert tg.gradcheck(f, [xs, ws]) and tg.gradgradcheck(f, [xs, ws])
