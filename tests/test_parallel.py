"""tinygen.parallel: blockwise must give exactly what one call on the whole arrays gives,
whatever the memory layout, and SiLU's blockwise path must match its formula."""
import numpy as np
import pytest

import tinygen as tg
from tinygen import parallel


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "mixed", "gaps"])
def test_blockwise_equals_one_call_on_the_whole_arrays(layout):
    rng = np.random.default_rng(0)
    shape = (8, 16, 32, 33)  # 135168 elements: several blocks, a partial last one
    x = rng.standard_normal((16, 8, 32, 33)).astype(np.float32).transpose(1, 0, 2, 3)
    y = rng.standard_normal(shape).astype(np.float32)
    if layout == "contiguous":
        x = np.ascontiguousarray(x)
    elif layout == "transposed":  # both in (C, N, H, W) memory order, seen as NCHW
        y = np.ascontiguousarray(y.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    elif layout == "gaps":        # a strided slice does not fill its memory
        x = rng.standard_normal((8, 16, 32, 66)).astype(np.float32)[..., ::2]
    out = np.empty_like(x)
    pieces = []

    def axpy_pieces(x, y, out):
        pieces.append(x.size)
        np.multiply(x, 3.0, out=out)
        out += y

    parallel.blockwise(axpy_pieces, x, y, out)
    np.testing.assert_array_equal(out, 3.0 * x + y)
    # pieces where the layouts allow them, else one call on the whole
    assert len(pieces) == (1 if layout in ("mixed", "gaps") else 5)


def test_blockwise_with_one_piece_per_array_calls_fn_once_on_the_whole():
    calls = []
    x = np.arange(10.0)
    parallel.blockwise(lambda a: calls.append(a.shape), x)
    assert calls == [(10,)]


@pytest.mark.parametrize("perm", [(0, 1, 2, 3), (1, 0, 2, 3)])
def test_silu_on_large_arrays_matches_its_formula(perm):
    """Large enough for the blockwise path, in NCHW and in a convolution's (C, N) order."""
    rng = np.random.default_rng(1)
    x = 6 * rng.standard_normal((16, 8, 32, 33))  # float64
    g = rng.standard_normal((16, 8, 32, 33))
    t = tg.tensor(x, requires_grad=True)
    y = tg.silu(t.transpose(perm))  # a view in x's memory order
    assert y.data.strides == x.transpose(perm).strides
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(y.numpy(), (x * s).transpose(perm), rtol=1e-12, atol=1e-300)
    y.backward(tg.tensor(g).transpose(perm))
    np.testing.assert_allclose(t.grad.numpy(), g * s * (1 + x * (1 - s)), rtol=1e-12,
                               atol=1e-300)
