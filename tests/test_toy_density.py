"""tinygen.data.toy_log_prob and toy_entropy: the exact densities of the 2-D toy sets.

Every check here is independent of the code under test's own reasoning: the mixtures
against per-component Gaussian densities written out, the circles against the Bessel
closed form, the moons against a brute-force midpoint rule over the curves as the sampler
draws them, every density against a grid integral (mass 1, entropy) and against the
samples of ``toy`` (box masses within binomial error).

Grid integrals: the midpoint rule on [-6, 6]^2. The four smooth densities are Gaussians
blurred at scale s >= 0.05; the midpoint rule's error on such a function is aliasing,
about exp(-2 pi^2 s^2 / h^2) (Poisson summation): e^-123 for 25gaussians at h = 0.02
(s = 0.05), below e^-490 for the others at h = 0.04 (s >= 0.2). The mass outside the
square is below 2e-19 (the nearest mode, at (2.83, 0), is 9 standard deviations from
x = 6; every other curve or mode is farther in its own units). The checkerboard is
constant on cells that tile its squares exactly (h = 0.05 divides 2, and the midpoints
avoid the edges). So a grid integral is exact up to rounding and the quadrature in the
angle (1e-9): the mass tolerance below, 1e-8, leaves room only for those.
"""
import functools
import math
import re

import numpy as np
import pytest

from tinygen.data import TOY_DATASETS, toy, toy_entropy, toy_log_prob, toy_modes

EXACT = ("two_moons", "circles", "8gaussians", "25gaussians", "checkerboard")
INTRACTABLE = ("swiss_roll", "pinwheel", "two_spirals")
STEP = {"8gaussians": 0.04, "25gaussians": 0.02, "two_moons": 0.04, "circles": 0.04,
        "checkerboard": 0.05}


def midpoint_grid(h, lo=-6.0, hi=6.0):
    centres = lo + h * (np.arange(round((hi - lo) / h)) + 0.5)
    x1, x2 = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([x1.ravel(), x2.ravel()], axis=1)


@functools.lru_cache(maxsize=None)
def on_grid(name):
    """(grid points, log p there, cell area), computed once per test session."""
    h = STEP[name]
    x = midpoint_grid(h)
    return x, toy_log_prob(name, x), h * h


def grid_entropy(name):
    _, log_p, area = on_grid(name)
    p = np.exp(log_p)
    return float(-np.sum(p[p > 0] * log_p[p > 0]) * area)


def gaussian_pdf(x, mean, std):
    """The isotropic 2-D normal density, written out."""
    d2 = ((x - mean) ** 2).sum(axis=1)
    return np.exp(-d2 / (2 * std ** 2)) / (2 * np.pi * std ** 2)


# --------------------------------------------------------------------------- mass

@pytest.mark.parametrize("name", EXACT)
def test_each_density_integrates_to_one(name):
    _, log_p, area = on_grid(name)
    assert log_p.dtype == np.float64 and not np.isnan(log_p).any()
    assert np.exp(log_p).sum() * area == pytest.approx(1.0, abs=1e-8)


# --------------------------------------------------------------------------- mixtures

@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_mixture_log_prob_matches_the_sum_of_components(name):
    centers, std = toy_modes(name)
    rng = np.random.default_rng(0)
    x = np.concatenate([toy(name, 500, seed=1).astype(np.float64),
                        rng.uniform(-5, 5, (500, 2))])
    brute = sum(gaussian_pdf(x, c.astype(np.float64), std) for c in centers) / len(centers)
    got = toy_log_prob(name, x)
    ok = brute > 1e-250                          # where the plain sum does not underflow
    assert ok.sum() > 500
    np.testing.assert_allclose(got[ok], np.log(brute[ok]), rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(got)) and np.all(got[~ok] < math.log(1e-250))
    # Far away the sum underflows, but the logsumexp does not: only the nearest mode counts.
    far = np.array([[100.0, 100.0], [-60.0, 3.3]])
    nearest = centers[np.argmin(((far[:, None] - centers[None]) ** 2).sum(-1), axis=1)]
    expected = (-((far - nearest) ** 2).sum(1) / (2 * std ** 2)
                - math.log(2 * math.pi * std ** 2) - math.log(len(centers)))
    np.testing.assert_allclose(toy_log_prob(name, far), expected, rtol=1e-12)
    # float32 input is accepted and computed in float64
    np.testing.assert_allclose(toy_log_prob(name, x.astype(np.float32)),
                               toy_log_prob(name, x.astype(np.float32).astype(np.float64)))


# --------------------------------------------------------------------------- checkerboard

def test_checkerboard_density_is_one_over_32_on_the_black_squares():
    x = toy("checkerboard", 100_000, seed=0)
    np.testing.assert_array_equal(toy_log_prob("checkerboard", x), -math.log(32))
    # The 16 squares' centres: the 8 where floor(x1/2) + floor(x2/2) is even are black.
    c = np.arange(-3.0, 4.0, 2.0)
    centres = np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)
    black = (np.floor(centres[:, 0] / 2) + np.floor(centres[:, 1] / 2)) % 2 == 0
    assert black.sum() == 8
    rng = np.random.default_rng(1)
    for offset in rng.uniform(-0.99, 0.99, (5, 2)):     # anywhere inside each square
        log_p = toy_log_prob("checkerboard", centres + offset)
        assert np.all(log_p[black] == -math.log(32)) and np.all(log_p[~black] == -np.inf)
    # Outside [-4, 4]^2 there is nothing; on an edge of a black square (closed squares,
    # so that a float32 sample rounded onto an edge keeps its density) there is 1/32.
    outside = np.array([[4.5, 0.5], [-4.01, -3.0], [0.5, 7.0], [4.0, 0.5], [1.0, 4.0]])
    assert np.all(toy_log_prob("checkerboard", outside) == -np.inf)
    edges = np.array([[2.0, 0.5], [0.0, 0.0], [-4.0, -3.0], [4.0, 2.5], [-1.0, 4.0]])
    assert np.all(toy_log_prob("checkerboard", edges) == -math.log(32))
    # The support's area, from the grid: 32, so that p = 1/32 integrates to 1.
    _, log_p, area = on_grid("checkerboard")
    assert np.isfinite(log_p).sum() * area == pytest.approx(32.0, abs=1e-9)


# --------------------------------------------------------------------------- moons, circles

def test_circles_density_matches_the_bessel_closed_form():
    # (1/2pi) int N(x; R u(t), s^2 I) dt = exp(-(r^2+R^2)/(2s^2)) I0(rR/s^2) / (2 pi s^2)
    s = 0.24
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-4, 4, (2000, 2)), [[0.0, 0.0], [3.0, 0.0]]])
    r = np.linalg.norm(x, axis=1)
    p = 0.5 * sum(np.exp(-(r ** 2 + R ** 2) / (2 * s ** 2)) * np.i0(r * R / s ** 2)
                  / (2 * np.pi * s ** 2) for R in (3.0, 1.5))
    np.testing.assert_allclose(toy_log_prob("circles", x), np.log(p), rtol=0, atol=1e-9)
    # Far out I0 overflows; there, (1/2pi) int_0^2pi exp(z (cos t - 1)) dt = I0(z) e^-z by
    # the trapezoid rule on the full period (error ~ exp(-N^2 / 2z) for N points).
    x = np.array([[60.0, 80.0], [-30.0, 0.0], [0.0, -12.0], [5.0, -5.0]])
    r = np.linalg.norm(x, axis=1)
    t = 2 * np.pi * np.arange(20_000) / 20_000
    log_p = []
    for ri in r:
        parts = [-(ri - R) ** 2 / (2 * s ** 2) - math.log(2 * math.pi * s ** 2)
                 + math.log(np.mean(np.exp(ri * R / s ** 2 * (np.cos(t) - 1))))
                 for R in (3.0, 1.5)]
        log_p.append(np.logaddexp(*parts) - math.log(2))
    np.testing.assert_allclose(toy_log_prob("circles", x), log_p, rtol=1e-13, atol=1e-9)


def test_moons_density_matches_a_brute_force_integral_over_the_curves():
    # The sampler's curves, before its final map 2 x + (-1, -0.2), integrated by the
    # midpoint rule in t at 50000, 100000 and 200000 points and Romberg-extrapolated: the
    # rule's error is c1 h^2 + c2 h^4 + ..., from the curves' ends (Euler-Maclaurin), and
    # is large where an end of a moon is the nearest point and the Gaussian falls off
    # within s^2/(r R) ~ 1e-3 of it: 1e-4 relative at (30, 40) with 200000 points alone.
    # Far points too, where the bump in t is narrow (width s / sqrt(r R) ~ 0.01).
    x = np.concatenate([toy("two_moons", 20, seed=3).astype(np.float64),
                        [[0.0, 0.3], [-1.0, -2.0], [5.0, 5.0], [-6.0, 0.0], [1.0, 4.0],
                         [0.0, 60.0], [30.0, 40.0], [0.0, -60.0], [-80.0, 5.0]]])

    def log_midpoint(n_t):  # log of (1/2)(1/pi) int N(x; c(t), s^2 I) dt, in log space
        t = (np.arange(n_t) + 0.5) * np.pi / n_t
        upper = np.stack([np.cos(t), np.sin(t)], 1)
        lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
        curve = 2 * np.concatenate([upper, lower]) + np.array([-1.0, -0.2])
        out = []
        for xi in x:
            e = -((curve - xi) ** 2).sum(1) / (2 * 0.2 ** 2)
            out.append(e.max() + math.log(np.mean(np.exp(e - e.max()))))
        return np.array(out) - math.log(2 * np.pi * 0.2 ** 2)

    logs = [log_midpoint(n_t) for n_t in (50_000, 100_000, 200_000)]
    q0, q1, q2 = (np.exp(v - logs[2]) for v in logs)          # p / p_finest
    a1, a2 = (4 * q1 - q0) / 3, (4 * q2 - q1) / 3             # Romberg: h^2 out, then h^4
    log_p = logs[2] + np.log((16 * a2 - a1) / 15)
    np.testing.assert_allclose(toy_log_prob("two_moons", x), log_p, rtol=1e-13, atol=1e-9)


def box_z_scores(name, samples):
    """z-scores of the sample counts in the 64 unit boxes of [-4, 4]^2 and the rest,
    against the masses the density gives them on the grid (whose cells tile the boxes)."""
    x, log_p, area = on_grid(name)
    inside = np.all(np.abs(x) < 4, axis=1)
    cell = (np.floor(x[inside, 0]) + 4) * 8 + np.floor(x[inside, 1]) + 4
    mass = np.bincount(cell.astype(int), weights=np.exp(log_p[inside]) * area, minlength=64)
    mass = np.append(mass, 1 - mass.sum())
    s = samples.astype(np.float64)
    s_inside = np.all(np.abs(s) < 4, axis=1)
    counts = np.bincount(((np.floor(s[s_inside, 0]) + 4) * 8
                          + np.floor(s[s_inside, 1]) + 4).astype(int), minlength=64)
    counts = np.append(counts, (~s_inside).sum())
    n = len(samples)
    # +1 in the variance: an empty box (mass ~0) may hold a stray point without alarm
    return (counts - n * mass) / np.sqrt(n * mass * (1 - mass) + 1), mass


@pytest.mark.parametrize("name", ["two_moons", "circles"])
def test_samples_fall_in_boxes_as_the_density_says(name):
    samples = toy(name, 100_000, seed=4)
    z, mass = box_z_scores(name, samples)
    assert (mass > 0.01).sum() >= 10                # a real comparison, not a few boxes
    # 65 boxes: P(max |z| > 4.5) ~ 65 * 7e-6 < 1e-3 if the density is right (seeded anyway)
    assert np.abs(z).max() < 4.5
    # ... and the check has teeth: samples shifted by 0.05, a quarter of the noise, fail it.
    z_shifted, _ = box_z_scores(name, samples + np.float32(0.05))
    assert np.abs(z_shifted).max() > 10


# --------------------------------------------------------------------------- entropy

def test_checkerboard_entropy_is_ln_32_exactly():
    h = toy_entropy("checkerboard")
    assert h.entropy == math.log(32) and h.standard_error == 0.0
    assert h == (math.log(32), 0.0)                  # a named tuple
    assert grid_entropy("checkerboard") == pytest.approx(math.log(32), abs=1e-9)


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians", "two_moons", "circles"])
def test_monte_carlo_entropy_matches_the_grid_integral(name):
    h = toy_entropy(name)                            # default n and seed
    assert 0 < h.standard_error <= 0.005
    assert abs(h.entropy - grid_entropy(name)) < 4 * h.standard_error
    assert toy_entropy(name, n=2000, seed=7) == toy_entropy(name, n=2000, seed=7)
    assert toy_entropy(name, n=2000, seed=7) != toy_entropy(name, n=2000, seed=8)


def test_gaussian_mixture_entropies_against_well_separated_modes():
    # K modes that do not overlap: H = ln(2 pi e s^2) + ln K.
    _, s = toy_modes("25gaussians")                  # 40 standard deviations apart
    separated = math.log(2 * math.pi * math.e * s ** 2) + math.log(25)
    assert grid_entropy("25gaussians") == pytest.approx(separated, abs=1e-9)

    # 8gaussians' neighbours are only a = d/s = 6.12 standard deviations apart: the overlap
    # lowers H by 2 E[log(1 + exp(a Z - a^2/2))] (one term per neighbour; the others are
    # 11 s away), Z ~ N(0, 1) -- 0.0063 nats, small but above the Monte Carlo error.
    _, s = toy_modes("8gaussians")
    separated = math.log(2 * math.pi * math.e * s ** 2) + math.log(8)
    a = 2 * 2 * math.sqrt(2) * math.sin(math.pi / 8) / s
    z = np.linspace(-12, 12, 200_001)
    overlap = 2 * np.sum(np.logaddexp(0, a * z - a * a / 2) * np.exp(-z * z / 2)) \
        * (z[1] - z[0]) / math.sqrt(2 * math.pi)
    assert 0.005 < overlap < 0.008
    assert grid_entropy("8gaussians") == pytest.approx(separated - overlap, abs=1e-6)
    h = toy_entropy("8gaussians")
    assert abs(h.entropy - (separated - overlap)) < 4 * h.standard_error


# --------------------------------------------------------------------------- errors

def test_errors():
    with pytest.raises(ValueError, match="unknown toy dataset 'moons'"):
        toy_log_prob("moons", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="unknown toy dataset"):
        toy_entropy("gaussians")
    for shape in [(3,), (3, 3), (2, 3, 2), (2, 1)]:
        with pytest.raises(ValueError, match=r"shape \(n, 2\); got shape "
                           + re.escape(str(shape))):
            toy_log_prob("circles", np.zeros(shape))
    for name in INTRACTABLE:
        assert name in TOY_DATASETS
        with pytest.raises(ValueError, match=f"{name!r} has no tractable density"):
            toy_log_prob(name, np.zeros((3, 2)))
        with pytest.raises(ValueError, match="no tractable density"):
            toy_entropy(name)
    with pytest.raises(ValueError, match="integer >= 2"):
        toy_entropy("circles", n=1)
    assert toy_log_prob("8gaussians", np.zeros((0, 2))).shape == (0,)
