"""Two-dimensional toy distributions, generated in code.

In two dimensions a density, an energy or a vector field can be drawn, and a model's
samples compared with the data by eye. These are the standard test beds of the GAN,
normalizing-flow and score-matching literature; each lies roughly in [-4, 4]^2.

    two_moons     two interleaving half circles with Gaussian noise (sklearn's
                  make_moons, noise 0.1, mapped as in FFJORD: 2 x + (-1, -0.2)).
    circles       two concentric circles of radius 3 and 1.5, Gaussian noise of
                  standard deviation 0.24 (make_circles, factor 0.5, noise 0.08, times 3).
    8gaussians    eight Gaussians, std 1/(2 sqrt 2) ~ 0.35, centred on a circle of
                  radius 2 sqrt 2 ~ 2.83 at angles k pi/4 (FFJORD's definition): eight
                  well-separated modes, the classic test of GAN mode collapse.
    25gaussians   25 Gaussians, std 0.05, centred on the grid {-4, -2, 0, 2, 4}^2
                  (VEEGAN, PacGAN): many small modes to cover.
    swiss_roll    the 2-D section of sklearn's swiss roll: t (cos t, sin t) with
                  t ~ U[1.5 pi, 4.5 pi], Gaussian noise of std 1, all divided by 5.
    checkerboard  uniform on the black squares of a 4 x 4 checkerboard of side-2
                  squares covering [-4, 4]^2 (FFJORD): sharp edges, disconnected support.
    pinwheel      five curved arms (Johnson et al. 2016, as in FFJORD): a point at
                  radius r ~ N(1, 0.3^2), tangential offset ~ N(0, 0.1^2), rotated by
                  the arm's angle 2 pi k / 5 plus 0.25 exp(r), times 2.
    two_spirals   two interleaved spirals, each point t (-cos t, sin t) for
                  t = 3 pi sqrt(U), with a small uniform jitter, the second spiral the
                  mirror image of the first, divided by 3, plus noise of std 0.1 (FFJORD).

Each mixture component (moon, circle, arm, spiral, Gaussian) is chosen independently
per sample, so a sample is i.i.d. The Gaussian mixtures' centres and standard
deviation are available from ``toy_modes``, for counting how many modes a generator
covers.

Exact densities, for judging a density model (a normalizing flow's test NLL, in nats):
``toy_log_prob(name, x)`` is log p(x) for the five sets where it is known (the two
Gaussian mixtures and the checkerboard in closed form; the moons and circles, a curve
blurred by Gaussian noise, by quadrature over the curve's angle), and
``toy_entropy(name)`` is their differential entropy H = -E[log p(x)]: no model's expected
test NLL on the set can be below it. swiss_roll, pinwheel and two_spirals have no
tractable density (a warped or jittered noise), and both functions refuse them.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from .. import random as _random

__all__ = ["TOY_DATASETS", "ToyEntropy", "toy", "toy_entropy", "toy_log_prob", "toy_modes"]

TOY_DATASETS = ("two_moons", "circles", "8gaussians", "25gaussians", "swiss_roll",
                "checkerboard", "pinwheel", "two_spirals")


def _check_name(name):
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}; known: {', '.join(TOY_DATASETS)}")


def toy_modes(name):
    """The modes of a Gaussian-mixture toy dataset: (centers float32 (K, 2), std).

    K = 8 for "8gaussians", 25 for "25gaussians"; every component has covariance
    std^2 I and weight 1/K.
    """
    _check_name(name)
    if name == "8gaussians":
        angles = np.arange(8) * (np.pi / 4)
        centers = 2 * np.sqrt(2) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return centers.astype(np.float32), float(1 / (2 * np.sqrt(2)))
    if name == "25gaussians":
        grid = np.arange(-4, 5, 2, dtype=np.float64)
        centers = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
        return centers.astype(np.float32), 0.05
    raise ValueError(f"toy_modes: {name!r} is not a Gaussian mixture; only "
                     "'8gaussians' and '25gaussians' have modes")


def _mixture(name, n, rng):
    centers, std = toy_modes(name)
    k = rng.integers(0, len(centers), size=n)
    return centers[k].astype(np.float64) + std * rng.standard_normal((n, 2))


def _two_moons(n, rng):
    t = np.pi * rng.random(n)
    upper = rng.random(n) < 0.5
    # Upper moon: the top half of the unit circle; lower moon: its mirror image, moved
    # right by 1 and down by 0.5, so the two interleave.
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x, y], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return 2 * points + np.array([-1.0, -0.2])


def _circles(n, rng):
    radius = np.where(rng.random(n) < 0.5, 1.0, 0.5)
    angle = 2 * np.pi * rng.random(n)
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return 3 * (points + 0.08 * rng.standard_normal((n, 2)))


def _swiss_roll(n, rng):
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    return (points + rng.standard_normal((n, 2))) / 5


def _checkerboard(n, rng):
    x1 = 4 * rng.random(n) - 2                           # uniform on [-2, 2)
    # y in [0, 1) or [-2, -1), then shifted up by 1 in the odd columns: the square
    # (floor x1, floor y) always has floor x1 + floor y even.
    x2 = rng.random(n) - 2 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
    return 2 * np.stack([x1, x2], axis=1)


def _pinwheel(n, rng, arms=5, radial_std=0.3, tangential_std=0.1, rate=0.25):
    arm = rng.integers(0, arms, size=n)
    features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1
    # Farther out along the arm means more rotation: that is what curves the arms.
    angle = 2 * np.pi * arm / arms + rate * np.exp(features[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    # (r, o) times the rotation matrix [[c, -s], [s, c]], as a row vector.
    points = np.stack([features[:, 0] * c + features[:, 1] * s,
                       -features[:, 0] * s + features[:, 1] * c], axis=1)
    return 2 * points


def _two_spirals(n, rng):
    t = np.sqrt(rng.random(n)) * 3 * np.pi  # sqrt: uniform along the spiral's length
    jitter = 0.5 * rng.random((n, 2))
    points = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) + jitter
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    return sign * points / 3 + 0.1 * rng.standard_normal((n, 2))


_SAMPLERS = {
    "two_moons": _two_moons,
    "circles": _circles,
    "8gaussians": lambda n, rng: _mixture("8gaussians", n, rng),
    "25gaussians": lambda n, rng: _mixture("25gaussians", n, rng),
    "swiss_roll": _swiss_roll,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "two_spirals": _two_spirals,
}


def toy(name, n, seed=None):
    """n i.i.d. samples of a toy distribution: float32 (n, 2).

    name: one of ``TOY_DATASETS`` (described in this module's docstring).
    seed: the same seed gives the same points. Without one the points come from a
        generator seeded by tinygen's global generator (``tinygen.manual_seed``).
    """
    _check_name(name)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"toy: n must be a non-negative integer; got {n!r}")
    rng = _random.generator(seed)
    # Computed in float64 and rounded once at the end.
    return _SAMPLERS[name](int(n), rng).astype(np.float32)


# --------------------------------------------------------------------------- densities

# Each moon and circle is a curve c(t) = centre + R (cos t, sin t), t uniform on an arc
# [t0, t0 + L], blurred by N(0, s^2 I):  (centre, R, t0, L) per component, and s.
_ARCS = {
    # 2 * ((cos t, sin t) + 0.1 eps) + (-1, -0.2), and 2 * ((1 - cos t, 0.5 - sin t) +
    # 0.1 eps) + (-1, -0.2) = (1, 0.8) + 2 (cos(t + pi), sin(t + pi)), t ~ U[0, pi].
    "two_moons": ([((-1.0, -0.2), 2.0, 0.0, math.pi), ((1.0, 0.8), 2.0, math.pi, math.pi)],
                  0.2),
    # 3 * (R (cos t, sin t) + 0.08 eps), R in {1, 0.5}, t ~ U[0, 2 pi].
    "circles": ([((0.0, 0.0), 3.0, 0.0, 2 * math.pi), ((0.0, 0.0), 1.5, 0.0, 2 * math.pi)],
                0.24),
}
_EXACT = ("two_moons", "circles", "8gaussians", "25gaussians", "checkerboard")
_LOG_CHECKERBOARD = -math.log(32.0)  # 8 black squares of side 2: area 32
_CHUNK = 4096                        # points per block of the quadrature


class ToyEntropy(NamedTuple):
    """A differential entropy in nats and its Monte Carlo standard error (0 if exact)."""

    entropy: float
    standard_error: float


def _logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(a - m), axis=axis)) + np.squeeze(m, axis=axis)


@functools.lru_cache(maxsize=None)
def _tanh_sinh(m=128, T=3.0):
    """Double-exponential (tanh-sinh) nodes u and weights w for integrals over [0, 1]:
    u = (1 + tanh((pi/2) sinh tau)) / 2, the trapezoid rule in tau on [-T, T]. The nodes
    crowd double-exponentially into both ends, which is where the quadrature below
    puts the integrand's maximum."""
    tau = np.linspace(-T, T, m)
    s = 0.5 * np.pi * np.sinh(tau)
    u = 1 / (1 + np.exp(-2 * s))  # = (1 + tanh s) / 2, accurate near 0 and near 1
    w = (tau[1] - tau[0]) * 2 * u * (1 - u) * 0.5 * np.pi * np.cosh(tau)
    return u, w


def _arc_log_density(x, centre, R, t0, L, s):
    """log (1/L) int_{t0}^{t0+L} N(x; centre + R (cos t, sin t), s^2 I) dt: float64 (n,).

    With x - centre = r (cos phi, sin phi) and a = t - phi,
        |x - c(t)|^2 = (r - R)^2 + 4 r R sin^2(a/2),
    so the integrand is a bump in a, highest at a = 0 (t = phi: the point of the circle
    nearest x), of width about s / sqrt(r R). The arc is cut at that point when the arc
    contains it (at its middle otherwise), and each piece is integrated by tanh-sinh
    quadrature in log space (logsumexp), whose nodes crowd into the piece's ends: the
    bump's top and the arc's ends are then always resolved, however far x lies and so
    however narrow the bump. Error: below 1e-9 in log p (relative error in p) within
    distance 100 of the centre, about 1e-7 at distance 1000, where log p ~ -1e7 (checked
    against 2048-point Gauss-Legendre).
    """
    d = x - np.asarray(centre)
    r = np.hypot(d[:, 0], d[:, 1])
    phi = np.arctan2(d[:, 1], d[:, 0])
    if L >= 2 * np.pi:    # a full circle: cut at phi and at its antipode
        beta = np.full(len(x), np.pi)
    else:                 # beta: where phi lies along the arc, in [0, 2 pi)
        beta = np.mod(phi - t0, 2 * np.pi)
    start = -beta[:, None]                        # the arc runs over a in [-beta, L - beta]
    cut = np.where(beta <= L, 0.0, 0.5 * L - beta)[:, None]  # the top, or the middle
    u, w = _tanh_sinh()
    len1, len2 = cut - start, (L + start) - cut
    a = np.concatenate([start + len1 * u, cut + len2 * u], axis=1)
    with np.errstate(divide="ignore"):            # a piece of length 0: log 0 = -inf
        log_w = np.log(np.concatenate([len1 * w, len2 * w], axis=1) / L)
    exponent = -(2 * r * R / s ** 2)[:, None] * np.sin(0.5 * a) ** 2
    return (_logsumexp(log_w + exponent, axis=1) - (r - R) ** 2 / (2 * s ** 2)
            - math.log(2 * math.pi * s ** 2))


def _curve_log_prob(name, x):
    arcs, s = _ARCS[name]
    out = np.empty(len(x))
    for i in range(0, len(x), _CHUNK):
        block = x[i:i + _CHUNK]
        parts = np.stack([_arc_log_density(block, *arc, s) for arc in arcs], axis=1)
        out[i:i + _CHUNK] = _logsumexp(parts, axis=1) - math.log(len(arcs))
    return out


def _mixture_log_prob(name, x):
    centers, std = toy_modes(name)
    centers = centers.astype(np.float64)
    out = np.empty(len(x))
    for i in range(0, len(x), _CHUNK):
        d2 = ((x[i:i + _CHUNK, None, :] - centers[None]) ** 2).sum(-1)
        out[i:i + _CHUNK] = _logsumexp(-d2 / (2 * std ** 2), axis=1)
    return out - math.log(len(centers)) - math.log(2 * math.pi * std ** 2)


def _checkerboard_log_prob(x):
    # _checkerboard draws the square (floor x1, floor x2) of side 1 with floor x1 + floor x2
    # even, then doubles: the black squares are the side-2 squares in [-4, 4]^2 with
    # floor(x1/2) + floor(x2/2) even. A point counts as inside when it lies in a closed
    # black square: on an edge it also looks at the square below / to its left, so that a
    # float32 sample rounded onto an edge is never given -inf (edges have no area).
    h = x / 2                     # exact: a power of two
    lo = np.floor(h)
    below = np.where(h == lo, lo - 1, lo)
    inside = np.zeros(len(x), dtype=bool)
    for i in (lo[:, 0], below[:, 0]):
        for j in (lo[:, 1], below[:, 1]):
            inside |= ((i >= -2) & (i <= 1) & (j >= -2) & (j <= 1) & ((i + j) % 2 == 0))
    return np.where(inside, _LOG_CHECKERBOARD, -np.inf)


def _check_exact(name, caller):
    _check_name(name)
    if name not in _EXACT:
        raise ValueError(f"{caller}: {name!r} has no tractable density (a nonlinearly "
                         "warped or jittered noise); exact densities are known only for "
                         f"{', '.join(_EXACT)}")


def toy_log_prob(name, x):
    """The exact log-density of a toy distribution at points x: float64 (n,), in nats.

    name: one of "two_moons", "circles", "8gaussians", "25gaussians", "checkerboard".
    x: array-like (n, 2), any real dtype (computed in float64).

    The densities (s the noise standard deviation, N a Gaussian density):
      8gaussians, 25gaussians  p(x) = (1/K) sum_k N(x; mu_k, s^2 I), the centres and s
          of ``toy_modes``, summed as a logsumexp (finite however far x lies).
      checkerboard  p = 1/32 on the 8 closed black squares of side 2 (total area 32:
          floor(x1/2) + floor(x2/2) even, inside [-4, 4]^2), log p = -inf elsewhere.
      two_moons  p(x) = (1/2) sum_{moon} (1/pi) integral_0^pi N(x; c_moon(t), 0.2^2 I) dt,
          c_upper(t) = (-1, -0.2) + 2 (cos t, sin t),
          c_lower(t) = (1, 0.8) - 2 (cos t, sin t)
          (the sampler adds noise 0.1 before doubling: s = 0.2).
      circles  p(x) = (1/2) sum_{R in (3, 1.5)} (1/(2 pi)) integral_0^{2 pi}
          N(x; R (cos t, sin t), 0.24^2 I) dt
          = (1/2) sum_R exp(-(r - R)^2 / (2 s^2)) I0e(r R / s^2) / (2 pi s^2), r = |x|,
          I0e(z) = exp(-z) I0(z), the scaled modified Bessel function.
      The moons' and circles' integrals over the angle are done numerically, by
      tanh-sinh quadrature (2 x 128 nodes per curve, the curve cut at the point nearest
      x) in log space: the error in log p (the relative error in p) is below 1e-9 for
      |x| up to 100 and about 1e-7 at |x| = 1000.

    Raises ValueError for an unknown name, for swiss_roll, pinwheel and two_spirals (no
    tractable density: their noise passes through a nonlinear map or a uniform jitter),
    and for x not of shape (n, 2).
    """
    _check_exact(name, "toy_log_prob")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"toy_log_prob: x must have shape (n, 2); got shape {x.shape}")
    x = x.astype(np.float64)
    if name in _ARCS:
        return _curve_log_prob(name, x)
    if name == "checkerboard":
        return _checkerboard_log_prob(x)
    return _mixture_log_prob(name, x)


def toy_entropy(name, n=100_000, seed=0):
    """The differential entropy H = -E[log p(x)] of a toy distribution, in nats.

    Returns ``ToyEntropy(entropy, standard_error)``. A density model's expected test
    NLL on the set (nats per point) is at least H, with equality only for the true
    density: H is the floor of the NLL a normalizing flow can reach.

    checkerboard: exactly ln 32 ~ 3.4657 (uniform on area 32), standard error 0.
    The others: the Monte Carlo estimate -mean_i log p(x_i) over x = toy(name, n, seed)
    (``toy_log_prob`` at the float32 samples), with standard error
    std_i(log p(x_i)) / sqrt(n): at the default n = 100000 (about a second for the moons
    and circles) it is about 0.003 nats (Var log p is about 1 for the two mixtures, 0.6
    for the moons and circles). The same seed gives the same estimate; seed=None follows
    tinygen's global generator.

    For reference, -integral p log p on a fine grid (tests/test_toy_density.py):
    8gaussians 2.8316, 25gaussians 0.0653, two_moons 2.3939, circles 3.2681. For the
    Gaussian mixtures, ln(2 pi e s^2) + ln K (modes that do not overlap) gives 0.0653
    and 2.8379: the 8 modes, 6.1 standard deviations from their neighbours, overlap
    enough to lower H by 0.0063 nats.

    Raises ValueError for an unknown name, for swiss_roll, pinwheel and two_spirals, and
    for n not an integer >= 2.
    """
    _check_exact(name, "toy_entropy")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"toy_entropy: n must be an integer >= 2; got {n!r}")
    if name == "checkerboard":
        return ToyEntropy(-_LOG_CHECKERBOARD, 0.0)
    log_p = toy_log_prob(name, toy(name, int(n), seed=seed))
    standard_error = log_p.std(ddof=1) / math.sqrt(len(log_p))
    return ToyEntropy(float(-log_p.mean()), float(standard_error))
