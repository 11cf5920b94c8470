"""How much the autograd engine costs on top of the arithmetic it performs.

- op overhead: one small op (forward only, and forward + backward), in microseconds;
  this is pure Python bookkeeping, the price of each node in the graph.
- mlp step: forward and backward of a 784-400-20 tanh MLP at batch 128 (the shape of
  the VAE encoder in BENCHMARKS.md), through tinygen and as hand-written NumPy
  (the same matrix products, gradients by hand): the ratio is the engine's overhead
  on a realistic layer.
"""
from __future__ import annotations

import time

import numpy as np

import tinygen as tg


def median_time(fn, repeat=50, warmup=5) -> float:
    """Median wall time of fn() in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def op_overhead():
    a = tg.tensor([1.0], requires_grad=True)
    b = tg.tensor([2.0], requires_grad=True)

    def forward():
        for _ in range(100):
            a * b

    def forward_backward():
        for _ in range(100):
            (a * b).sum().backward()

    return {"op forward (us/op)": median_time(forward) / 100 * 1e6,
            "op forward+backward (us/op pair)": median_time(forward_backward) / 100 * 1e6}


def mlp_step(batch=128, d_in=784, d_hidden=400, d_out=20):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, d_in), dtype=np.float32)
    W1 = rng.standard_normal((d_in, d_hidden), dtype=np.float32) * 0.03
    W2 = rng.standard_normal((d_hidden, d_out), dtype=np.float32) * 0.05
    b1 = np.zeros(d_hidden, np.float32)
    b2 = np.zeros(d_out, np.float32)

    params = [tg.tensor(p, requires_grad=True) for p in (W1, b1, W2, b2)]
    tx = tg.tensor(x)

    def tinygen_step():
        w1, c1, w2, c2 = params
        y = tg.tanh(tx @ w1 + c1) @ w2 + c2
        loss = (y * y).mean()
        for p in params:
            p.grad = None
        loss.backward()

    def numpy_step():
        h = np.tanh(x @ W1 + b1)
        y = h @ W2 + b2
        gy = 2 * y / y.size
        gW2, gb2 = h.T @ gy, gy.sum(0)
        gh = (gy @ W2.T) * (1 - h * h)
        gW1, gb1 = x.T @ gh, gh.sum(0)
        return gW1, gb1, gW2, gb2

    t_tg, t_np = median_time(tinygen_step), median_time(numpy_step)
    return {"mlp step tinygen (ms)": t_tg * 1e3, "mlp step numpy by hand (ms)": t_np * 1e3,
            "mlp ratio tinygen/numpy": t_tg / t_np}


def run():
    results = {}
    results.update(op_overhead())
    results.update(mlp_step())
    return results
