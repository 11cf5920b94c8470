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
"""
from __future__ import annotations

import numpy as np

from .. import random as _random

__all__ = ["TOY_DATASETS", "toy", "toy_modes"]

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
