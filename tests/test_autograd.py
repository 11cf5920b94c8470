"""The engine's behaviour: tensors, backward and grad, grad modes, freeing, errors."""
import gc
import math
import tracemalloc

import numpy as np
import pytest

import tinygen as tg
from tinygen.autograd import Function, Tensor, _check_same_device


# --------------------------------------------------------------------------- tensor()

def test_tensor_dtypes_follow_the_documented_rules():
    assert tg.tensor(1.5).dtype == np.float32
    assert tg.tensor([1.0, 2.0]).dtype == np.float32
    assert tg.tensor([[1, 2]]).dtype == np.int64
    assert tg.tensor([True, False]).dtype == np.bool_
    assert tg.tensor(np.zeros(3)).dtype == np.float64          # float64 arrays stay
    assert tg.tensor(np.zeros(3, np.float32)).dtype == np.float32
    assert tg.tensor([1, 2], dtype=np.float64).dtype == np.float64


def test_tensor_copies_its_input_array():
    a = np.ones(3)
    t = tg.tensor(a)
    a[0] = 5.0
    assert t.numpy()[0] == 1.0


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        tg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        tg.tensor([1, 2]).requires_grad_()


def test_unsupported_data_is_refused():
    with pytest.raises(TypeError):
        tg.tensor(["a", "b"])


def test_properties_and_conversions(device):
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    assert x.shape == (2, 2) and x.ndim == 2 and x.size == 4 and len(x) == 2
    assert x.device == device
    assert isinstance(x.numpy(), np.ndarray)
    assert x.sum().item() == 10.0
    assert "tensor(" in repr(x)
    with pytest.raises(ValueError, match="one element"):
        x.item()


def test_python_numbers_keep_float32():
    x = tg.tensor([1.0, 2.0])
    for y in (x * 2.0, 2.0 * x, x + 1, x / 3.0, 1.0 - x, x ** 2, 2.0 ** x,
              x * np.log(2.0), np.float64(3.0) - x):
        assert y.dtype == np.float32


def test_float32_gradients_stay_float32():
    w = tg.randn(3, 4, requires_grad=True)
    (tg.tanh(w @ tg.randn(4, 2)).sum() * 0.5).backward()
    assert w.grad.dtype == np.float32


# --------------------------------------------------------------------------- backward and grad

def test_gradient_sums_over_every_path():
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()                # d/dx = 2x + 1
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -3.0, 7.0])


def test_leaf_gradients_accumulate():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_broadcasting_is_summed_back_to_each_input():
    a = tg.tensor(np.ones((3, 1)), requires_grad=True)
    b = tg.tensor(np.arange(4.0), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), 6.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 3.0))


def test_backward_of_a_non_scalar_needs_a_gradient():
    y = tg.tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match="non-scalar"):
        y.backward()
    y.backward(tg.tensor([1.0, 10.0]))


def test_backward_without_a_graph_says_so():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor([1.0]).sum().backward()


def test_gradient_of_wrong_shape_is_refused():
    y = tg.tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(ValueError, match="shape"):
        y.backward(tg.tensor([1.0, 2.0, 3.0]))


def test_grad_returns_gradients_and_leaves_dot_grad_alone():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    h = x * w
    gx, gh = tg.grad((h * h).sum(), [x, h])  # also with respect to an intermediate result
    np.testing.assert_allclose(gx.numpy(), 2 * (1 * 3) * 3 * np.array([1, 0]) +
                               2 * (2 * 4) * 4 * np.array([0, 1]))
    np.testing.assert_allclose(gh.numpy(), [6.0, 16.0])
    assert x.grad is None and w.grad is None


def test_grad_unused_input():
    x = tg.tensor([1.0], requires_grad=True)
    unused = tg.tensor([1.0], requires_grad=True)
    y = (x * 2.0).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        tg.grad(y, [x, unused], retain_graph=True)
    gx, gu = tg.grad(y, [x, unused], allow_unused=True)
    assert gu is None and gx.item() == 2.0


def test_grad_of_an_input_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.grad(tg.tensor([1.0], requires_grad=True).sum(), [tg.tensor([1.0])])


def test_second_derivative_and_hessian_vector_product():
    x = tg.tensor(2.0, requires_grad=True, dtype=np.float64)
    (dy,) = tg.grad(x ** 3, x, create_graph=True)    # 3 x^2
    (d2y,) = tg.grad(dy, x, create_graph=True)       # 6 x
    (d3y,) = tg.grad(d2y, x)                         # 6
    assert (dy.item(), d2y.item(), d3y.item()) == (12.0, 12.0, 6.0)

    A = np.array([[1.0, 2.0], [0.0, 3.0]])
    v = np.array([1.0, -1.0])
    z = tg.tensor([0.5, -0.7], requires_grad=True, dtype=np.float64)
    (g,) = tg.grad(z @ tg.tensor(A) @ z, z, create_graph=True)   # (A + A^T) z
    (hv,) = tg.grad((g * tg.tensor(v)).sum(), z)                   # (A + A^T) v
    np.testing.assert_allclose(hv.numpy(), (A + A.T) @ v)


def test_backward_with_create_graph_gives_differentiable_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (g2,) = tg.grad(x.grad.sum(), x)
    np.testing.assert_allclose(g2.numpy(), 6 * x.numpy())


class _RawBackward(Function):
    """An op whose backward reads raw arrays, so it cannot be differentiated again."""
    differentiable_backward = False

    def forward(self, a):
        return a * a

    def backward(self, g):
        return g * Tensor(2 * self.inputs[0].data)


def test_non_differentiable_backward_refuses_create_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (gx,) = tg.grad(_RawBackward.apply(x).sum(), x)        # first order is fine
    np.testing.assert_allclose(gx.numpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="_RawBackward.*cannot be differentiated again"):
        tg.grad(_RawBackward.apply(x).sum(), x, create_graph=True)


# --------------------------------------------------------------------------- grad modes

def test_no_grad_records_nothing_and_enable_grad_resumes():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.no_grad():
        y = x * 2.0
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            z = x * 2.0
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    assert tg.is_grad_enabled()


def test_no_grad_as_decorator_and_after_an_exception():
    @tg.no_grad()
    def f(x):
        return x * 2.0
    assert not f(tg.tensor([1.0], requires_grad=True)).requires_grad
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            1 / 0
    assert tg.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_data():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.0).detach()
    assert not y.requires_grad and y.grad_fn is None
    z = x.detach()
    assert z.data is x.data


# --------------------------------------------------------------------------- freeing the graph

def test_graph_is_freed_after_backward():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_pass():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_a_chain_of_ten_thousand_ops():
    x = tg.tensor(1.0, requires_grad=True, dtype=np.float64)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 10_000, rtol=1e-9)


def test_memory_does_not_grow_over_ten_thousand_steps():
    """A training loop must return all graph memory at every step."""
    tg.manual_seed(0)
    w = tg.randn(16, 16, requires_grad=True)
    x = tg.randn(32, 16)

    def step():
        loss = ((x @ w).tanh() ** 2).mean()
        loss.backward()
        w.data -= 0.01 * w.grad.data
        w.grad = None

    for _ in range(200):  # warm up caches and allocator
        step()
    gc.collect()
    tracemalloc.start()
    for _ in range(1_000):
        step()
    early, _ = tracemalloc.get_traced_memory()
    for _ in range(9_000):
        step()
    late, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert late - early < 256 * 1024, f"memory grew by {late - early} bytes over 9000 steps"


# --------------------------------------------------------------------------- errors

def test_shape_mismatch_names_the_op_and_both_shapes():
    a, b = tg.zeros(2, 3), tg.zeros(4)
    for f, name in [(lambda: a + b, "add"), (lambda: a * b, "mul"), (lambda: a - b, "sub"),
                    (lambda: a / b, "div"), (lambda: tg.maximum(a, b), "maximum")]:
        with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\)"):
            f()
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        a @ tg.zeros(4, 5)
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4,\)"):
        a.reshape(4)
    with pytest.raises(ValueError, match="cat"):
        tg.cat([a, tg.zeros(3, 3)], axis=1)


def test_device_mismatch_names_both_devices():
    class Fake:
        def __init__(self, device):
            self.device = device
    with pytest.raises(RuntimeError, match="mul: .*'cpu' and 'cuda'"):
        _check_same_device("mul", [Fake("cpu"), Fake("cuda")])


@pytest.mark.skipif(not tg.cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_mixing_devices_in_an_op_is_an_error():
    with pytest.raises(RuntimeError, match="'cuda' and 'cpu'"):
        tg.tensor([1.0], device="cuda") + tg.tensor([1.0])


def test_moving_between_devices_is_differentiable(device):
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(device)
    assert y.device == device
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


# --------------------------------------------------------------------------- in-place changes

def _tiny_gan():
    tg.manual_seed(0)
    G = tg.nn.Sequential(tg.nn.Linear(2, 8), tg.nn.ReLU(), tg.nn.Linear(8, 2))
    D = tg.nn.Sequential(tg.nn.Linear(2, 8), tg.nn.ReLU(), tg.nn.Linear(8, 1))
    return G, D


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_backward_after_an_optimizer_step_through_saved_weights_is_refused(opt):
    """One forward pass gives d_loss and g_loss from D(G(z)); d_loss.backward(retain);
    opt_D.step(); g_loss.backward(): G's gradients would be computed with D's new weights.
    As PyTorch does with version counters, that is an error naming the shape and op."""
    from tinygen.nn import functional as F
    G, D = _tiny_gan()
    opt_D = getattr(tg.optim, opt)(D.parameters(), lr=0.1)
    z = tg.randn(4, 2)
    logits = D(G(z))
    d_loss = F.binary_cross_entropy_with_logits(logits, tg.zeros(4, 1))
    g_loss = F.binary_cross_entropy_with_logits(logits, tg.ones(4, 1))
    d_loss.backward(retain_graph=True)
    opt_D.step()
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation.*shape \(8, 1\)"
                                           r".*MatMul"):
        g_loss.backward()


def test_backward_before_the_step_gives_the_same_gradients_as_a_fresh_pass():
    """The right order works, and the version check changes no gradient."""
    from tinygen.nn import functional as F
    G, D = _tiny_gan()
    z = tg.randn(4, 2)
    logits = D(G(z))
    g_loss = F.binary_cross_entropy_with_logits(logits, tg.ones(4, 1))
    g_loss.backward()
    first = [p.grad.numpy().copy() for p in G.parameters()]
    G.zero_grad()
    F.binary_cross_entropy_with_logits(D(G(z)), tg.ones(4, 1)).backward()
    for a, p in zip(first, G.parameters()):
        np.testing.assert_array_equal(a, p.grad.numpy())


def test_a_step_on_weights_the_backward_does_not_read_is_allowed():
    """As in PyTorch: a first layer's weight gradient reads only the input (which needs no
    gradient), so changing the weight before backward is no error, and the gradient is
    the one of the forward pass."""
    lin = tg.nn.Linear(3, 2)
    x = tg.randn(5, 3)
    loss = lin(x).sum()
    opt = tg.optim.SGD(lin.parameters(), lr=0.5)
    lin.weight.grad = tg.ones(2, 3)
    lin.bias.grad = tg.ones(2)
    opt.step()
    lin.zero_grad()
    loss.backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.ones((2, 1)) * x.numpy().sum(0),
                               rtol=1e-6)


@pytest.mark.parametrize("write", ["ema_copy_to", "ema_restore", "load_state_dict", "init"])
def test_every_in_place_write_of_the_library_is_seen(write):
    """EMA copies, state dict loads and init functions bump the version of what they
    write, so a graph that saved the old values refuses backward."""
    from tinygen.nn import init
    lin = tg.nn.Linear(3, 3)
    x = tg.randn(2, 3, requires_grad=True)
    ema = tg.optim.EMA(lin.parameters(), decay=0.5)
    if write == "ema_restore":
        ema.store()
    loss = (lin(tg.tanh(x)) ** 2).sum()
    if write == "ema_copy_to":
        ema.copy_to()
    elif write == "ema_restore":
        ema.restore()
    elif write == "load_state_dict":
        lin.load_state_dict({k: v.numpy() + 1 for k, v in lin.state_dict().items()})
    else:
        init.normal_(lin.weight)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_running_statistics_and_counters_are_marked_modified():
    """Batch norm's running estimates and batch counter, the VQ-VAE codebook's moving
    averages: each write bumps the version (a graph that saved them would refuse)."""
    from tinygen.models.vae.quantizer import VectorQuantizer
    bn = tg.nn.BatchNorm1d(3)
    before = [bn.running_mean._version, bn.running_var._version,
              bn.num_batches_tracked._version]
    bn(tg.randn(4, 3))
    after = [bn.running_mean._version, bn.running_var._version,
             bn.num_batches_tracked._version]
    assert all(a > b for a, b in zip(after, before))
    vq = VectorQuantizer(4, 2, codebook_update="ema", dead_code_threshold=10.0)
    z = tg.randn(2, 2, 3, 3)
    k = vq(z).k
    v0 = [vq.embedding._version, vq.ema_sum._version, vq.ema_count._version]
    vq.ema_update(z, k)
    v1 = [vq.embedding._version, vq.ema_sum._version, vq.ema_count._version]
    assert all(b > a for a, b in zip(v0, v1))
    vq.restart_dead_codes(z)
    v2 = [vq.embedding._version, vq.ema_sum._version, vq.ema_count._version]
    assert all(b > a for a, b in zip(v1, v2))
    emb = vq.embedding[0:2]  # a view: shares the codebook's version counter
    x = tg.randn(2, 2, requires_grad=True)
    loss = (x * emb).sum()  # emb saved by the product (x wants a gradient)
    vq.ema_update(z, k)
    with pytest.raises(RuntimeError, match=r"shape \(2, 2\) saved by Mul"):
        loss.backward()


def test_version_counts_each_in_place_write_and_views_share_it():
    w = tg.nn.Parameter(tg.ones(2, 3))
    v = w.mT
    y = w.detach()
    assert w._version == 0
    tg.autograd.mark_modified(w)
    first = w._version
    tg.autograd.mark_modified(y)  # through the detached view: the base's version moves
    assert 0 < first < w._version and v._base is w and y._base is w


# --------------------------------------------------------------------------- edge values

def test_iterating_a_0d_tensor_is_an_error_as_len_is():
    with pytest.raises(TypeError, match="0-d"):
        list(tg.tensor(3.0))
    with pytest.raises(TypeError, match="0-d"):
        len(tg.tensor(3.0))
    assert [float(v) for v in tg.tensor([1.0, 2.0])] == [1.0, 2.0]


def test_x_to_the_power_0_has_gradient_zero_not_unused():
    x = tg.tensor([0.0, 2.0, -1.5, np.inf], requires_grad=True)
    (g,) = tg.grad((x ** 0).sum(), x)
    np.testing.assert_array_equal(g.numpy(), [0, 0, 0, 0])


def test_pow_gradient_in_the_exponent_at_a_zero_base_is_the_limit():
    """d a^b / db = a^b log a -> 0 as a -> 0 for b > 0 (0 * -inf = nan otherwise)."""
    a = tg.tensor([0.0, 2.0, 0.0])
    b = tg.tensor([1.0, 1.0, 2.5], requires_grad=True)
    (g,) = tg.grad((a ** b).sum(), b)
    np.testing.assert_allclose(g.numpy(), [0.0, 2 * math.log(2), 0.0], rtol=1e-6)
    # and d/da at b = 0, a = 0: a^0 = 1 for every a, so 0 (not 0 * 0^-1 = nan)
    a = tg.tensor([0.0, 3.0], requires_grad=True)
    (ga,) = tg.grad((a ** tg.tensor([0.0, 0.0])).sum(), a)
    np.testing.assert_array_equal(ga.numpy(), [0.0, 0.0])


def test_division_gradient_survives_a_denominator_whose_square_underflows():
    """-g a / b^2 with b = 1e-25 in float32: b^2 = 0; -g y / b is exact."""
    a = tg.tensor([np.float32(1e-30), 0.0], requires_grad=True)
    b = tg.tensor([np.float32(1e-25), np.float32(1e-25)], requires_grad=True)
    _, gb = tg.grad((a / b).sum(), [a, b])
    np.testing.assert_allclose(gb.numpy(), [-1e-30 / 1e-50, 0.0], rtol=1e-5)
