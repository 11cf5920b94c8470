"""Every speed-only route against the plain form it replaces.

Where an op has a fast route (threads, cache-sized blocks, a different but equivalent
formula), the plain version is its twin: a naive loop from the definition
(conv_reference.py), the textbook formula in NumPy, or the op's own other route. Each
test here drives the fast route and compares. (The ops' values and derivatives against
finite differences are in test_conv.py, test_op_values.py and test_op_gradients.py.)
"""
import math
import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
from tinygen import parallel
from tinygen.nn import functional as F
from tinygen.ops import conv
from tinygen.optim import Adam, AdamW, _adam_update
from conftest import DEVICES
from conv_reference import (conv_geometry, naive_conv2d, naive_conv2d_weight_grad,
                            naive_conv_transpose2d, naive_fold, naive_unfold)


def _normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def _threads(n):
    """A context in which tinygen.parallel uses n threads (TINYGEN_NUM_THREADS)."""
    return mock.patch.dict(os.environ, {"TINYGEN_NUM_THREADS": n})


# --------------------------------------------------------------------------- unfold, fold

@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("device", DEVICES)
@given(g=conv_geometry(), pad_value=st.sampled_from([0.0, -np.inf, 1.5]))
def test_unfold_matches_naive(g, pad_value, device, threads):
    """unfold on the CPU copies what lies inside x per kernel offset and fills the border
    itself, channels split over threads; on the GPU it copies a strided view of the
    padded x. Both against the definition."""
    x = _normal((g["N"], g["Cg"] * g["groups"]) + g["size"])
    geometry = g["kernel"], g["stride"], g["padding"], g["dilation"]
    with _threads(threads):
        cols = tg.unfold(tg.tensor(x, device=device), *geometry, pad_value=pad_value)
    np.testing.assert_array_equal(cols.numpy(), naive_unfold(x, *geometry, pad_value))


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("device", DEVICES)
@given(g=conv_geometry())
def test_fold_matches_naive(g, device, threads):
    """fold adds one strided slice per kernel offset, channels split over threads."""
    (kh, kw), (H, W) = g["kernel"], g["size"]
    Ho, Wo = (conv.conv_output_size(n, k, s, p, d) for n, k, s, p, d in
              zip(g["size"], g["kernel"], g["stride"], g["padding"], g["dilation"]))
    cols = _normal((g["Cg"] * g["groups"], kh, kw, g["N"], Ho, Wo))
    geometry = g["kernel"], g["stride"], g["padding"], g["dilation"]
    with _threads(threads):
        out = tg.fold(tg.tensor(cols, device=device), (H, W), *geometry)
    np.testing.assert_allclose(out.numpy(), naive_fold(cols, (H, W), *geometry), atol=1e-12)


# --------------------------------------------------------------------------- conv2d's gradients

def _conv2d_grads(x, w, gy, create_graph, **geometry):
    tx, tw = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)
    y = F.conv2d(tx, tw, None, **geometry)
    gx, gw = tg.grad(y, [tx, tw], tg.tensor(gy), create_graph=create_graph)
    return gx.numpy(), gw.numpy()


def _check_conv2d_grads(x, w, stride, padding, dilation, groups, create_graph):
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    y = naive_conv2d(x, w, None, s, p, d, groups)
    gy = _normal(y.shape, seed=1)
    gx, gw = _conv2d_grads(x, w, gy, create_graph, stride=s, padding=p, dilation=d,
                           groups=groups)
    # dL/dx is the transposed convolution of dL/dy with W, cut to x's size
    (H, W), (kh, kw) = x.shape[2:], w.shape[2:]
    op = tuple(n - ((m - 1) * si - 2 * pi + di * (k - 1) + 1) for n, m, si, pi, di, k
               in zip((H, W), gy.shape[2:], s, p, d, (kh, kw)))
    np.testing.assert_allclose(gx, naive_conv_transpose2d(gy, w, None, s, p, op, d, groups),
                               atol=1e-12)
    np.testing.assert_allclose(gw, naive_conv2d_weight_grad(x, gy, w.shape, s, p, d, groups),
                               atol=1e-12)


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("case", [
    # dL/dx at stride 1 with O <= C: a convolution with the flipped, channel-swapped kernel
    dict(C=4, O=3, k=3, stride=1, padding=1, dilation=1, groups=1),
    dict(C=4, O=4, k=3, stride=1, padding=2, dilation=2, groups=2),
    # O > C (a first layer lifting 1 channel): the transposed convolution, by fold
    dict(C=1, O=4, k=3, stride=1, padding=1, dilation=1, groups=1),
    # padding beyond d (k - 1): the flipped kernel would need negative padding
    dict(C=4, O=2, k=1, stride=1, padding=1, dilation=1, groups=1),
    # stride 2: the transposed convolution by phases (k = 4) and by fold (dilated)
    dict(C=4, O=4, k=4, stride=2, padding=1, dilation=1, groups=1),
    dict(C=4, O=4, k=3, stride=2, padding=1, dilation=2, groups=2),
])
def test_every_route_of_conv2d_gradients_matches_naive(case, create_graph):
    """dL/dx by each route, and dL/dW from the forward pass's columns (plain backward) or
    unfolded again as ops (create_graph), against the definitions."""
    c = case
    x = _normal((2, c["C"], 7, 6))
    w = _normal((c["O"], c["C"] // c["groups"], c["k"], c["k"]), seed=2)
    _check_conv2d_grads(x, w, c["stride"], c["padding"], c["dilation"], c["groups"],
                        create_graph)


@pytest.mark.parametrize("create_graph", [False, True])
@given(g=conv_geometry())
def test_conv2d_gradients_match_naive_on_drawn_geometry(g, create_graph):
    x = _normal((g["N"], g["Cg"] * g["groups"]) + g["size"])
    w = _normal((g["Og"] * g["groups"], g["Cg"]) + g["kernel"], seed=2)
    _check_conv2d_grads(x, w, g["stride"], g["padding"], g["dilation"], g["groups"],
                        create_graph)


# --------------------------------------------------------------------------- conv_transpose2d's gradients

@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("case", [
    dict(k=(4, 4), stride=2, padding=1, output_padding=0, dilation=1),    # phases
    dict(k=(5, 2), stride=(3, 2), padding=(4, 0), output_padding=(2, 1), dilation=1),
    dict(k=(3, 3), stride=2, padding=1, output_padding=1, dilation=2),    # fold
    dict(k=(3, 3), stride=1, padding=1, output_padding=0, dilation=1),    # flipped conv2d
])
def test_every_route_of_conv_transpose2d_gradients_matches_naive(case, create_graph):
    """y = A^T x with A = conv2d(., W), so dL/dx = conv2d(dL/dy, W) and dL/dW is conv2d's
    weight gradient with dL/dy as its input and x as its output gradient. The phase
    route's plain backward shares one unfold of dL/dy between the two."""
    c = case
    s, p, op, d = (_pair(c[k]) for k in ("stride", "padding", "output_padding", "dilation"))
    x, w = _normal((2, 4, 4, 5)), _normal((4, 3) + c["k"], seed=2)
    y = naive_conv_transpose2d(x, w, None, s, p, op, d, 2)
    gy = _normal(y.shape, seed=1)
    tx, tw = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)
    out = F.conv_transpose2d(tx, tw, None, s, p, op, 2, d)
    gx, gw = tg.grad(out, [tx, tw], tg.tensor(gy), create_graph=create_graph)
    np.testing.assert_allclose(gx.numpy(), naive_conv2d(gy, w, None, s, p, d, 2), atol=1e-12)
    np.testing.assert_allclose(gw.numpy(), naive_conv2d_weight_grad(gy, x, w.shape, s, p, d, 2),
                               atol=1e-12)


# --------------------------------------------------------------------------- fused backwards

@pytest.mark.parametrize("op", [
    lambda x: tg.silu(x),
    lambda x: tg.standardize(x, axis=(0, 2)),
], ids=["silu", "standardize"])
def test_array_backward_equals_the_tensor_op_backward(op):
    """SiLU and standardize compute an ordinary backward directly on arrays and build it
    from tensor ops under create_graph: the two must agree."""
    x = tg.tensor(_normal((3, 4, 5)), requires_grad=True)
    gy = tg.tensor(_normal((3, 4, 5), seed=1))
    (plain,) = tg.grad(op(x), [x], gy)
    (graph,) = tg.grad(op(x), [x], gy, create_graph=True)
    np.testing.assert_allclose(plain.numpy(), graph.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("create_graph", [False, True])
def test_standardize_equals_the_chain_of_mean_var_and_divide(create_graph):
    """standardize is one fused op; the plain form is the chain of ops it replaces."""
    x = tg.tensor(_normal((3, 4, 5)), requires_grad=True)
    gy = tg.tensor(_normal((3, 4, 5), seed=1))
    axes = (0, 2)
    fused = tg.standardize(x, axes, eps=1e-3)
    chain = (x - x.mean(axes, keepdims=True)) / (x.var(axes, keepdims=True) + 1e-3).sqrt()
    np.testing.assert_allclose(fused.numpy(), chain.numpy(), rtol=1e-12, atol=1e-14)
    (g_fused,) = tg.grad(fused, [x], gy, create_graph=create_graph)
    (g_chain,) = tg.grad(chain, [x], gy, create_graph=create_graph)
    np.testing.assert_allclose(g_fused.numpy(), g_chain.numpy(), rtol=1e-10, atol=1e-12)


def test_matmul_gradient_of_a_transposed_weight_is_the_plain_product():
    """For y = x W^T (W^T a transposed view, as in Linear) dL/dW is formed as (g^T x)
    transposed back, so it comes out contiguous; it equals the plain x^T g, transposed."""
    x = tg.tensor(_normal((5, 3)), requires_grad=True)
    W = tg.tensor(_normal((4, 3), seed=2), requires_grad=True)
    g = _normal((5, 4), seed=1)
    gx, gW = tg.grad(x @ W.mT, [x, W], tg.tensor(g))
    np.testing.assert_allclose(gW.numpy(), (x.numpy().T @ g).T, rtol=1e-12)
    np.testing.assert_allclose(gx.numpy(), g @ W.numpy(), rtol=1e-12)
    assert gW.data.flags.c_contiguous


# --------------------------------------------------------------------------- Adam in blocks

@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("make", [
    lambda ps: Adam(ps, lr=0.1, betas=(0.8, 0.9), eps=0.05, weight_decay=0.3),
    lambda ps: AdamW(ps, lr=0.1, betas=(0.8, 0.9), eps=0.05, weight_decay=0.3),
], ids=["adam", "adamw"])
def test_adam_in_blocks_equals_adam_on_whole_arrays(make, threads, monkeypatch):
    """On the CPU, Adam updates each parameter in cache-sized blocks spread over threads;
    the plain form is _adam_update on the whole arrays, which must give the same bits."""
    monkeypatch.setenv("TINYGEN_NUM_THREADS", threads)
    n = 3 * parallel.BLOCK + 5                     # several blocks and a ragged end
    theta0 = _normal((n,)).astype(np.float32)
    p = tg.tensor(theta0.copy(), requires_grad=True)
    opt = make([p])
    beta1, beta2 = opt.param_groups[0]["betas"]
    lr, eps, wd = 0.1, 0.05, 0.3
    theta, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
    for t in range(1, 4):
        g = _normal((n,), seed=t).astype(np.float32)
        p.grad = tg.tensor(g)
        opt.step()
        root_bias2 = math.sqrt(1.0 - beta2 ** t)
        _adam_update(theta, g, m, v, beta1, beta2, lr * root_bias2 / (1.0 - beta1 ** t),
                     eps * root_bias2, wd, lr, isinstance(opt, AdamW))
        assert len(parallel.blocks(n)) == 4
        np.testing.assert_array_equal(p.numpy(), theta)
        np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"], v)
