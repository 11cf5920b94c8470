"""Module, Parameter, the containers, and every layer: shapes, modes, state, errors."""
import math
import re

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn
from tinygen.nn import functional as F


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(8, 2)
        self.register_buffer("calls", tg.zeros(1))

    def forward(self, x):
        self.calls.data += 1
        return self.fc2(self.act(self.fc1(x)))


# --------------------------------------------------------------------------- Module

def test_registration_by_assignment():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight",
                                                    "fc2.bias"]
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in m.named_buffers()] == ["calls"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert len(list(m.modules())) == 4


def test_deleting_attributes():
    m = TwoLayer()
    m.note = "plain"
    del m.note                       # a plain attribute
    assert not hasattr(m, "note")
    del m.fc2                        # a child module
    assert "fc2" not in dict(m.named_children())
    with pytest.raises(AttributeError):
        del m.missing


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2


def test_assigning_before_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
    with pytest.raises(AttributeError, match=re.escape("call super().__init__() first")):
        Broken()


def test_train_eval_and_zero_grad():
    m = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not m[1].training
    m.train()
    m(tg.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_state_dict_round_trip_and_errors():
    a, b = TwoLayer(), TwoLayer()
    # PyTorch's order: a module's own parameters and buffers, then its children's
    assert list(a.state_dict()) == ["calls", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    b.load_state_dict(a.state_dict())
    x = tg.randn(5, 4)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    params_before = [id(p) for p in b.parameters()]
    b.load_state_dict({k: v.numpy() for k, v in a.state_dict().items()})  # arrays work too
    assert [id(p) for p in b.parameters()] == params_before  # loaded in place

    sd = a.state_dict()
    del sd["fc2.bias"]
    with pytest.raises(ValueError, match=r"missing keys: \['fc2.bias'\]"):
        b.load_state_dict(sd)
    sd = a.state_dict()
    sd["extra"] = tg.zeros(1)
    with pytest.raises(ValueError, match="unexpected keys"):
        b.load_state_dict(sd)
    b.load_state_dict(sd, strict=False)
    sd = a.state_dict()
    sd["fc1.weight"] = tg.zeros(8, 5)
    with pytest.raises(ValueError, match=r"fc1.weight: saved shape \(8, 5\), this module's \(8, 4\)"):
        b.load_state_dict(sd)


def test_state_dict_includes_persistent_buffers_only():
    m = nn.Module()
    m.register_buffer("kept", tg.zeros(2))
    m.register_buffer("scratch", tg.zeros(2), persistent=False)
    assert list(m.state_dict()) == ["kept"]


def test_to_moves_parameters_in_place(device):
    m = TwoLayer()
    params = list(m.parameters())
    m.to(device)
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.device == device for p in m.parameters())
    assert m.calls.device == device
    assert m(tg.randn(2, 4, device=device)).device == device


def test_repr_reads_like_pytorch():
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    text = repr(m)
    assert text.startswith("Sequential(\n  (0): Conv2d(1, 4, kernel_size=(3, 3)")
    assert "(3): Linear(in_features=4, out_features=2, bias=True)" in text


def test_sequential_and_modulelist_containers():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    seq = nn.Sequential(*layers)
    assert len(seq[1:]) == 2
    with pytest.raises(TypeError):
        nn.Sequential(nn.Linear(2, 2), "not a module")
    with pytest.raises(TypeError):
        layers.append(3)


# --------------------------------------------------------------------------- layers

@pytest.mark.parametrize("layer, x_shape, y_shape", [
    (lambda: nn.Linear(5, 3), (4, 5), (4, 3)),
    (lambda: nn.Linear(5, 3, bias=False), (2, 7, 5), (2, 7, 3)),
    (lambda: nn.Conv2d(3, 6, 3, stride=2, padding=1), (2, 3, 9, 9), (2, 6, 5, 5)),
    (lambda: nn.Conv2d(4, 8, 3, groups=2, dilation=2, bias=False), (1, 4, 9, 9), (1, 8, 5, 5)),
    (lambda: nn.ConvTranspose2d(6, 3, 4, stride=2, padding=1), (2, 6, 7, 7), (2, 3, 14, 14)),
    (lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1), (1, 4, 5, 5), (1, 2, 12, 12)),
    (lambda: nn.MaxPool2d(2), (2, 3, 8, 8), (2, 3, 4, 4)),
    (lambda: nn.AvgPool2d(3, stride=1, padding=1), (2, 3, 8, 8), (2, 3, 8, 8)),
    (lambda: nn.Upsample(scale_factor=2), (2, 3, 4, 5), (2, 3, 8, 10)),
    (lambda: nn.BatchNorm1d(5), (4, 5), (4, 5)),
    (lambda: nn.BatchNorm1d(5), (4, 5, 3), (4, 5, 3)),
    (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5), (4, 3, 5, 5)),
    (lambda: nn.GroupNorm(2, 4), (3, 4, 5, 5), (3, 4, 5, 5)),
    (lambda: nn.LayerNorm(6), (3, 6), (3, 6)),
    (lambda: nn.LayerNorm((4, 4)), (2, 3, 4, 4), (2, 3, 4, 4)),
    (lambda: nn.Flatten(), (2, 3, 4, 5), (2, 60)),
    (lambda: nn.Unflatten(1, (3, 4, 5)), (2, 60), (2, 3, 4, 5)),
    (lambda: nn.Dropout(0.3), (4, 5), (4, 5)),
    (lambda: nn.Identity(), (4, 5), (4, 5)),
    (lambda: nn.ReLU(), (4, 5), (4, 5)),
    (lambda: nn.LeakyReLU(0.2), (4, 5), (4, 5)),
    (lambda: nn.SiLU(), (4, 5), (4, 5)),
    (lambda: nn.Tanh(), (4, 5), (4, 5)),
    (lambda: nn.Sigmoid(), (4, 5), (4, 5)),
    (lambda: nn.Softplus(2.0), (4, 5), (4, 5)),
    (lambda: nn.ELU(), (4, 5), (4, 5)),
])
def test_layer_shapes_and_gradients(layer, x_shape, y_shape, device):
    m = layer().to(device)
    x = tg.randn(*x_shape, device=device, requires_grad=True)
    y = m(x)
    assert y.shape == y_shape and y.dtype == np.float32 and y.device == device
    y.sum().backward()
    assert x.grad.shape == x_shape
    for p in m.parameters():
        assert p.grad is not None and p.grad.shape == p.shape and p.grad.dtype == np.float32


def test_default_initialisation_matches_pytorch_bounds():
    tg.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    conv = nn.Conv2d(16, 32, 3)
    assert np.abs(conv.weight.numpy()).max() <= 1 / math.sqrt(16 * 9)
    convt = nn.ConvTranspose2d(16, 8, 4)       # fan_in from weight.shape[1] = 8 * 16
    assert np.abs(convt.weight.numpy()).max() <= 1 / math.sqrt(8 * 16)
    assert np.abs(convt.weight.numpy()).max() > 0.95 / math.sqrt(8 * 16)


def test_batchnorm_running_statistics_and_eval():
    tg.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=0.5)
    x = tg.randn(8, 3, 4, 4) * 3.0 + 2.0
    y = bn(x)
    xd = x.numpy()
    mu = xd.mean((0, 2, 3))
    var_unbiased = xd.var((0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * mu, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.5 + 0.5 * var_unbiased, rtol=1e-5)
    np.testing.assert_allclose(y.numpy().mean((0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.numpy().var((0, 2, 3)), 1, atol=1e-3)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    y_eval = bn(x).numpy()
    ref = ((xd - bn.running_mean.numpy().reshape(1, 3, 1, 1))
           / np.sqrt(bn.running_var.numpy().reshape(1, 3, 1, 1) + 1e-5))
    np.testing.assert_allclose(y_eval, ref, rtol=1e-5, atol=1e-5)
    assert bn.num_batches_tracked.item() == 1


def test_norms_match_their_definitions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3, 3))
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    g = F.group_norm(tg.tensor(x), 3, tg.tensor(w), tg.tensor(b)).numpy()
    xg = x.reshape(2, 3, -1)
    ref = ((xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(g, ref * w.reshape(1, 6, 1, 1) + b.reshape(1, 6, 1, 1), atol=1e-12)
    ln = F.layer_norm(tg.tensor(x), (3, 3)).numpy()
    ref = (x - x.mean((2, 3), keepdims=True)) / np.sqrt(x.var((2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln, ref, atol=1e-12)


def test_dropout_keeps_the_expectation_and_is_off_in_eval():
    tg.manual_seed(0)
    d = nn.Dropout(0.25)
    y = d(tg.ones(100_000)).numpy()
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01 and abs(y.mean() - 1) < 0.01
    d.eval()
    np.testing.assert_array_equal(d(tg.ones(10)).numpy(), np.ones(10))


def test_embedding_lookup_and_gradient():
    emb = nn.Embedding(5, 3)
    idx = tg.tensor([[0, 4], [4, 1]])
    out = emb(idx)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.numpy()[0, 1], emb.weight.numpy()[4])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], [1, 1, 0, 0, 2])
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        emb(tg.tensor([5]))


def test_layer_input_errors_are_clear():
    with pytest.raises(ValueError, match=r"Linear\(4, 2\): input's last axis has 3"):
        nn.Linear(4, 2)(tg.zeros(1, 3))
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\)"):
        nn.Conv2d(3, 4, 3)(tg.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="BatchNorm2d"):
        nn.BatchNorm2d(3)(tg.zeros(4, 3))
    with pytest.raises(ValueError, match="groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm1d(3)(tg.zeros(1, 3))


# --------------------------------------------------------------------------- init

def test_init_statistics():
    tg.manual_seed(0)
    w = tg.zeros(500, 400)
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 400)) < 0.002
    nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 500)) < 0.002
    nn.init.xavier_uniform_(w)
    assert abs(w.numpy().std() - math.sqrt(2 / 900)) < 0.002
    nn.init.xavier_normal_(w, gain=nn.init.calculate_gain("tanh"))
    assert abs(w.numpy().std() - 5 / 3 * math.sqrt(2 / 900)) < 0.002
    nn.init.zeros_(w)
    assert not w.numpy().any()
    assert w.dtype == np.float32
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_uniform_(tg.zeros(3))


# --------------------------------------------------------------------------- learning

def test_a_small_network_learns_xor():
    """End to end: layers, losses and backward together fit XOR."""
    tg.manual_seed(0)
    x = tg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = tg.tensor([[0.0], [1.0], [1.0], [0.0]])
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    for _ in range(500):
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        net.zero_grad()
        loss.backward()
        for p in net.parameters():
            p.data -= 0.5 * p.grad.data
    assert loss.item() < 0.05
    np.testing.assert_array_equal(net(x).numpy() > 0, y.numpy() > 0.5)


# --------------------------------------------------------------------------- edges and checks

def test_batchnorm_momentum_none_is_the_cumulative_average():
    """momentum=None: running = the plain average of the batch statistics seen so far
    (as PyTorch, via num_batches_tracked); for every BatchNorm."""
    rng = np.random.default_rng(0)
    for layer, shape in ((nn.BatchNorm1d(3, momentum=None), (8, 3)),
                         (nn.BatchNorm1d(3, momentum=None), (8, 3, 5)),
                         (nn.BatchNorm2d(3, momentum=None), (4, 3, 2, 2))):
        axes = (0,) + tuple(range(2, len(shape)))
        batches = [rng.normal(k, 1 + k, shape).astype(np.float32) for k in range(3)]
        for b in batches:
            layer(tg.tensor(b))
        n = b.size // 3
        np.testing.assert_allclose(layer.running_mean.numpy(),
                                   np.mean([b.mean(axes) for b in batches], 0), rtol=1e-5)
        np.testing.assert_allclose(layer.running_var.numpy(),
                                   np.mean([b.var(axes) * n / (n - 1) for b in batches], 0),
                                   rtol=1e-5)
        assert int(layer.num_batches_tracked.item()) == 3
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\] or None.*1.5"):
        nn.BatchNorm1d(3, momentum=1.5)


@pytest.mark.parametrize("norm", ["layer", "group", "batch", "batch_eval_stats"])
def test_norms_of_nearly_constant_input_have_no_cancellation_error(norm):
    """Constant input of 1e6 / 7 (float32): y = 0, not up to 0.98 from the mean's
    rounding; the gradient is finite, and batch norm's running variance stays 0."""
    x = tg.tensor(np.full((4, 25), 1e6 / 7, np.float32), requires_grad=True)
    if norm == "layer":
        y = F.layer_norm(x, 25)
    elif norm == "group":
        y = F.group_norm(x.reshape(4, 5, 5), 5)
    else:
        bn = nn.BatchNorm1d(25, momentum=1.0)
        y = bn(x)
        np.testing.assert_array_equal(bn.running_var.numpy(), 0)
        np.testing.assert_array_equal(bn.running_mean.numpy(), np.float32(1e6 / 7))
    np.testing.assert_array_equal(y.numpy(), 0)
    (g,) = tg.grad((y * tg.randn(*y.shape)).sum(), x)
    assert np.isfinite(g.numpy()).all()
    # nearly constant: a few units in the last place apart; against float64
    base = np.float32(1e6 / 7)
    a = np.nextafter(np.full((3, 8), base), np.float32(np.inf)).astype(np.float32)
    a[:, ::2] = base
    want = (a - a.astype(np.float64).mean(1, keepdims=True)) / np.sqrt(
        a.astype(np.float64).var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(F.layer_norm(tg.tensor(a), 8).numpy(), want, atol=1e-4)
    # second order (the create_graph path recomputes the variance the same way)
    x = tg.tensor(np.full((2, 6), 1e6 / 7, np.float32), requires_grad=True)
    (g,) = tg.grad((F.layer_norm(x, 6) * tg.randn(2, 6)).sum(), x, create_graph=True)
    (h,) = tg.grad((g * g).sum(), x)
    assert np.isfinite(h.numpy()).all()
    np.testing.assert_array_equal(tg.var(tg.tensor(np.full(25, 1e6 / 7, np.float32))).item(), 0)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Linear(-1, 3), "in_features must be at least 0, got -1"),
    (lambda: nn.Linear(3, 2.5), "out_features must be an integer, got 2.5"),
    (lambda: nn.Embedding(-2, 3), "num_embeddings must be at least 0, got -2"),
    (lambda: nn.Conv2d(0, 4, 3), "in_channels must be at least 1, got 0"),
    (lambda: nn.Conv2d(1, 4, 0), "kernel_size must be at least 1, got 0"),
    (lambda: nn.Conv2d(1, 4, 3, stride=0), "stride must be at least 1, got 0"),
    (lambda: nn.Conv2d(1, 4, 3, padding=-1), "padding must be at least 0, got -1"),
    (lambda: nn.Conv2d(2, 4, 3, groups=0), "groups must be at least 1, got 0"),
    (lambda: nn.ConvTranspose2d(1, 0, 3), "out_channels must be at least 1, got 0"),
    (lambda: nn.ConvTranspose2d(1, 2, 3, output_padding=-1),
     "output_padding must be at least 0, got -1"),
    (lambda: nn.BatchNorm2d(0), "num_features must be at least 1, got 0"),
    (lambda: nn.GroupNorm(0, 4), "num_groups must be at least 1, got 0"),
    (lambda: nn.LayerNorm((4, 0)), "normalized_shape must be at least 1, got 0"),
    (lambda: nn.LayerNorm(4, eps=-1.0), "eps must be a number >= 0"),
    (lambda: nn.MaxPool2d(0), "kernel_size must be at least 1, got 0"),
    (lambda: nn.AvgPool2d(2, stride=0), "stride must be at least 1, got 0"),
])
def test_layer_sizes_are_checked_where_they_enter(make, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        make()


def test_a_linear_layer_with_no_inputs_is_its_bias_as_in_pytorch():
    """Linear(0, n): PyTorch accepts it (y = b); it used to raise ZeroDivisionError."""
    lin = nn.Linear(0, 3)
    y = lin(tg.zeros(2, 0))
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(lin.bias.numpy(), (2, 3)))
