"""tinygen.metrics against closed forms and independent computations."""
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen import metrics


# --------------------------------------------------------------------------- bits per dim

def test_bits_per_dim_known_values():
    nll = 3.0 * 784 * math.log(2)                 # 3 bits for each of 784 pixels, in nats
    assert metrics.bits_per_dim(nll, 784) == pytest.approx(3.0, rel=1e-12)
    assert metrics.bits_per_dim(nll, (1, 28, 28)) == pytest.approx(3.0, rel=1e-12)
    assert metrics.bits_per_dim(nll, 784, scale_bits=8) == pytest.approx(11.0, rel=1e-12)
    assert isinstance(metrics.bits_per_dim(nll, 784), float)


def test_bits_per_dim_dequantisation_offset_of_uniform_data():
    # Uniform 8-bit data has 8 bits of entropy per dimension. The uniform density on the
    # scaled, dequantised [0, 1)^D has log p = 0: with the offset for x / 256 it scores 8.
    assert metrics.bits_per_dim(0.0, 3 * 32 * 32, scale_bits=8) == 8.0


def test_bits_per_dim_batches_and_tensors():
    nll = np.array([784 * math.log(2), 2 * 784 * math.log(2)])
    np.testing.assert_allclose(metrics.bits_per_dim(nll, 784), [1.0, 2.0], rtol=1e-12)
    out = metrics.bits_per_dim(tg.tensor(nll.astype(np.float32)), 784)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, [1.0, 2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        metrics.bits_per_dim(1.0, 0)


# --------------------------------------------------------------------------- log_mean_exp

@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), (-1, True),
                                            ((0, 2), False), ((1,), True)])
def test_log_mean_exp_matches_float64_reference(axis, keepdims):
    x = np.random.default_rng(1).normal(size=(3, 4, 5)) * 3
    expected = np.log(np.mean(np.exp(x), axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(metrics.log_mean_exp(x, axis, keepdims), expected, rtol=1e-12)
    t = metrics.log_mean_exp(tg.tensor(x), axis, keepdims)
    assert isinstance(t, tg.Tensor) and t.dtype == np.float64
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("offset", [1000.0, -1000.0])
def test_log_mean_exp_is_stable_for_large_inputs(offset):
    x = np.random.default_rng(2).normal(size=1000) * 5 + offset
    # independent reference: pairwise logaddexp, then - log n
    expected = np.logaddexp.reduce(x) - math.log(x.size)
    with np.errstate(over="raise", invalid="raise"):
        out = metrics.log_mean_exp(x)
        out_t = metrics.log_mean_exp(tg.tensor(x)).item()
    assert np.isfinite(out) and out == pytest.approx(expected, rel=1e-13)
    assert out_t == pytest.approx(expected, rel=1e-13)
    assert metrics.log_mean_exp(np.full(1000, offset)) == pytest.approx(offset, rel=1e-15)


def test_log_mean_exp_edge_cases():
    assert metrics.log_mean_exp([-np.inf, -np.inf]) == -np.inf
    assert metrics.log_mean_exp([0.0, -np.inf]) == pytest.approx(math.log(0.5))
    row = metrics.log_mean_exp(np.array([[0.0, 0.0], [-np.inf, -np.inf]]), axis=1)
    np.testing.assert_array_equal(row, [0.0, -np.inf])
    with pytest.raises(ValueError, match="no elements"):
        metrics.log_mean_exp(np.zeros((0, 3)), axis=0)


def test_log_mean_exp_tensor_is_differentiable():
    rng = np.random.default_rng(3)
    x = tg.tensor(rng.normal(size=(4, 6)) * 2, requires_grad=True)
    tg.gradcheck(lambda a: metrics.log_mean_exp(a, axis=1), [x])
    tg.gradcheck(lambda a: metrics.log_mean_exp(a), [x])
    tg.gradgradcheck(lambda a: metrics.log_mean_exp(a, axis=0), [x])
    # d/dx_i of log mean exp over a row is the softmax of the row
    metrics.log_mean_exp(x, axis=1).sum().backward()
    e = np.exp(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), e / e.sum(1, keepdims=True), rtol=1e-12)


def test_log_mean_exp_tensor_keeps_dtype_and_device(device):
    x = np.random.default_rng(4).normal(size=(5, 3)).astype(np.float32)
    out = metrics.log_mean_exp(tg.tensor(x, device=device), axis=0)
    assert out.device == device and out.dtype == np.float32 and out.shape == (3,)
    np.testing.assert_allclose(out.numpy(), np.log(np.exp(x.astype(np.float64)).mean(0)),
                               rtol=1e-5)


# --------------------------------------------------------------------------- Frechet distance

def random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def fd_by_eigenvalues_of_product(mu1, c1, mu2, c2):
    """Independent: tr (C1 C2)^(1/2) = sum sqrt(eigenvalues of the non-symmetric C1 C2)."""
    lam = np.linalg.eigvals(c1 @ c2)
    assert np.abs(lam.imag).max() < 1e-8 * np.abs(lam).max()
    tr_sqrt = np.sqrt(np.clip(lam.real, 0, None)).sum()
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(c1) + np.trace(c2) - 2 * tr_sqrt)


def test_frechet_identical_gaussians_is_zero():
    rng = np.random.default_rng(5)
    mu, c = rng.normal(size=6) * 10, random_spd(rng, 6, scale=100.0)
    assert abs(metrics.frechet_distance(mu, c, mu, c)) < 1e-9 * np.trace(c)


def test_frechet_same_covariance_is_squared_mean_distance():
    rng = np.random.default_rng(6)
    c = random_spd(rng, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    assert metrics.frechet_distance(mu1, c, mu2, c) == pytest.approx(
        float(((mu1 - mu2) ** 2).sum()), rel=1e-9)


def test_frechet_diagonal_covariances():
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.1, 4, size=4), rng.uniform(0.1, 4, size=4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + ((mu1 - mu2) ** 2).sum()
    assert metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(
        expected, rel=1e-10)


def test_frechet_commuting_covariances():
    # C1 = Q diag(a) Q^T and C2 = Q diag(b) Q^T commute: (C1 C2)^(1/2) = Q diag(sqrt(ab)) Q^T
    rng = np.random.default_rng(8)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a, b = rng.uniform(0.1, 3, size=5), rng.uniform(0.1, 3, size=5)
    c1, c2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu = rng.normal(size=5)
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + (mu ** 2).sum()
    assert metrics.frechet_distance(mu, c1, np.zeros(5), c2) == pytest.approx(expected,
                                                                              rel=1e-9)


def test_frechet_random_full_covariances_and_symmetry():
    rng = np.random.default_rng(9)
    for d in (2, 7, 30):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        c1, c2 = random_spd(rng, d), random_spd(rng, d, scale=3.0)
        fd = metrics.frechet_distance(mu1, c1, mu2, c2)
        assert fd == pytest.approx(fd_by_eigenvalues_of_product(mu1, c1, mu2, c2), rel=1e-8)
        assert metrics.frechet_distance(mu2, c2, mu1, c1) == pytest.approx(fd, rel=1e-10)


def test_frechet_against_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg", reason="scipy is not installed (optional)")
    rng = np.random.default_rng(10)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    c1, c2 = random_spd(rng, 8), random_spd(rng, 8, scale=2.0)
    root = linalg.sqrtm(c1 @ c2)
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2)
                     - 2 * np.trace(root).real)
    assert metrics.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-8)


def test_frechet_singular_covariances():
    # N(0, diag(1, 0)) vs N(0, diag(4, 0)): W2^2 = (1 - 2)^2 along the first axis
    assert metrics.frechet_distance(np.zeros(2), np.diag([1.0, 0.0]), np.zeros(2),
                                    np.diag([4.0, 0.0])) == pytest.approx(1.0, rel=1e-12)
    # fewer samples than dimensions: rank-deficient covariances, rounding below zero
    f = np.random.default_rng(11).normal(size=(3, 20))
    assert metrics.fid_from_features(f, f) < 1e-10


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="positive semi-definite"):
        metrics.frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="not symmetric"):
        metrics.frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]),
                                 np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="non-finite"):
        metrics.frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))


def test_gaussian_statistics_matches_numpy(device):
    f = np.random.default_rng(12).normal(size=(50, 4)) @ np.diag([1, 2, 3, 4.0])
    mu, cov = metrics.gaussian_statistics(tg.tensor(f, device=device))
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(f, rowvar=False, ddof=1), rtol=1e-12)
    assert mu.dtype == cov.dtype == np.float64
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.gaussian_statistics(np.zeros((1, 4)))


def test_fid_small_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(13)
    d, n = 4, 20000
    chol = np.linalg.cholesky(random_spd(rng, d))
    a, b = (rng.normal(size=(n, d)) @ chol.T for _ in range(2))
    same = metrics.fid_from_features(a, b)
    assert same < 0.01          # the finite-sample bias, about d(d + 1) / n times the scale
    e0 = np.eye(d)[0]
    fids = [metrics.fid_from_features(a, b + s * e0) for s in (0.5, 1.0, 2.0)]
    assert same < fids[0] < fids[1] < fids[2]
    # shifting b leaves its covariance alone and moves its mean: exactly
    # ||m_a - m_b - s e0||^2 - ||m_a - m_b||^2 = s^2 - 2 s (m_a - m_b)_0 is added
    gap = (a.mean(0) - b.mean(0))[0]
    for s, fid in zip((0.5, 1.0, 2.0), fids):
        assert fid == pytest.approx(same + s * s - 2 * s * gap, rel=1e-9)


# --------------------------------------------------------------------------- mode coverage

RING = 2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
STD = 0.02


def near(modes, per_mode, radius_in_std):
    """per_mode samples around each listed mode, each at the given distance in stds."""
    angles = np.linspace(0, 2 * np.pi, per_mode, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], 1) * radius_in_std * STD
    return np.concatenate([RING[m] + ring for m in modes])


def test_mode_coverage_all_modes():
    out = metrics.mode_coverage(near(range(8), 10, 1.0), RING, STD)
    assert out["modes_covered"] == 8 and out["num_modes"] == 8
    assert out["high_quality_fraction"] == 1.0
    np.testing.assert_array_equal(out["counts"], np.full(8, 10))


def test_mode_coverage_half_the_modes():
    out = metrics.mode_coverage(near([0, 2, 4, 6], 10, 2.0), RING, STD)
    assert out["modes_covered"] == 4 and out["high_quality_fraction"] == 1.0
    np.testing.assert_array_equal(out["counts"], [10, 0, 10, 0, 10, 0, 10, 0])


def test_mode_coverage_far_away_junk():
    junk = np.array([[100.0, 100.0]] * 5 + [[0.0, 0.0]] * 4 + [[np.nan, 1.0]])
    samples = np.concatenate([near(range(8), 5, 0.5), junk])
    out = metrics.mode_coverage(tg.tensor(samples), RING, STD)
    assert out["modes_covered"] == 8
    assert out["high_quality_fraction"] == pytest.approx(40 / 50, abs=0)
    np.testing.assert_array_equal(out["counts"], np.full(8, 5))
    only_junk = metrics.mode_coverage(junk, RING, STD)
    assert only_junk["modes_covered"] == 0 and only_junk["high_quality_fraction"] == 0.0


def test_mode_coverage_threshold_and_min_count():
    samples = np.concatenate([near([0], 1, 2.9), near([1], 1, 3.1), near([2], 3, 1.0)])
    out = metrics.mode_coverage(samples, RING, STD)   # 3.1 std is not high quality
    np.testing.assert_array_equal(out["counts"], [1, 0, 3, 0, 0, 0, 0, 0])
    assert out["modes_covered"] == 2 and out["high_quality_fraction"] == 4 / 5
    assert metrics.mode_coverage(samples, RING, STD, min_count=2)["modes_covered"] == 1
    assert metrics.mode_coverage(samples, RING, STD, threshold=3.5)["modes_covered"] == 3
    per_mode = np.full(8, STD)
    per_mode[1] = 2 * STD                               # 3.1 std of 0.02 is 1.55 of 0.04
    assert metrics.mode_coverage(samples, RING, per_mode)["modes_covered"] == 3


def test_mode_coverage_uses_the_nearest_centre_only():
    centres = np.array([[0.0, 0.0], [1.0, 0.0]])
    out = metrics.mode_coverage(np.array([[0.4, 0.0]]), centres, std=1.0)  # within 3 std of both
    np.testing.assert_array_equal(out["counts"], [1, 0])
    assert out["modes_covered"] == 1
    # a diverged sample (NaN) is nobody's high-quality sample, not even the origin's
    out = metrics.mode_coverage(np.array([[np.nan, np.nan], [0.1, 0.0]]), centres, std=1.0)
    np.testing.assert_array_equal(out["counts"], [1, 0])
    assert out["high_quality_fraction"] == 0.5
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        metrics.mode_coverage(np.zeros((3, 3)), centres, std=1.0)
    with pytest.raises(ValueError, match="std must be positive"):
        metrics.mode_coverage(np.zeros((3, 2)), centres, std=0.0)


# --------------------------------------------------------------------------- accuracy

def test_accuracy(device):
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [9.0, 0.0, 1.0]])
    labels = np.array([0, 1, 1, 2])
    assert metrics.accuracy(logits, labels) == 0.5
    assert metrics.accuracy(tg.tensor(logits, device=device),
                            tg.tensor(labels, device=device)) == 0.5
    assert metrics.accuracy(np.array([0, 1, 1, 0]), labels) == 0.75
    assert metrics.accuracy(np.array([0.0, 1.0, 1.0, 0.0]), labels) == 0.75
    with pytest.raises(ValueError, match="class indices"):
        metrics.accuracy(np.array([0.2, 0.9, 0.7, 0.1]), labels)
    with pytest.raises(ValueError, match="do not match"):
        metrics.accuracy(logits[:3], labels)
