"""The math of the autoregressive models (tinygen/models/autoregressive), independent of
training: causal masks, a strictly triangular Jacobian in raster order, likelihoods that
sum to one over every image of a tiny size, sampling and completion that follow the model,
the PixelCNN's blind spot and the gated PixelCNN without it, NADE's recurrence against its
definition. Plus a small learning test."""
import itertools

import numpy as np
import pytest

import tinygen as tg
from tinygen import optim
from tinygen.models.autoregressive import (NADE, GatedPixelCNN, MaskedConv2d, PixelCNN,
                                           causal_mask)


def as_float64(model):
    """The model with every parameter and buffer in float64 (for exact sums and
    gradients)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data.dtype == np.float32:
            t.data = t.data.astype(np.float64)
    return model


def randomise(model, scale=0.5, seed=0):
    """Larger random weights than the initialisation: conditionals far from 1/2, so that
    a wrong normalisation shows."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = (rng.normal(0, scale, p.shape)).astype(p.data.dtype)
    for m in model.modules():
        if isinstance(m, MaskedConv2d):   # keep masked taps at 0, as built
            m.weight.data = m.weight.data * m.mask.data[0, 0]
    return model


def binary_models(size, seed=0, scale=1.0):
    """Small random models of binary size x size images, float64. ``scale`` sets the
    spread of the conditionals: 1.0 takes the PixelCNNs' logits into the hundreds
    (some images of a tiny size get almost all the mass, which the normalisation tests
    want: far from uniform); about 0.35 keeps them spread over the images, which the
    sampling tests need (a sampler that ignores its random numbers must fail them)."""
    tg.manual_seed(seed)
    return {
        "pixelcnn": as_float64(randomise(PixelCNN(size, channels=6, num_blocks=2,
                                                  first_kernel_size=3, hidden_output=5),
                                         scale=scale, seed=seed)),
        "gated": as_float64(randomise(GatedPixelCNN(size, channels=4, num_layers=3,
                                                    hidden_output=5), scale=scale, seed=seed)),
        "nade": as_float64(randomise(NADE(size, hidden=7), scale=1.0, seed=seed)),
    }


def all_binary_images(size):
    bits = np.array(list(itertools.product([0.0, 1.0], repeat=size * size)))
    return bits.reshape(-1, 1, size, size)


# ---- masks
def test_causal_masks_of_a_3x3_kernel():
    assert causal_mask(3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert causal_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert causal_mask(1, "A").tolist() == [[0]]
    assert causal_mask(5, "B").sum() == 2 * 5 + 3


def test_masked_weights_get_no_gradient_and_stay_zero():
    conv = MaskedConv2d(2, 3, 3, "A")
    x = tg.randn(2, 2, 5, 5)
    conv(x).sum().backward()
    blocked = conv.mask.data[0, 0] == 0
    assert (conv.weight.grad.numpy()[:, :, blocked] == 0).all()
    assert (conv.weight.data[:, :, blocked] == 0).all()
    assert (np.abs(conv.weight.grad.numpy()[:, :, ~blocked]) > 0).any()


# ---- the Jacobian of the logits is strictly lower-triangular in raster order
def jacobian(model, x):
    """d logits_i / d x_j for every pair of raster positions: (D, D) float64."""
    D = x[0].size
    rows = []
    for i in range(D):
        xt = tg.tensor(x, requires_grad=True)
        out = model(xt).reshape(1, D)
        out[0, i].backward()
        rows.append(xt.grad.numpy().reshape(D))
    return np.array(rows)


@pytest.mark.parametrize("name", ["pixelcnn", "gated", "nade"])
def test_logits_depend_only_on_earlier_pixels(name):
    model = binary_models(5, scale=0.35)[name]
    x = np.random.default_rng(1).random((1, 1, 5, 5))
    J = jacobian(model, x)
    assert np.abs(np.triu(J)).max() == 0          # no pixel sees itself or a later one
    # and every pixel sees its left neighbour (the masks are not all zero)
    left = np.diag(J, k=-1).reshape(-1)[[i - 1 for i in range(1, 25) if i % 5]]
    assert (np.abs(left) > 1e-12).all()


def test_the_pixelcnn_has_a_blind_spot_and_the_gated_one_has_none():
    """van den Oord et al. 2016b, figure 1: the gradient of output (5, 4) of a 9 x 9
    image over the input. The plain PixelCNN (3 x 3 masks) never sees (4, 6), two
    columns right in the row above, although it sees (3, 6) behind it; the gated
    PixelCNN sees every earlier pixel of the window rows 3-4 x columns 2-6 and row 5
    columns 2-3, and nothing at or after (5, 4)."""
    tg.manual_seed(0)
    plain = as_float64(randomise(PixelCNN(9, channels=6, num_blocks=3, first_kernel_size=3,
                                          hidden_output=5)))
    gated = as_float64(randomise(GatedPixelCNN(9, channels=4, num_layers=3, hidden_output=5)))
    x = np.random.default_rng(0).random((1, 1, 9, 9))

    def seen(model):
        xt = tg.tensor(x, requires_grad=True)
        model(xt)[0, 0, 5, 4].backward()
        return np.abs(xt.grad.numpy()[0, 0]) > 0

    s = seen(plain)
    assert not s[4, 6] and not s[4, 7] and s[3, 6] and s[4, 5]
    g = seen(gated)
    assert g[3:5, 2:7].all() and g[5, 2:4].all()
    assert not g[5, 4:].any() and not g[6:].any()
    # the blind pixels of the plain network are all seen by the gated one
    window = np.zeros_like(s)
    window[3:5, 2:7] = True
    assert (window & ~s).any() and not (window & ~g).any()


# ---- the likelihood is normalised
@pytest.mark.parametrize("name", ["pixelcnn", "gated", "nade"])
def test_probabilities_of_all_3x3_binary_images_sum_to_one(name):
    model = binary_models(3)[name]
    log_p = model.log_prob(tg.tensor(all_binary_images(3))).numpy()   # 512 images
    assert log_p.shape == (512,)
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-10)
    assert log_p.std() > 0.5      # far from uniform: a wrong normalisation would show


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
def test_probabilities_of_all_k_valued_grids_sum_to_one(cls):
    tg.manual_seed(0)
    kwargs = dict(channels=6, num_blocks=2, first_kernel_size=3) if cls is PixelCNN \
        else dict(channels=4, num_layers=2)
    model = as_float64(randomise(cls((2, 2), num_classes=3, hidden_output=5, **kwargs)))
    grids = np.array(list(itertools.product(range(3), repeat=4)), dtype=np.int64)
    log_p = model.log_prob(tg.tensor(grids.reshape(-1, 2, 2))).numpy()   # 81 grids
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-10)


def test_log_prob_is_the_sum_of_the_conditionals_log_probabilities():
    """Eq. (1) of base.py written out for one image: sum over pixels of
    log sigmoid(l) or log(1 - sigmoid(l))."""
    model = binary_models(3, scale=0.35)["pixelcnn"]
    x = all_binary_images(3)[[5, 300]]
    logits = model(tg.tensor(x)).numpy()
    # log sigmoid(l) = -log(1 + e^-l), log(1 - sigmoid(l)) = -log(1 + e^l)
    expected = -np.logaddexp(0, np.where(x == 1, -logits, logits)).reshape(2, -1).sum(axis=1)
    assert model.log_prob(tg.tensor(x)).numpy() == pytest.approx(expected, abs=1e-12)


# ---- NADE's recurrence is its definition
def test_nade_recurrence_equals_one_network_per_conditional():
    """Eqs. (1)-(3) of nade.py: the O(D H) recurrence gives the logits of D separately
    computed networks h_d = sigm(c + W[:, <d] x_<d), logit_d = b_d + V_d . h_d."""
    nade = binary_models(3)["nade"]
    W, V, b, c = (t.data for t in (nade.W, nade.V, nade.b, nade.c))
    x = all_binary_images(3)[[1, 77, 300, 511]]
    flat = x.reshape(4, 9)
    expected = np.empty((4, 9))
    for d in range(9):
        h = 1 / (1 + np.exp(-(c + flat[:, :d] @ W[:, :d].T)))
        expected[:, d] = b[d] + h @ V[d]
    assert nade(tg.tensor(x)).numpy().reshape(4, 9) == pytest.approx(expected, abs=1e-12)


# ---- sampling follows the model
def frequencies(samples):
    codes = samples.reshape(len(samples), -1) @ (2 ** np.arange(samples[0].size))
    return np.bincount(codes.astype(int), minlength=2 ** samples[0].size) / len(samples)


@pytest.mark.parametrize("name", ["pixelcnn", "gated", "nade"])
def test_sample_frequencies_match_the_model(name):
    model = binary_models(2, seed=3, scale=0.35)[name]
    images = all_binary_images(2)        # code of image k: its bits in raster order
    p = np.exp(model.log_prob(tg.tensor(images)).numpy())
    assert p.max() < 0.5 and (p > 0.01).sum() >= 6   # a spread distribution to sample
    n = 20000
    f = frequencies(model.sample(n).numpy())
    codes = images.reshape(16, 4) @ (2 ** np.arange(4))
    expected = np.zeros(16)
    expected[codes.astype(int)] = p
    assert np.abs(f - expected).max() < 5 * np.sqrt(0.25 / n)


def test_categorical_samples_match_the_model():
    tg.manual_seed(0)
    model = as_float64(randomise(PixelCNN((1, 3), channels=6, num_blocks=1,
                                          first_kernel_size=3, hidden_output=5,
                                          num_classes=3)))
    grids = np.array(list(itertools.product(range(3), repeat=3)), dtype=np.int64)
    p = np.exp(model.log_prob(tg.tensor(grids.reshape(-1, 1, 3))).numpy())
    n = 20000
    s = model.sample(n).numpy().reshape(n, 3)
    assert s.dtype == np.int64
    f = np.bincount(s @ np.array([9, 3, 1]), minlength=27) / n
    assert np.abs(f - p).max() < 5 * np.sqrt(0.25 / n)


@pytest.mark.parametrize("name", ["pixelcnn", "gated", "nade"])
def test_completion_draws_from_the_conditional_given_the_observed_pixels(name):
    """Observe the first row of a 2 x 2 image; the second row must follow
    p(x_3, x_4 | x_1, x_2) = p(x) / sum over the second row, computed by enumeration."""
    model = binary_models(2, seed=5, scale=0.35)[name]
    top = np.array([1.0, 0.0])
    rows = np.array(list(itertools.product([0.0, 1.0], repeat=2)))
    images = np.concatenate([np.broadcast_to(top, (4, 2)), rows], axis=1).reshape(4, 1, 2, 2)
    p = np.exp(model.log_prob(tg.tensor(images)).numpy())
    p /= p.sum()
    assert p.max() < 0.8      # the second row is uncertain given the first
    n = 20000
    x = np.broadcast_to(images[0], (n, 1, 2, 2)).copy()
    observed = np.array([[True, True], [False, False]])
    out = model.sample(n, x=tg.tensor(x), observed=observed).numpy()
    assert (out[:, 0, 0] == top).all()
    f = np.bincount((out[:, 0, 1] @ np.array([2, 1])).astype(int), minlength=4) / n
    assert np.abs(f - p).max() < 5 * np.sqrt(0.25 / n)


# ---- errors
def test_errors_name_the_bad_value():
    model = PixelCNN(4, channels=4, num_blocks=1)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 1, 4, 4\)"):
        model.log_prob(tg.zeros(2, 1, 5, 4))
    with pytest.raises(ValueError, match="must be 0 or 1"):
        model.log_prob(tg.full((2, 1, 4, 4), 0.5))
    codes = PixelCNN(4, channels=4, num_blocks=1, num_classes=3)
    with pytest.raises(ValueError, match=r"integers in \[0, 3\)"):
        codes.log_prob(tg.tensor(np.full((2, 4, 4), 3, dtype=np.int64)))
    with pytest.raises(ValueError, match="odd"):
        causal_mask(4, "A")
    with pytest.raises(ValueError, match="'C'"):
        causal_mask(3, "C")
    with pytest.raises(ValueError, match="channels .* even"):
        PixelCNN(4, channels=5)
    with pytest.raises(ValueError, match="num_classes"):
        GatedPixelCNN(4, num_classes=1)
    with pytest.raises(ValueError, match="together"):
        model.sample(2, x=tg.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="hidden"):
        NADE(4, hidden=0)


# ---- learning
def test_nade_learns_a_two_pattern_distribution():
    """Data: two 3 x 3 patterns, each with probability 1/2 (entropy log 2 = 0.693 nats).
    Untrained, NADE gives about 9 log 2 = 6.2 nats; trained, it must come close to the
    entropy."""
    tg.manual_seed(0)
    a = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=np.float32)
    data = np.stack([a, 1 - a]).reshape(2, 1, 3, 3)
    batch = tg.tensor(np.repeat(data, 32, axis=0))
    model = NADE(3, hidden=16)
    opt = optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        loss = -model.log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < np.log(2) + 0.05


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
def test_pixelcnns_learn_a_two_pattern_distribution(cls):
    tg.manual_seed(0)
    a = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=np.float32)
    data = np.stack([a, 1 - a]).reshape(2, 1, 3, 3)
    batch = tg.tensor(np.repeat(data, 16, axis=0))
    model = cls(3, channels=8, hidden_output=8, **({"num_blocks": 1, "first_kernel_size": 3}
                                                   if cls is PixelCNN else {"num_layers": 2}))
    opt = optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        loss = -model.log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < np.log(2) + 0.05


# ---- devices
@pytest.mark.parametrize("name", ["pixelcnn", "gated", "nade"])
def test_models_run_on_every_device(name, device):
    """log_prob, its gradient and sampling on the device (the CUDA case on the NumPy
    stand-in where CuPy is missing) agree with the CPU."""
    cpu = binary_models(3)[name]
    model = binary_models(3)[name].to(device)
    x = all_binary_images(3)[:7]
    log_p = model.log_prob(tg.tensor(x, device=device))
    assert log_p.device == device
    assert log_p.numpy() == pytest.approx(cpu.log_prob(tg.tensor(x)).numpy(), abs=1e-10)
    log_p.sum().backward()
    assert all(p.grad.device == device for p in model.parameters())
    s = model.sample(4)
    assert s.device == device and s.shape == (4, 1, 3, 3)


def test_per_image_masks_keep_each_images_observed_pixels():
    """Half the batch observes the top row, half observes nothing: each image's observed
    pixels are kept, the others drawn; the first half's second row follows p(row 2 |
    row 1), the second half's images follow p(x)."""
    for name, model in binary_models(2, seed=5, scale=0.35).items():
        n = 4000
        x = np.zeros((2 * n, 1, 2, 2))
        x[:n, 0, 0] = [1.0, 0.0]
        observed = np.zeros((2 * n, 1, 2, 2), dtype=bool)
        observed[:n, 0, 0] = True
        out = model.sample(2 * n, x=tg.tensor(x), observed=observed).numpy()
        assert (out[:n, 0, 0] == [1.0, 0.0]).all(), name
        # the unobserved half: its first row is drawn, so not always (1, 0)
        first = out[n:, 0, 0] @ np.array([2, 1])
        p = np.exp(model.log_prob(tg.tensor(all_binary_images(2))).numpy())
        p_top = np.bincount((all_binary_images(2)[:, 0, 0] @ np.array([2, 1])).astype(int),
                            weights=p, minlength=4)
        f = np.bincount(first.astype(int), minlength=4) / n
        assert np.abs(f - p_top).max() < 5 * np.sqrt(0.25 / n), name


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
def test_k_valued_completion_keeps_the_observed_codes(cls):
    tg.manual_seed(0)
    kwargs = dict(channels=6, num_blocks=1, first_kernel_size=3) if cls is PixelCNN \
        else dict(channels=4, num_layers=2)
    model = cls((2, 3), num_classes=4, hidden_output=5, **kwargs)
    x = np.random.default_rng(0).integers(0, 4, (50, 2, 3))
    observed = np.zeros((50, 2, 3), dtype=bool)
    observed[::2, 0, :] = True           # every other grid: its first row observed
    out = model.sample(50, x=tg.tensor(x), observed=observed).numpy()
    assert out.dtype == np.int64
    assert (out[observed] == x[observed]).all()
    assert (out[1::2, 0] != x[1::2, 0]).any()     # the unobserved rows are drawn


@pytest.mark.parametrize("name", ["pixelcnn", "gated"])
def test_logits_for_a_row_need_only_the_rows_above(name):
    """logits_for_row(x, r) runs the network on rows <= r only, and equals row r of the
    full pass, for every row of a 7 x 6 image."""
    tg.manual_seed(0)
    model = as_float64(randomise(
        PixelCNN((7, 6), channels=6, num_blocks=2, first_kernel_size=5, kernel_size=5,
                 hidden_output=5) if name == "pixelcnn"
        else GatedPixelCNN((7, 6), channels=4, num_layers=3, kernel_size=5, hidden_output=5),
        scale=0.35))
    x = tg.tensor((np.random.default_rng(0).random((3, 1, 7, 6)) < 0.5).astype(np.float64))
    full = model(x).numpy()
    for r in range(7):
        assert model.logits_for_row(x, r).numpy() == pytest.approx(full[..., r, :], abs=1e-12)


def test_one_gated_layer_and_one_residual_block_as_written_in_the_papers():
    """The composition pinned against the papers' equations, written out with the
    engine's conv2d: the gated layer (van den Oord et al. 2016b, figure 2 and eq. 2) and
    the PixelCNN's residual block and output head (van den Oord et al. 2016, figure 5)."""
    from tinygen.models.autoregressive.gated_pixelcnn import GatedLayer
    from tinygen.models.autoregressive.pixelcnn import ResidualBlock
    rng = np.random.default_rng(0)
    conv = tg.conv2d

    def sig(a):
        return 1 / (1 + np.exp(-a))

    layer = as_float64(randomise(GatedLayer(3, 3, kernel_size=3), scale=0.5))
    v, h = (tg.tensor(rng.normal(size=(2, 3, 5, 5))) for _ in range(2))
    v_new, h_new = layer(v, h)
    W = {name: (m.weight, m.bias) for name, m in layer.named_children()}
    v_pre = conv(tg.pad(v, ((0, 0), (0, 0), (1, 0), (1, 1))), *W["vertical"]).numpy()
    h_pre = conv(tg.pad(h, ((0, 0), (0, 0), (0, 0), (1, 0))), *W["horizontal"]).numpy()
    shifted = np.concatenate([np.zeros_like(v_pre[:, :, :1]), v_pre[:, :, :-1]], axis=2)
    h_pre = h_pre + conv(tg.tensor(shifted), *W["vertical_to_horizontal"]).numpy()
    gate = lambda a: np.tanh(a[:, :3]) * sig(a[:, 3:])       # eq. (2)
    expected_h = h.numpy() + conv(tg.tensor(gate(h_pre)), *W["horizontal_out"]).numpy()
    assert v_new.numpy() == pytest.approx(gate(v_pre), abs=1e-12)
    assert h_new.numpy() == pytest.approx(expected_h, abs=1e-12)

    block = as_float64(randomise(ResidualBlock(4), scale=0.5))
    x = tg.tensor(rng.normal(size=(2, 4, 5, 5)))
    relu = lambda a: np.maximum(a, 0)
    y = conv(tg.tensor(relu(x.numpy())), block.reduce.weight, block.reduce.bias).numpy()
    m = block.masked
    y = conv(tg.tensor(relu(y)), m.weight * m.mask, m.bias, padding=1).numpy()
    y = conv(tg.tensor(relu(y)), block.expand.weight, block.expand.bias).numpy()
    assert block(x).numpy() == pytest.approx(x.numpy() + y, abs=1e-12)

    net = as_float64(randomise(PixelCNN(5, channels=4, num_blocks=0, first_kernel_size=3,
                                        hidden_output=3), scale=0.5))
    img = tg.tensor((rng.random((2, 1, 5, 5)) < 0.5).astype(np.float64))
    c = net.input_conv
    y = conv(img * 2.0 - 1.0, c.weight * c.mask, c.bias, padding=1).numpy()
    y = conv(tg.tensor(relu(y)), net.output_hidden.weight, net.output_hidden.bias).numpy()
    y = conv(tg.tensor(relu(y)), net.output.weight, net.output.bias).numpy()
    assert net(img).numpy() == pytest.approx(y, abs=1e-12)


def test_sample_checks_what_it_is_given():
    model = PixelCNN(3, channels=4, num_blocks=1, first_kernel_size=3)
    top = np.zeros((2, 1, 3, 3), dtype=bool)
    top[..., 0, :] = True
    with pytest.raises(ValueError, match="must be 0 or 1"):
        model.sample(2, x=tg.full((2, 1, 3, 3), 0.5), observed=top)
    with pytest.raises(ValueError, match="boolean"):
        model.sample(2, x=tg.zeros(2, 1, 3, 3), observed=top.astype(float))
    with pytest.raises(ValueError, match="does not broadcast"):
        model.sample(2, x=tg.zeros(2, 1, 3, 3), observed=np.ones((3, 3, 2), dtype=bool))
    with pytest.raises(ValueError, match="together"):
        model.sample(2, observed=top)
    codes = PixelCNN(3, channels=4, num_blocks=1, first_kernel_size=3, num_classes=3)
    with pytest.raises(ValueError, match="integers"):
        codes.sample(2, x=tg.zeros(2, 3, 3), observed=np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="first_kernel_size must be at least 3"):
        PixelCNN(3, first_kernel_size=1)
    with pytest.raises(ValueError, match="first_kernel_size must be odd"):
        PixelCNN(3, first_kernel_size=4)
    with pytest.raises(ValueError, match="image_size"):
        GatedPixelCNN((4,))
    with pytest.raises(TypeError, match="cumsum: axis"):
        tg.cumsum(tg.zeros(3), None)
