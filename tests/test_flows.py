"""tinygen.models.flows: the change of variables, proven without training.

- every layer and every whole flow is a bijection: inverse(forward(x)) == x and
  forward(inverse(z)) == z, on inputs drawn by hypothesis (float64);
- every log-determinant equals log |det J| of the brute-force Jacobian, built with the
  engine's own gradients (one backward pass per output), on 2-D points and on 1x4x4 (or
  2x4x4) images, layer by layer and for small whole flows;
- ActNorm after its data-dependent initialisation gives zero mean and unit variance per
  channel; the LU-parameterised 1x1 convolution's log-det is H W sum log |s| and equals
  H W log |det W| by slogdet; the LU decomposition reproduces its matrix;
- on a 2-D grid, exp(log p) of a random flow integrates to 1;
- a small RealNVP on two_moons learns (a stated test log-likelihood in a few hundred steps).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from conftest import DEVICES
from tinygen.models.flows import (NICE, ActNorm, ChannelCoupling, CouplingConvNet,
                                  CouplingMLP, FactorOut, Flatten, Glow, InvertibleConv1x1,
                                  LogitTransform, MaskedCoupling, RealNVP, Reverse, Scale,
                                  SequentialFlow, Squeeze, alternating_mask, checkerboard_mask)
from tinygen.models.flows.layers import _lu_decompose


def to_float64(module):
    """Cast a module's parameters and buffers to float64, in place."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    for _, b in module.named_buffers():
        if b.data.dtype.kind == "f":
            b.data = b.data.astype(np.float64)
    return module


def randomize(module, scale=0.3, seed=0):
    """Random non-zero weights everywhere (the couplings' last layers start at zero,
    which would make every coupling the identity and every test of it trivial)."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data = (p.data + scale * rng.standard_normal(p.shape)).astype(p.data.dtype)
    return module


def brute_force_log_det(f, x):
    """log |det df/dx| of one example x (1, *shape), from the Jacobian built row by row
    with tg.grad: row i is the gradient of the i-th output."""
    x = tg.tensor(x.numpy(), requires_grad=True)
    y, _ = f(x)
    y = y.reshape(-1)
    rows = [tg.grad(y[i], x, retain_graph=True)[0].numpy().ravel() for i in range(y.shape[0])]
    sign, log_abs = np.linalg.slogdet(np.stack(rows))
    assert sign != 0
    return log_abs


def check_bijection(flow, x, atol=1e-9):
    y, log_det = flow(x)
    assert log_det.shape == (x.shape[0],)
    np.testing.assert_allclose(flow.inverse(y).numpy(), x.numpy(), atol=atol, rtol=0)
    np.testing.assert_allclose(flow(flow.inverse(y))[0].numpy(), y.numpy(), atol=atol, rtol=0)
    return y, log_det


def check_log_det(flow, x, rtol=1e-7, atol=1e-8):
    _, log_det = flow(x)
    for i in range(x.shape[0]):
        expected = brute_force_log_det(flow, x[i:i + 1])
        np.testing.assert_allclose(log_det.numpy()[i], expected, rtol=rtol, atol=atol)


# ---- every layer, on images and on vectors
IMAGE = (2, 4, 4)


def image_layers():
    c = IMAGE[0]
    return {
        "squeeze": Squeeze(),
        "actnorm": ActNorm(c),
        "conv1x1_lu": InvertibleConv1x1(c, lu=True, seed=1),
        "conv1x1_free": InvertibleConv1x1(c, lu=False, seed=2),
        "checkerboard_affine": MaskedCoupling(checkerboard_mask(IMAGE, 1),
                                              CouplingConvNet(c, c, 8), "tanh"),
        "checkerboard_additive": MaskedCoupling(checkerboard_mask(IMAGE, 0),
                                                CouplingConvNet(c, c, 8), "additive"),
        "channel_sigmoid": ChannelCoupling(c, CouplingConvNet(c // 2, c // 2, 8), "sigmoid"),
        "channel_tanh": ChannelCoupling(c, CouplingConvNet(c // 2, c // 2, 8), "tanh"),
        "logit": LogitTransform(0.05),
        "reverse": Reverse(),
        "factor_out": FactorOut(IMAGE, 1, SequentialFlow(
            MaskedCoupling(checkerboard_mask((1, 4, 4)), CouplingConvNet(1, 1, 4), "tanh"),
            Flatten((1, 4, 4)))),
    }


def vector_layers(d=4):
    return {
        "alternating_affine": MaskedCoupling(alternating_mask(d, 1), CouplingMLP(d, d, 8), "tanh"),
        "alternating_additive": MaskedCoupling(alternating_mask(d), CouplingMLP(d, d, 8),
                                               "additive"),
        "channel_mlp": ChannelCoupling(d, CouplingMLP(d // 2, d // 2, 8), "sigmoid"),
        "actnorm": ActNorm(d),
        "conv1x1": InvertibleConv1x1(d, seed=3),
        "scale": Scale(d),
        "reverse": Reverse(),
    }


def prepared(layer, x):
    """float64, random weights, and ActNorm initialised on a batch other than x."""
    to_float64(randomize(layer))
    layer.train()
    layer(x.flip(0) * 0.9 + 0.05)   # data-dependent initialisation, on other data (kept
    # inside [0, 1] for the logit transform)
    layer.eval()
    return layer


image_inputs = hnp.arrays(np.float64, (2,) + IMAGE, elements=st.floats(0.02, 0.98))
vector_inputs = hnp.arrays(np.float64, (3, 4), elements=st.floats(-3, 3))


@pytest.mark.parametrize("name", list(image_layers()))
@settings(max_examples=4)
@given(x=image_inputs)
def test_image_layer_is_a_bijection_with_the_right_log_det(name, x):
    x = tg.tensor(x)
    layer = prepared(image_layers()[name], x)
    check_bijection(layer, x)
    check_log_det(layer, x)


@pytest.mark.parametrize("name", list(vector_layers()))
@settings(max_examples=6)
@given(x=vector_inputs)
def test_vector_layer_is_a_bijection_with_the_right_log_det(name, x):
    x = tg.tensor(x)
    layer = prepared(vector_layers()[name], x)
    check_bijection(layer, x)
    check_log_det(layer, x)


def test_couplings_start_as_the_identity():
    """Zero-initialised last layers: a fresh coupling changes nothing (Glow, section 3.3)."""
    x = tg.randn(3, *IMAGE)
    for layer in (MaskedCoupling(checkerboard_mask(IMAGE), CouplingConvNet(2, 2, 8)),
                  ChannelCoupling(2, CouplingConvNet(1, 1, 8), "tanh")):
        y, log_det = layer(x)
        np.testing.assert_array_equal(y.numpy(), x.numpy())
        np.testing.assert_array_equal(log_det.numpy(), 0)


# ---- whole flows
def whole_flows():
    return {
        "nice_image": NICE((1, 4, 4), num_couplings=4, hidden=16, num_layers=2, logit_alpha=0.05),
        "realnvp_image": RealNVP((1, 4, 4), num_scales=1, hidden=8, num_layers=2),
        "glow_image": Glow((1, 4, 4), num_levels=2, steps=2, hidden=8),
        "glow_image_slogdet": Glow((1, 4, 4), num_levels=1, steps=2, hidden=8, lu=False),
        "realnvp_points": RealNVP((2,), num_couplings=4, hidden=16),
        "glow_points": Glow((2,), steps=3, hidden=16),
        "nice_points": NICE((2,), num_couplings=4, hidden=16, num_layers=2),
    }


@pytest.mark.parametrize("name", list(whole_flows()))
def test_whole_flow_is_a_bijection_with_the_right_log_det(name):
    model = whole_flows()[name]
    shape = model.event_shape
    rng = np.random.default_rng(5)
    x = tg.tensor(rng.uniform(0.05, 0.95, (3,) + shape) if len(shape) > 1
                  else rng.standard_normal((3,) + shape))
    prepared(model.flow, x)
    z, _ = check_bijection(model.flow, x, atol=1e-8)
    assert z.shape == (3,) + model.latent_shape
    check_log_det(model.flow, x, rtol=1e-6)
    # log p(x) is the change of variables: log N(z; 0, I) + log |det|
    lp = model.log_prob(x).numpy()
    z, ld = model(x)
    np.testing.assert_allclose(lp, -0.5 * (z.numpy() ** 2).sum(1) - 0.5 * z.shape[1]
                               * math.log(2 * math.pi) + ld.numpy(), rtol=1e-12)


def test_squeeze_moves_each_2x2_block_into_channels():
    x = np.arange(2 * 4 * 4, dtype=np.float64).reshape(1, 2, 4, 4)
    y, _ = Squeeze()(tg.tensor(x))
    assert y.shape == (1, 8, 2, 2)
    # the block at rows 2..3, columns 0..1 of channel 1 is at (1, 0) of channels 4..7
    np.testing.assert_array_equal(y.numpy()[0, 4:8, 1, 0], x[0, 1, 2:4, 0:2].ravel())


def test_actnorm_initialization_standardizes_the_first_batch():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.normal(3.0, 5.0, (16, 3, 4, 4)))
    layer = to_float64(ActNorm(3))
    y, log_det = layer(x)
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.numpy().std(axis=(0, 2, 3)), 1, atol=1e-6)
    np.testing.assert_allclose(log_det.numpy(), 16 * layer.log_scale.numpy().sum())
    # the initialisation happens once: a second batch leaves the parameters alone
    before = layer.bias.numpy().copy()
    layer(x * 2)
    np.testing.assert_array_equal(layer.bias.numpy(), before)


def test_actnorm_is_not_initialised_again_from_a_checkpoint():
    layer = ActNorm(2)
    layer(tg.randn(8, 2) * 4 + 1)
    fresh = ActNorm(2)
    fresh.load_state_dict(layer.state_dict())
    fresh(tg.randn(8, 2))
    np.testing.assert_array_equal(fresh.bias.numpy(), layer.bias.numpy())


@pytest.mark.parametrize("c", [1, 2, 3, 6])
def test_lu_conv_log_det_is_hw_sum_log_s(c):
    layer = to_float64(randomize(InvertibleConv1x1(c, lu=True, seed=c)))
    x = tg.randn(2, c, 3, 5, dtype=np.float64)
    _, log_det = layer(x)
    s = layer.sign_s.numpy() * np.exp(layer.log_abs_s.numpy())
    np.testing.assert_allclose(log_det.numpy(), 15 * np.log(np.abs(s)).sum(), rtol=1e-12)
    np.testing.assert_allclose(log_det.numpy(), 15 * np.linalg.slogdet(layer.matrix().numpy())[1],
                               rtol=1e-9, atol=1e-9)
    # and it is the convolution with W: y[:, :, i, j] = W x[:, :, i, j]
    y, _ = layer(x)
    w = layer.matrix().numpy()
    np.testing.assert_allclose(y.numpy(), np.einsum("oc,nchw->nohw", w, x.numpy()), atol=1e-12)


@given(hnp.arrays(np.float64, st.integers(1, 6).map(lambda n: (n, n)),
                  elements=st.floats(-3, 3)).filter(lambda a: abs(np.linalg.det(a)) > 1e-3))
def test_lu_decomposition_reproduces_the_matrix(w):
    p, lower, upper = _lu_decompose(w)
    np.testing.assert_allclose(p @ lower @ upper, w, atol=1e-9)
    np.testing.assert_array_equal(np.diag(lower), 1)
    np.testing.assert_array_equal(np.triu(lower, 1), 0)
    np.testing.assert_array_equal(np.tril(upper, -1), 0)
    assert np.all(np.abs(np.tril(lower, -1)) <= 1 + 1e-12)   # partial pivoting


def test_initial_1x1_conv_is_a_rotation():
    w = InvertibleConv1x1(5, seed=0).matrix().numpy().astype(np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-5)


def test_logit_transform_log_det_written_out():
    x = np.array([[0.1, 0.5, 0.99]])
    _, log_det = LogitTransform(0.05)(tg.tensor(x))
    s = 0.05 + 0.9 * x
    np.testing.assert_allclose(log_det.numpy(), np.log(0.9 / (s * (1 - s))).sum(), rtol=1e-12)


# ---- a density that integrates to 1
@pytest.mark.parametrize("make", [lambda: RealNVP((2,), num_couplings=4, hidden=16),
                                  lambda: Glow((2,), steps=3, hidden=16),
                                  lambda: NICE((2,), num_couplings=4, hidden=16, num_layers=2)],
                         ids=["realnvp", "glow", "nice"])
def test_random_flow_density_integrates_to_one(make):
    """A random (untrained, non-trivial) flow's density on [-30, 30]^2, by the midpoint rule
    on a 1200 x 1200 grid (cell 0.05): 1 within 1e-3 (the density is smooth; the mass
    outside the square is below 1e-6 for these densities)."""
    model = make()
    to_float64(randomize(model, scale=0.2))
    model.eval()
    h = 0.05   # random flows spread: [-8, 8]^2 missed 3% of the mass, [-16, 16]^2 0.06%
    g = np.arange(-30 + h / 2, 30, h)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    with tg.no_grad():
        p = np.exp(model.log_prob(tg.tensor(pts)).numpy())
    assert abs(p.sum() * h * h - 1) < 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_glow_runs_on_every_device(device):
    model = Glow((1, 4, 4), num_levels=2, steps=1, hidden=4).to(device)
    x = tg.tensor(np.random.default_rng(0).uniform(0.1, 0.9, (2, 1, 4, 4)).astype(np.float32),
                  device=device)
    lp = model.log_prob(x)
    lp.mean().backward()
    assert lp.device == device and np.isfinite(lp.numpy()).all()
    np.testing.assert_allclose(model.flow.inverse(model(x)[0]).numpy(), x.numpy(), atol=1e-4)
    assert model.sample(3, 0.7).shape == (3, 1, 4, 4)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="even"):
        Squeeze()(tg.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(0.6)
    with pytest.raises(ValueError, match="num_factored"):
        FactorOut((2, 4, 4), 2, Flatten((0, 4, 4)))
    with pytest.raises(ValueError, match="scale must be one of"):
        ChannelCoupling(2, CouplingMLP(1, 1), "exp")
    with pytest.raises(ValueError, match="temperature"):
        RealNVP((2,)).sample(3, temperature=-1)
    with pytest.raises(ValueError, match=r"\(N, 1, 4, 4\)|got shape"):
        RealNVP((1, 4, 4), num_scales=1).log_prob(tg.zeros(2, 1, 5, 4))
    with pytest.raises(TypeError, match="Flow"):
        SequentialFlow(tg.nn.Linear(2, 2))


# ---- learning
def test_realnvp_learns_two_moons():
    """300 Adam steps of a small RealNVP on two_moons: the test NLL must fall below
    2.7 nats, which no Gaussian can reach (the best Gaussian, the data's own mean and
    covariance, has 3.30 nats: the entropy of N(mu, Sigma)); the floor, the data's
    entropy, is 2.39 (tinygen.data.toy_entropy). Measured: 2.54."""
    from tinygen import data
    from tinygen.optim import Adam
    tg.manual_seed(0)
    model = RealNVP((2,), num_couplings=6, hidden=64)
    opt = Adam(model.parameters(), lr=3e-3)
    train = data.toy("two_moons", 20000, seed=0)
    test = tg.tensor(data.toy("two_moons", 2000, seed=1))
    rng = np.random.default_rng(0)
    for _ in range(300):
        x = tg.tensor(train[rng.integers(0, len(train), 256)])
        loss = -model.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with tg.no_grad():
        nll = -model.log_prob(test).mean().item()
    assert nll < 2.7, nll


@pytest.mark.parametrize("make", [
    lambda: NICE((1, 1, 2), num_couplings=2, hidden=8, num_layers=1, logit_alpha=0.05),
    lambda: RealNVP((1, 1, 2), num_scales=0, hidden=8, logit_alpha=0.05)],
    ids=["nice", "realnvp"])
def test_image_flow_with_the_logit_transform_integrates_to_the_mass_it_keeps(make):
    """Two-pixel "images" through the logit transform. x in [0, 1] maps onto y in the box
    [logit(alpha), logit(1 - alpha)]^2 only, so the density of x integrates not to 1 but
    to Z = the flow's probability of that box (RealNVP's pre-processing makes a
    sub-normalised density: the reported NLL is an upper bound). Checked both ways:
    the integral over [0, 1]^2 (midpoint rule, 400 x 400 cells; the logit's Jacobian is
    at most 0.9 / (0.05 0.95) = 19, so the integrand is smooth) equals the fraction of
    200,000 samples of y that land in the box, within 4 standard errors. A missing
    log-determinant of the logit transform breaks it."""
    model = make()
    to_float64(randomize(model, scale=0.2))
    model.eval()
    h = 1 / 400
    g = np.arange(h / 2, 1, h)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1).reshape(-1, 1, 1, 2)
    logit, *rest = model.flow.layers
    assert isinstance(logit, LogitTransform)
    with tg.no_grad():
        integral = np.exp(model.log_prob(tg.tensor(pts)).numpy()).sum() * h * h
        y = tg.randn(200_000, 2, dtype=np.float64)
        for layer in reversed(rest):
            y = layer.inverse(y)
    edge = math.log(0.95 / 0.05)
    inside = (np.abs(y.numpy().reshape(-1, 2)) < edge).all(axis=1)
    z, se = inside.mean(), inside.std() / math.sqrt(inside.size)
    assert 0.5 < z < 0.999   # some mass is lost: the test is not one of 1 = 1
    assert abs(integral - z) < 4 * se + 1e-3, (integral, z, se)


@pytest.mark.parametrize("make", [lambda: RealNVP((1, 28, 28), hidden=4),
                                  lambda: Glow((1, 28, 28), steps=1, hidden=4)],
                         ids=["realnvp", "glow"])
def test_digit_sized_flows_map_784_pixels_to_784_latents_and_back(make):
    """The multi-scale shapes at 28 x 28 (28 -> 14 -> 7), without data files."""
    model = to_float64(make())
    x = tg.tensor(np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28)) / 256 + 1 / 512)
    z, log_det = model(x)
    assert z.shape == (2, 784) and log_det.shape == (2,)
    np.testing.assert_allclose(model.flow.inverse(z).numpy(), x.numpy(), atol=1e-9)


def test_temperature_scales_the_latent():
    """sample(n, T) is f^{-1}(T z): at T = 0 every sample is f^{-1}(0), and for a flow that
    starts as the identity (NICE: zero-initialised couplings, scale exp(0)) the samples'
    spread is T."""
    model = NICE((2,), num_couplings=2, hidden=8, num_layers=1)
    x0 = model.sample(3, temperature=0.0).numpy()
    np.testing.assert_array_equal(x0, model.flow.inverse(tg.zeros(3, 2)).numpy())
    for t in (0.5, 2.0):
        std = model.sample(20000, temperature=t).numpy().std(axis=0)
        np.testing.assert_allclose(std, t, rtol=0.03)


def test_actnorm_refuses_to_initialise_from_one_value_per_channel():
    """One value per channel has no spread: log_scale would be -log(eps) = 13.8."""
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        ActNorm(2)(tg.randn(1, 2))
    ActNorm(2)(tg.randn(1, 2, 2, 2))   # one image, four pixels per channel: fine


def test_logit_transform_is_accurate_in_float32_near_one():
    """1 - s for s near 1 cancels the digits s was rounded to; the layer computes it as
    alpha + (1 - 2 alpha)(1 - x) instead. alpha = 1e-6 (MAF's), x = 1: y = logit(1 - 1e-6)."""
    layer = LogitTransform(1e-6)
    y, log_det = layer(tg.tensor(np.array([[1.0, 1.0, 1.0]], np.float32)))
    exact = math.log((1 - 1e-6) / 1e-6)
    np.testing.assert_allclose(y.numpy(), exact, rtol=1e-6)
    exact_ld = 3 * (math.log(1 - 2e-6) - math.log(1 - 1e-6) - math.log(1e-6))
    np.testing.assert_allclose(log_det.numpy(), exact_ld, rtol=1e-6)
