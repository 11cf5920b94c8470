"""The restricted Boltzmann machine's math (tinygen/models/ebm/rbm.py), proven against
brute force over every configuration of tiny models; then a small learning test.

The tiny models have weights of size about 1, far from the 0.01 of a fresh RBM, so that
every term of the energy matters."""
import itertools
import math
import os

import numpy as np
import pytest

import tinygen as tg
from tinygen.models.ebm.rbm import (MAX_EXACT_HIDDEN, RBM, ais_betas, ais_log_partition,
                                    exact_log_partition)


def all_states(n):
    """Every binary vector of length n, (2^n, n) float64."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def logsumexp(a, axis=None):
    top = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.exp(a - top).sum(axis=axis))


def tiny_rbm(D=8, H=5, scale=1.0, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    rbm = RBM(D, H)
    for p, shape in ((rbm.W, (D, H)), (rbm.a, (D,)), (rbm.b, (H,))):
        p.data = rng.normal(0, scale, shape).astype(dtype)
    return rbm


def brute_energies(rbm):
    """E(v, h) for every v (rows) and h (columns), by eq. (1) written out with NumPy."""
    V, Hs = all_states(rbm.num_visible), all_states(rbm.num_hidden)
    W, a, b = rbm.W.numpy(), rbm.a.numpy(), rbm.b.numpy()
    return -(V @ a)[:, None] - (Hs @ b)[None, :] - V @ W @ Hs.T, V, Hs


def test_energy_matches_its_definition():
    rbm = tiny_rbm()
    E, V, Hs = brute_energies(rbm)
    v = np.repeat(V, len(Hs), axis=0)
    h = np.tile(Hs, (len(V), 1))
    got = rbm.energy(tg.tensor(v), tg.tensor(h)).numpy().reshape(E.shape)
    np.testing.assert_allclose(got, E, rtol=1e-12, atol=1e-12)


def test_free_energy_is_minus_log_sum_over_hidden_states():
    rbm = tiny_rbm()
    E, V, _ = brute_energies(rbm)
    np.testing.assert_allclose(rbm.free_energy(tg.tensor(V)).numpy(), -logsumexp(-E, axis=1),
                               rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_exact_log_partition_equals_the_sum_over_all_visible_and_hidden_states(chunk_size):
    rbm = tiny_rbm()
    E, _, _ = brute_energies(rbm)
    assert exact_log_partition(rbm, chunk_size=chunk_size) == pytest.approx(
        logsumexp(-E.ravel()), abs=1e-10)


def test_exact_log_partition_in_float32_matches_float64():
    r64 = tiny_rbm(D=30, H=12, scale=0.5)
    r32 = tiny_rbm(D=30, H=12, scale=0.5, dtype=np.float32)
    # the sum runs in float64 whatever the parameters' dtype: only the parameters'
    # rounding to float32 (relative 6e-8 of terms of size ~30) separates the two
    assert exact_log_partition(r32) == pytest.approx(exact_log_partition(r64), abs=1e-4)


def test_log_prob_sums_to_one():
    rbm = tiny_rbm()
    log_p = rbm.log_prob(tg.tensor(all_states(8)), exact_log_partition(rbm)).numpy()
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-12)


def test_conditionals_match_their_brute_force_marginals():
    """p(h_j = 1 | v) and p(v_i = 1 | h) from the joint by summation, against eq. (2)."""
    rbm = tiny_rbm()
    E, V, Hs = brute_energies(rbm)
    p_joint = np.exp(-E - logsumexp(-E.ravel()))
    p_h_given_v = p_joint / p_joint.sum(axis=1, keepdims=True)      # rows: v
    p_v_given_h = p_joint / p_joint.sum(axis=0, keepdims=True)      # columns: h
    np.testing.assert_allclose(rbm.p_h_given_v(tg.tensor(V)).numpy(), p_h_given_v @ Hs,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rbm.p_v_given_h(tg.tensor(Hs)).numpy(), p_v_given_h.T @ V,
                               rtol=1e-10, atol=1e-12)


def test_gibbs_chains_sample_the_model():
    """Many independent chains of a 4x3 RBM after 50 steps: the frequencies of the 16
    visible states against p(v). With n chains the frequency of a state of probability p
    has standard deviation sqrt(p(1 - p)/n); every state must lie within 5 of them, and
    the chi-square statistic within its 15 degrees of freedom's 99.99% range."""
    tg.manual_seed(3)
    rbm = tiny_rbm(D=4, H=3, scale=1.0, seed=4)
    V = all_states(4)
    p = np.exp(rbm.log_prob(tg.tensor(V), exact_log_partition(rbm)).numpy())
    n = 40_000
    v = rbm.gibbs(tg.tensor(np.zeros((n, 4))), steps=50).numpy()
    index = (v @ (2 ** np.arange(3, -1, -1))).astype(int)
    freq = np.bincount(index, minlength=16) / n
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n))
    chi2 = n * ((freq - p) ** 2 / p).sum()
    assert chi2 < 47.0   # about the 0.99996 quantile of chi-square with 15 degrees of freedom


def test_gibbs_returns_the_chain_of_means_and_refuses_negative_steps():
    rbm = tiny_rbm()
    v, chain = rbm.gibbs(tg.tensor(np.zeros((3, 8))), steps=4, return_chain=True)
    assert v.shape == (3, 8) and len(chain) == 4 and chain[0].shape == (3, 8)
    assert set(np.unique(v.numpy())) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="steps"):
        rbm.gibbs(v, steps=-1)


def test_contrastive_gradient_with_exact_model_expectation_is_the_likelihood_gradient():
    """Eq. (4): the gradient of mean F(v+) - E_{v ~ p}[F(v)] (the model's expectation
    taken exactly, over all 2^D states) equals the gradient of the mean negative
    log-likelihood, mean F(v+) + log Z with log Z = logsumexp(-F) differentiated
    through the engine."""
    rbm = tiny_rbm()
    V = tg.tensor(all_states(8))
    data = tg.tensor((np.random.default_rng(5).random((20, 8)) < 0.3).astype(np.float64))
    nll = rbm.free_energy(data).mean() + tg.logsumexp(-rbm.free_energy(V), axis=0)
    g_nll = tg.grad(nll, [rbm.W, rbm.a, rbm.b])
    with tg.no_grad():
        p = (-rbm.free_energy(V) - exact_log_partition(rbm)).exp()
    surrogate = rbm.free_energy(data).mean() - (p * rbm.free_energy(V)).sum()
    g_surrogate = tg.grad(surrogate, [rbm.W, rbm.a, rbm.b])
    for g1, g2 in zip(g_nll, g_surrogate):
        np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-10, atol=1e-12)


def test_ais_with_no_weights_is_exact():
    """W = 0 and a = a^A: every p_beta is the same distribution over v, every log-weight
    the same constant (the hidden biases' share of log(Z_B / Z_A)), and AIS returns the
    exact log Z, with an interval of width 0."""
    rbm = tiny_rbm(D=20, H=7)
    rbm.W.data[...] = 0
    est = ais_log_partition(rbm, num_runs=10, betas=ais_betas(100),
                            base_visible_bias=rbm.a.numpy())
    exact = exact_log_partition(rbm)
    assert est.log_Z == pytest.approx(exact, abs=1e-9)
    assert est.log_Z_low == pytest.approx(exact, abs=1e-9)
    assert est.log_Z_high == pytest.approx(exact, abs=1e-9)


def test_ais_estimate_lies_within_its_interval_of_the_exact_value():
    """A 100 x 15 RBM with weights of MNIST-RBM size: 2^15 hidden states give the exact
    log Z; AIS with 100 runs of 2,000 temperatures must bracket it with its 3-standard-
    error interval, and that interval must be informative (narrower than 1 nat)."""
    tg.manual_seed(0)
    rbm = tiny_rbm(D=100, H=15, scale=0.3, seed=1, dtype=np.float32)
    exact = exact_log_partition(rbm)
    est = ais_log_partition(rbm, num_runs=100, betas=ais_betas(2000))
    assert est.log_Z_low <= exact <= est.log_Z_high
    assert est.log_Z_high - est.log_Z_low < 1.0
    assert est.num_runs == 100 and est.num_betas == 2000 and est.log_weights.shape == (100,)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ais_with_a_base_rate_model_brackets_the_exact_value(seed):
    """The recipe's use: a^A far from 0 (random log-odds of spread 1.5) and W != 0. Off-by-
    one weights, a first sample not from p_0, or a transition without A's (1 - beta)
    a^A term each move the estimate by 0.14 to 23 nats here; AIS's interval must hold
    the exact log Z, and be narrower than 1 nat."""
    tg.manual_seed(seed)
    rbm = tiny_rbm(D=100, H=15, scale=0.3, seed=seed + 10, dtype=np.float32)
    a_A = np.random.default_rng(seed + 20).normal(0, 1.5, 100)
    est = ais_log_partition(rbm, num_runs=100, betas=ais_betas(2000), base_visible_bias=a_A)
    assert est.log_Z_low <= exact_log_partition(rbm) <= est.log_Z_high
    assert est.log_Z_high - est.log_Z_low < 1.0


def test_ais_betas_follow_salakhutdinov_and_murray():
    b = ais_betas()
    assert len(b) == 14_501 and b[0] == 0 and b[-1] == 1
    steps = np.diff(b)
    np.testing.assert_allclose(steps[:500], 1e-3)
    np.testing.assert_allclose(steps[500:4500], 1e-4)
    np.testing.assert_allclose(steps[4500:], 1e-5)
    assert np.all(np.diff(ais_betas(30)) > 0)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="num_hidden"):
        RBM(10, 0)
    with pytest.raises(ValueError, match="init_std"):
        RBM(10, 3, init_std=-1.0)
    with pytest.raises(ValueError, match="ais_log_partition"):
        exact_log_partition(RBM(4, MAX_EXACT_HIDDEN + 1))
    rbm = tiny_rbm()
    with pytest.raises(ValueError, match="betas"):
        ais_log_partition(rbm, betas=[0.0, 0.7, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        ais_log_partition(rbm, base_visible_bias=np.zeros(5))
    with pytest.raises(ValueError, match="clip"):
        ais_log_partition(rbm, base_visible_bias=np.array([-np.inf] + [0.0] * 7))
    with pytest.raises(TypeError, match="RBM"):
        exact_log_partition("not an RBM")
    with pytest.raises(ValueError, match="num_intermediate"):
        ais_betas(2)


@pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                    reason="needs MNIST: set TINYGEN_DATA to the data folder")
def test_pcd_training_raises_the_exact_test_log_likelihood():
    """An RBM of 10 hidden units trained by PCD-1 for 1,500 updates on 2,000 binarised
    digits: its exact log-likelihood of 1,000 other digits rises by more than 25 nats
    from the base-rate start's -206.7 (measured with seeds 0, 1, 2: 38.9, 32.6, 34.2)."""
    from tinygen import data, optim
    images, _ = data.load_dataset("mnist", "train")
    x = data.scale(images[:3000], to=(0, 1)).reshape(-1, 784)
    g = np.random.default_rng(0)
    train, test = data.binarize(x[:2000], g), data.binarize(x[2000:], g)
    tg.manual_seed(0)
    rbm = RBM(784, 10)
    p = train.mean(axis=0).clip(1e-3, 1 - 1e-3)
    rbm.a.data[...] = np.log(p / (1 - p))

    def test_ll():
        return float(rbm.log_prob(tg.tensor(test), exact_log_partition(rbm)).mean().item())

    before = test_ll()
    opt = optim.SGD(rbm.parameters(), lr=0.05, momentum=0.5)
    chains = RBM.bernoulli(tg.tensor(np.tile(p, (100, 1)).astype(np.float32)))
    for step in range(1500):
        v = tg.tensor(train[g.integers(0, 2000, 100)])
        chains = rbm.gibbs(chains, 1)
        loss = rbm.free_energy(v).mean() - rbm.free_energy(chains).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = test_ll()
    assert after > before + 25, (before, after)


def test_rbm_runs_on_every_device(device):
    """Gibbs sampling, the free energy's gradient, the exact log Z and AIS on the device
    (the CUDA case on the NumPy stand-in where CuPy is missing) agree with the CPU."""
    cpu = tiny_rbm(D=12, H=6, scale=0.5, dtype=np.float32)
    rbm = tiny_rbm(D=12, H=6, scale=0.5, dtype=np.float32).to(device)
    v = tg.tensor((np.random.default_rng(0).random((5, 12)) < 0.5).astype(np.float32),
                  device=device)
    sample = rbm.gibbs(v, steps=3)
    assert sample.device == device and sample.shape == (5, 12)
    loss = rbm.free_energy(v).mean()
    loss.backward()
    assert rbm.W.grad.device == device
    assert exact_log_partition(rbm) == pytest.approx(exact_log_partition(cpu), abs=1e-9)
    est = ais_log_partition(rbm, num_runs=20, betas=ais_betas(200))
    assert est.log_Z_low <= exact_log_partition(cpu) <= est.log_Z_high
