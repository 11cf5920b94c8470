"""tinygen.models.flows.made and .maf: MADE's and MAF's math, proven without training,
then two small learning tests.

- MADE's masks: the path counts through the masks, and the Jacobian of every output
  (every parameter of x_d) with respect to the input, built with the engine's own
  gradients one backward pass per output, are strictly triangular in the ordering m^0,
  for natural and random orderings, K = 1..3 parameters per variable, several mask
  sets; and not trivially zero (each x_d after the first depends on an earlier input);
- the Bernoulli MADE is a normalised distribution: exp(log_prob) sums to 1 over all 2^D
  binary vectors, for one mask set and for the ensemble (an average of probabilities;
  the average of logits is shown NOT to sum to 1 with random orderings);
- MADE.sample draws from exp(log_prob) (a chi-square test on 2^3 cells);
- the Gaussian MADE's log_prob is the sum of its Gaussian conditionals;
- MAF: inverse(forward(x)) == x and forward(inverse(u)) == u; log_det equals
  log |det| of the brute-force Jacobian, per layer and for whole flows with
  permutations and batch norm; exp(log p) integrates to 1 over a 2-D grid;
- learning: a MADE on a binary Markov chain and a MAF on a correlated Gaussian come
  within a stated margin of the data's entropy, their known best.
"""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
from tinygen import optim
from tinygen.distributions import Bernoulli, Independent, Normal
from tinygen.models.flows.base import NormalizingFlow
from tinygen.models.flows.layers import Reverse
from tinygen.models.flows.made import MADE, GaussianMADE, MaskedLinear
from tinygen.models.flows.maf import MAF, BatchNormFlow, MAFLayer, Permute


def to64(module):
    """The module's parameters and floating buffers in float64, in place."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    for b in module.buffers():
        if b.dtype.kind == "f":
            b.data = b.data.astype(np.float64)
    return module


def randomize(module, rng, scale=1.0):
    """Every parameter drawn N(0, scale^2): sharper conditionals than the default
    initialisation, so that wrong math shows clearly."""
    for p in module.parameters():
        p.data = scale * rng.standard_normal(p.shape)
    return module


def jacobian(fn, x_row):
    """d fn(x) / dx at one point x (D,), fn: (1, D) -> (1, M); (M, D), one backward pass
    per output, with tg.grad."""
    x = tg.tensor(np.asarray(x_row, dtype=np.float64)[None], requires_grad=True)
    y = fn(x)
    J = np.zeros((y.shape[1], x.shape[1]))
    for j in range(y.shape[1]):
        (g,) = tg.grad(y[0, j], x, retain_graph=True, allow_unused=True)
        if g is not None:
            J[j] = g.numpy()[0]
    return J


def all_binary(D):
    """All 2^D vectors of {0, 1}^D: (2^D, D) float64."""
    return tg.tensor(np.array(list(itertools.product([0.0, 1.0], repeat=D))))


# --------------------------------------------------------------------------- MADE's masks

def test_masked_linear_masks_the_weight_and_its_gradient():
    layer = to64(MaskedLinear(3, 2))
    mask = np.array([[1, 0, 1], [0, 0, 1]])
    layer.set_mask(mask)
    x = tg.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    expected = x.numpy() @ (layer.weight.numpy() * mask).T + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-12)
    layer(x).sum().backward()
    assert np.all(layer.weight.grad.numpy()[mask == 0] == 0)
    assert "mask" in layer.state_dict()
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    with pytest.raises(ValueError, match=r"mask of shape \(3, 3\), expected \(2, 3\)"):
        layer.set_mask(np.ones((3, 3)))


@pytest.mark.parametrize("D, hidden", [(1, (8,)), (2, ()), (5, (7,)), (6, (3, 20, 9))])
@pytest.mark.parametrize("ordering", ["natural", "random"])
def test_mask_paths_only_from_earlier_variables(D, hidden, ordering):
    """(M^V M^{W^L} ... M^{W^1})[j, e] counts the paths from input e to output j; it must
    be 0 unless m^0(e) < m^0(d), d the variable of output j."""
    K = 2
    made = MADE(D, hidden, num_outputs_per_input=K, ordering=ordering, num_masks=4, seed=3)
    for index in range(made.num_masks):
        masks = made.masks_of(index)
        paths = masks[0]
        for M in masks[1:]:
            paths = M @ paths
        m0 = made.degrees_of(index)[0]
        allowed = np.tile(m0, K)[:, None] > m0[None, :]
        assert paths.shape == (K * D, D)
        assert np.all(paths[~allowed] == 0)
        assert sorted(m0) == list(range(1, D + 1))
        for m_prev, m in zip(made.degrees_of(index)[:-1], made.degrees_of(index)[1:]):
            if D > 1:  # eq. (2): degrees in [min of the layer below, D - 1]
                assert m.min() >= m_prev.min() and m.max() <= D - 1


@pytest.mark.parametrize("D", [3, 6])
@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("ordering", ["natural", "random"])
def test_made_jacobian_is_strictly_triangular(D, K, ordering):
    rng = np.random.default_rng(D * 10 + K)
    made = to64(MADE(D, (64, 64), num_outputs_per_input=K, ordering=ordering,
                     num_masks=3, seed=K))
    orderings = set()
    for _ in range(made.num_masks):
        m0 = made.ordering_degrees
        orderings.add(tuple(m0))
        J = jacobian(made, rng.standard_normal(D))
        for k in range(K):
            for d in range(D):
                row = J[k * D + d]
                later_or_self = m0 >= m0[d]
                assert np.all(row[later_or_self] == 0), (k, d, m0, row)
                if m0[d] > 1:  # a wide net: x_d's parameters do depend on x_{<d}
                    assert np.any(row[~later_or_self] != 0), (k, d, m0, row)
        made.update_masks()
    assert made.ordering_degrees.tolist() == list(made.degrees_of(0)[0])  # back to set 0
    if ordering == "random":
        assert len(orderings) > 1
    else:
        assert orderings == {tuple(range(1, D + 1))}


def test_mask_sets_are_deterministic_and_saved():
    a = MADE(5, (16, 16), ordering="random", num_masks=3, seed=7)
    b = MADE(5, (16, 16), ordering="random", num_masks=3, seed=7)
    for i in range(3):
        for ma, mb in zip(a.masks_of(i), b.masks_of(i)):
            np.testing.assert_array_equal(ma, mb)
    a.update_masks()
    a.update_masks()
    c = MADE(5, (16, 16), ordering="random", num_masks=3, seed=99)
    c.load_state_dict(a.state_dict())
    assert int(c.mask_index.item()) == 2
    x = tg.randn(4, 5)
    np.testing.assert_allclose(c(x).numpy(), a(x).numpy(), rtol=1e-6)
    for la, lc in zip(a.layers, c.layers):
        np.testing.assert_array_equal(la.mask.numpy(), lc.mask.numpy())


def test_made_moves_its_masks_with_the_module(device):
    made = MADE(4, (12,), ordering="random")
    x = tg.randn(3, 4)
    expected = made(x).numpy()
    made.to(device)
    assert all(layer.mask.device == device for layer in made.layers)
    np.testing.assert_allclose(made(x.to(device)).to("cpu").numpy(), expected, rtol=1e-5)
    made.update_masks()  # the new masks are made on the module's device
    assert made.sample(2).device == device


def test_made_refuses_bad_arguments():
    with pytest.raises(ValueError, match="num_inputs must be at least 1, got 0"):
        MADE(0, (4,))
    with pytest.raises(ValueError, match=r"hidden_sizes\[1\] must be at least 1, got 0"):
        MADE(3, (4, 0))
    with pytest.raises(ValueError, match="ordering must be one of natural, random"):
        MADE(3, (4,), ordering="reversed")
    with pytest.raises(ValueError, match="activation must be one of"):
        MADE(3, (4,), activation="sigmoid")
    made = MADE(3, (4,), num_outputs_per_input=2, num_masks=2)
    with pytest.raises(ValueError, match=r"expected input \(N, 3\), got shape \(2, 4\)"):
        made(tg.zeros(2, 4))
    with pytest.raises(ValueError, match="needs num_outputs_per_input = 1"):
        made.log_prob(tg.zeros(2, 3))
    with pytest.raises(ValueError, match=r"num_masks must be an integer in \[1, 2\], got 3"):
        MADE(3, (4,), num_masks=2).log_prob_ensemble(tg.zeros(2, 3), 3)
    with pytest.raises(ValueError, match=r"mask index must lie in \[0, 2\), got 2"):
        made.set_mask_index(2)


# --------------------------------------------------------------------------- Bernoulli MADE

def average_of_logits(made, x, K):
    """The WRONG ensemble: one Bernoulli model from the mean of the K mask sets' logits."""
    logits = []
    for k in range(K):
        made.set_mask_index(k)
        logits.append(made(x))
    made.set_mask_index(0)
    return Independent(Bernoulli(logits=sum(logits) / K), 1).log_prob(x)


@pytest.mark.parametrize("D", [1, 4, 5, 6])
@pytest.mark.parametrize("ordering", ["natural", "random"])
def test_bernoulli_made_sums_to_one(D, ordering):
    rng = np.random.default_rng(D)
    made = randomize(to64(MADE(D, (32, 32), ordering=ordering, num_masks=4, seed=D)), rng)
    x = all_binary(D)
    for k in range(made.num_masks):  # each mask set is a model of its own
        made.set_mask_index(k)
        assert np.exp(made.log_prob(x).numpy()).sum() == pytest.approx(1, abs=1e-12)
    made.set_mask_index(1)
    ensemble = made.log_prob_ensemble(x, 4)
    assert int(made.mask_index.item()) == 1  # restored
    assert ensemble.shape == (2 ** D,)
    assert np.exp(ensemble.numpy()).sum() == pytest.approx(1, abs=1e-12)
    # and it is the mixture, not some other normalised model
    per_set = []
    for k in range(4):
        made.set_mask_index(k)
        per_set.append(np.exp(made.log_prob(x).numpy()))
    np.testing.assert_allclose(np.exp(ensemble.numpy()), np.mean(per_set, axis=0),
                               rtol=1e-12)
    # Averaging the logits of mask sets with different orderings conditions x_d on
    # different variables at once: no longer a normalised distribution. (With one
    # ordering the averaged logits are still autoregressive and do sum to 1.)
    wrong = np.exp(average_of_logits(made, x, 4).numpy()).sum()
    if ordering == "random" and D >= 4:
        assert abs(wrong - 1) > 1e-5  # rounding alone is ~1e-15 here
    elif ordering == "natural":
        assert wrong == pytest.approx(1, abs=1e-12)


def test_ensemble_log_prob_is_differentiable():
    made = MADE(4, (16,), ordering="random", num_masks=3)
    x = all_binary(4).float()
    made.log_prob_ensemble(x).mean().backward()
    grads = [p.grad for p in made.parameters()]
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert any(np.abs(g.numpy()).sum() > 0 for g in grads)


@pytest.mark.parametrize("ordering", ["natural", "random"])
def test_made_samples_follow_its_log_prob(ordering):
    """A chi-square test of 40000 samples on the 8 cells of {0, 1}^3 (7 degrees of
    freedom; 24.32 is the 0.999 quantile), and total variation below 0.02."""
    D, n = 3, 40000
    rng = np.random.default_rng(1)
    made = randomize(to64(MADE(D, (16,), ordering=ordering, num_masks=2, seed=4)), rng)
    made.update_masks()
    p = np.exp(made.log_prob(all_binary(D)).numpy())
    x = made.sample(n).numpy()
    assert set(np.unique(x)) <= {0.0, 1.0}
    cells = (x @ (2 ** np.arange(D - 1, -1, -1))).astype(int)  # the row of all_binary
    counts = np.bincount(cells, minlength=2 ** D)
    chi2 = ((counts - n * p) ** 2 / (n * p)).sum()
    assert chi2 < 24.32, (counts, n * p)
    assert 0.5 * np.abs(counts / n - p).sum() < 0.02


# --------------------------------------------------------------------------- Gaussian MADE

def test_gaussian_made_log_prob_is_the_product_of_its_conditionals():
    rng = np.random.default_rng(2)
    made = randomize(to64(GaussianMADE(4, (16, 16), ordering="random", seed=5)), rng, 0.5)
    x = tg.tensor(rng.standard_normal((6, 4)))
    mu, alpha = made.mu_alpha(x)
    expected = Independent(Normal(mu, alpha.exp()), 1).log_prob(x)
    np.testing.assert_allclose(made.log_prob(x).numpy(), expected.numpy(), rtol=1e-12)
    np.testing.assert_allclose(made.x_from_u(made.u_from_x(x)[0]).numpy(), x.numpy(),
                               rtol=1e-10, atol=1e-12)
    s = made.sample(5)
    assert s.shape == (5, 4) and not s.requires_grad


# --------------------------------------------------------------------------- MAF

def points(D, max_rows=4):
    """Hypothesis: an (N, D) float64 array of moderate values."""
    return st.lists(st.lists(st.floats(-3, 3), min_size=D, max_size=D),
                    min_size=1, max_size=max_rows).map(lambda r: np.array(r, np.float64))


@given(st.integers(1, 5).flatmap(lambda D: st.tuples(points(D), st.integers(0, 10 ** 6))),
       st.sampled_from(["natural", "random"]))
def test_maf_layer_inverts(x_seed, ordering):
    x, seed = x_seed
    D = x.shape[1]
    rng = np.random.default_rng(seed)
    layer = randomize(to64(MAFLayer(D, (12, 12), ordering=ordering, seed=seed)), rng, 0.5)
    x = tg.tensor(x)
    u, log_det = layer(x)
    assert u.shape == x.shape and log_det.shape == (x.shape[0],)
    np.testing.assert_allclose(layer.inverse(u).numpy(), x.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(layer(layer.inverse(x))[0].numpy(), x.numpy(),
                               rtol=1e-9, atol=1e-9)


def assert_log_det_is_brute_force(flow, D, rng, rows=3):
    x = rng.standard_normal((rows, D))
    _, log_det = flow(tg.tensor(x))
    for i in range(rows):
        J = jacobian(lambda t: flow(t)[0], x[i])
        sign, logabs = np.linalg.slogdet(J)
        assert sign != 0
        assert log_det.numpy()[i] == pytest.approx(logabs, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("D", [1, 2, 3, 4, 5])
def test_maf_layer_log_det_is_the_jacobians(D):
    rng = np.random.default_rng(D)
    layer = randomize(to64(MAFLayer(D, (16, 16), ordering="random", seed=D)), rng, 0.5)
    assert_log_det_is_brute_force(layer, D, rng)
    # and du/dx is triangular in the ordering, with diagonal exp(-alpha)
    x = rng.standard_normal(D)
    J = jacobian(lambda t: layer(t)[0], x)
    m0 = layer.made.ordering_degrees
    order = np.argsort(m0)
    assert np.all(np.triu(J[np.ix_(order, order)], 1) == 0)
    _, alpha = layer.made.mu_alpha(tg.tensor(x[None]))
    np.testing.assert_allclose(np.diag(J), np.exp(-alpha.numpy()[0]), rtol=1e-12)


def trained_looking_batch_norm(flow, rng):
    """Give every BatchNormFlow of ``flow`` non-trivial gamma, beta and running
    statistics, as after training."""
    for m in flow.modules():
        if isinstance(m, BatchNormFlow):
            D = m.num_inputs
            m.log_gamma.data = 0.3 * rng.standard_normal(D)
            m.beta.data = rng.standard_normal(D)
            m.running_mean.data = rng.standard_normal(D)
            m.running_var.data = rng.uniform(0.5, 2, D)


@pytest.mark.parametrize("D", [2, 3, 5])
@pytest.mark.parametrize("permutation, batch_norm", [("reverse", False), ("random", True)])
def test_maf_log_det_and_inverse(D, permutation, batch_norm):
    rng = np.random.default_rng(D)
    maf = to64(MAF(D, (16,), num_layers=3, permutation=permutation, batch_norm=batch_norm,
                   seed=D))
    randomize(maf, rng, 0.2)  # larger weights, stacked, send u to 1e20 and beyond
    trained_looking_batch_norm(maf, rng)
    maf.eval()  # batch norm: the running statistics, a fixed affine map
    kinds = [type(m).__name__ for m in maf.layers]
    assert kinds.count("MAFLayer") == 3
    assert kinds.count("Reverse" if permutation == "reverse" else "Permute") == 2
    assert kinds.count("BatchNormFlow") == (3 if batch_norm else 0)
    assert_log_det_is_brute_force(maf, D, rng)
    x = tg.tensor(rng.standard_normal((5, D)))
    np.testing.assert_allclose(maf.inverse(maf(x)[0]).numpy(), x.numpy(), rtol=1e-9,
                               atol=1e-10)


def test_permute_and_reverse():
    x = tg.tensor(np.arange(12.0).reshape(3, 4))
    y, log_det = Permute([2, 0, 3, 1])(x)
    np.testing.assert_array_equal(y.numpy()[0], [2.0, 0.0, 3.0, 1.0])
    np.testing.assert_array_equal(log_det.numpy(), np.zeros(3))
    np.testing.assert_array_equal(Permute([2, 0, 3, 1]).inverse(y).numpy(), x.numpy())
    np.testing.assert_array_equal(Reverse()(x)[0].numpy()[0], [3.0, 2.0, 1.0, 0.0])
    assert "permutation" in Permute([1, 0]).state_dict()
    for bad in ([0, 0, 1], [1, 2], [], [[0, 1]], [0.0, 1.0]):
        with pytest.raises(ValueError, match="expected a permutation of 0..D-1"):
            Permute(bad)
    with pytest.raises(ValueError, match=r"expected input \(N, 2\)"):
        Permute([1, 0])(x)


def test_batch_norm_flow_in_training_mode():
    rng = np.random.default_rng(3)
    bn = to64(BatchNormFlow(3, momentum=0.5))
    bn.log_gamma.data = np.array([0.1, -0.2, 0.3])
    bn.beta.data = np.array([1.0, 0.0, -1.0])
    x = tg.tensor(rng.normal(2.0, 3.0, (50, 3)))
    y, log_det = bn(x)
    m, v = x.numpy().mean(0), x.numpy().var(0)
    z = (x.numpy() - m) / np.sqrt(v + bn.eps)
    np.testing.assert_allclose(y.numpy(), z * np.exp([0.1, -0.2, 0.3]) + [1.0, 0.0, -1.0],
                               rtol=1e-12)
    np.testing.assert_allclose(log_det.numpy(),
                               np.full(50, np.sum([0.1, -0.2, 0.3] - 0.5 * np.log(v + bn.eps))))
    np.testing.assert_allclose(bn.inverse(y).numpy(), x.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * m, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.5 + 0.5 * v, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 examples"):
        bn(x[:1])


def test_maf_density_integrates_to_one():
    """An untrained 3-layer MAF in 2-D: exp(log p) on the midpoint grid of [-10, 10]^2
    with spacing h = 0.05 (160000 points). Its samples put ~2e-5 of the mass outside the
    square (checked below), and the midpoint rule's error is O(h^2) on each smooth piece;
    the sum is within 1e-3 of 1."""
    maf = to64(MAF(2, (16,), num_layers=3, seed=1))
    flow = NormalizingFlow(maf, (2,))
    h = 0.05
    g = np.arange(-10 + h / 2, 10, h)
    xx, yy = np.meshgrid(g, g)
    grid = tg.tensor(np.stack([xx.ravel(), yy.ravel()], axis=1))
    with tg.no_grad():
        mass = np.exp(flow.log_prob(grid).numpy()).sum() * h * h
        outside = (np.abs(flow.sample(20000).numpy()) > 10).any(axis=1).mean()
    assert outside < 1e-3
    assert mass == pytest.approx(1, abs=1e-3)


def test_maf_refuses_bad_arguments():
    with pytest.raises(ValueError, match="num_layers must be at least 1, got 0"):
        MAF(2, (4,), num_layers=0)
    with pytest.raises(ValueError, match="permutation must be one of reverse, random"):
        MAF(2, (4,), permutation="shuffle")
    with pytest.raises(ValueError, match=r"expected input \(N, 3\), got shape \(4, 2\)"):
        MAFLayer(3, (4,))(tg.zeros(4, 2))
    with pytest.raises(ValueError, match="momentum must be a number in"):
        BatchNormFlow(3, momentum=2)


# --------------------------------------------------------------------------- learning

def test_made_learns_a_binary_markov_chain():
    """x_1 ~ Bern(1/2), x_d = x_{d-1} with probability 0.9: entropy log 2 + 3 H_b(0.9)
    = 1.668 nats. A MADE trained 300 steps on 2000 samples must come within 0.03 nats
    of it in cross-entropy, computed exactly over the 16 states; it starts ~1 nat above."""
    D, stay = 4, 0.9
    states = all_binary(D).numpy()
    flips = np.abs(np.diff(states, axis=1)).sum(axis=1)
    p_true = 0.5 * stay ** (D - 1 - flips) * (1 - stay) ** flips
    H = -(p_true * np.log(p_true)).sum()
    assert H == pytest.approx(math.log(2) - 3 * (stay * math.log(stay)
                                                 + (1 - stay) * math.log(1 - stay)))
    rng = np.random.default_rng(0)
    data = tg.tensor(states[rng.choice(2 ** D, size=2000, p=p_true)].astype(np.float32))
    made = MADE(D, (32,), seed=0)
    opt = optim.Adam(made.parameters(), lr=0.01)

    def cross_entropy():
        with tg.no_grad():
            return -(p_true * made.log_prob(tg.tensor(states.astype(np.float32))).numpy()).sum()

    before = cross_entropy()
    for step in range(300):
        batch = data[rng.integers(0, 2000, 128)]
        loss = -made.log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = cross_entropy()
    assert before > H + 0.5
    assert after < H + 0.03, (before, after, H)


def test_maf_learns_a_correlated_gaussian():
    """x ~ N(0, [[1, 0.9], [0.9, 1]]): entropy 1/2 log det(2 pi e Sigma) = 2.007 nats,
    which one affine autoregressive layer could reach exactly. A 2-layer MAF trained 300
    steps must reach a test NLL (5000 fresh points; standard error ~0.014) below
    entropy + 0.08."""
    Sigma = np.array([[1.0, 0.9], [0.9, 1.0]])
    H = 0.5 * np.log(np.linalg.det(2 * math.pi * math.e * Sigma))
    rng = np.random.default_rng(0)
    L = np.linalg.cholesky(Sigma)
    train = tg.tensor((rng.standard_normal((5000, 2)) @ L.T).astype(np.float32))
    test = tg.tensor((rng.standard_normal((5000, 2)) @ L.T).astype(np.float32))
    flow = NormalizingFlow(MAF(2, (32,), num_layers=2, seed=0), (2,))
    opt = optim.Adam(flow.parameters(), lr=5e-3)

    def nll():
        with tg.no_grad():
            return -flow.log_prob(test).mean().item()

    before = nll()
    for step in range(300):
        loss = -flow.log_prob(train[rng.integers(0, 5000, 256)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = nll()
    assert after < H + 0.08, (before, after, H)
    assert after < before - 0.2
