r"""Numbers that judge a generative model: likelihoods in bits per dimension, the
log-mean-exp behind importance-weighted bounds, the Frechet distance between Gaussians
fitted to features (FID), mode coverage on toy mixtures, and classifier accuracy.

Everything except ``log_mean_exp`` on Tensors is evaluation, not training: inputs may be
Tensors (any device) or arrays; they are copied to NumPy and computed in float64.

Bits per dimension. A model's negative log-likelihood of one example with D dimensions
(pixels times channels), in nats, becomes comparable across image sizes as

    bpd = NLL / (D ln 2)                         (ln 2 nats = 1 bit)

Log-mean-exp. Importance-weighted bounds average likelihood ratios, not their logs:
the IWAE bound with K samples z_k ~ q(z|x) is

    log p(x) >= L_K = log (1/K) sum_k p(x, z_k) / q(z_k|x) = log_mean_exp_k (log w_k)

and exp(log w_k) over- or underflows for any realistic log w_k (hundreds of nats), so
it is computed as m + log (1/K) sum_k exp(log w_k - m) with m = max_k log w_k.

Frechet distance (FID). Features of real and generated images (from a classifier's
penultimate layer) are summarised by their means and covariances, and the two Gaussians
N(mu_1, C_1), N(mu_2, C_2) compared with the squared 2-Wasserstein (Frechet) distance

    d^2 = ||mu_1 - mu_2||^2 + tr(C_1 + C_2 - 2 (C_1 C_2)^(1/2))

(Heusel et al., 2017, "GANs trained by a two time-scale update rule ...").
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend, ops
from .autograd import Tensor
from .ops.reduce import normalize_axis

__all__ = ["bits_per_dim", "log_mean_exp", "gaussian_statistics", "frechet_distance",
           "fid_from_features", "mode_coverage", "accuracy", "auroc", "compression_bits"]


def _f64(x, name=None) -> np.ndarray:
    """A float64 NumPy copy of a Tensor (any device), an array or a number."""
    a = x.numpy() if isinstance(x, Tensor) else backend.to_numpy(x)
    return np.asarray(a, dtype=np.float64)


def _scalar_or_array(a: np.ndarray):
    return float(a) if a.ndim == 0 else a


# --------------------------------------------------------------------------- likelihoods

def bits_per_dim(nll_nats, dims, scale_bits: float = 0.0):
    """Negative log-likelihood in nats per example -> bits per dimension.

        bpd = nll_nats / (D ln 2) + scale_bits

    Args:
        nll_nats: -log p(x) in nats per example: a number, or a Tensor/array of them
            (a batch gives a bpd per example; average the nats first for a data set).
        dims: D, the dimensions of one example: an int, or its shape, e.g. (1, 28, 28).
        scale_bits: log2 of the factor the discrete data were divided by before a
            continuous density was fitted: 8 for 8-bit images dequantised and scaled as
            (x + u) / 256 into [0, 1), the convention of published bpd for flows (the
            comment in the code derives it); 0, the default, reports the density's own
            -log2 p / D.

    Returns:
        a float for a scalar input, else a float64 array of nll_nats's shape.

    Example: ``bits_per_dim(80.0, (1, 28, 28))   # 0.147 bits per pixel``
    """
    # Discrete data and the dequantisation offset. 8-bit images x in {0, ..., 255}^D are
    # discrete; a continuous model (a flow) has a density p on the scaled, dequantised
    # y = (x + u) / 256, u ~ U[0, 1)^D, in [0, 1)^D. The value x owns the box
    # [x / 256, (x + 1) / 256)^D of volume 256^-D, so its probability is
    #     P(x) = 256^-D E_u[p(y)] >= 256^-D exp E_u[log p(y)]          (Jensen)
    # and, per dimension in bits,
    #     -log2 P(x) / D  <=  E_u[-log2 p(y)] / D + log2 256 = E_u[-log2 p(y)] / D + 8.
    # Published bpd of flows on CIFAR-10 and MNIST are this right-hand side: pass
    # scale_bits=8 when nll_nats is -ln p(y) of data scaled by 1/256. Other scalings give
    # other offsets, log2 of the factor the data were divided by: x / 128 - 1 in [-1, 1)
    # gives 7; x / 255 gives log2(255) = 7.994. A model of the discrete values themselves
    # (PixelCNN's softmax over 256 levels, a discretised logistic) needs no offset.
    if isinstance(dims, numbers.Integral):
        d = int(dims)
    else:
        d = int(np.prod([int(n) for n in dims]))
    if d <= 0:
        raise ValueError(f"bits_per_dim: dims must be positive; got {dims}")
    bpd = _f64(nll_nats) / (d * math.log(2.0)) + float(scale_bits)
    return _scalar_or_array(bpd)


def log_mean_exp(x, axis=None, keepdims: bool = False):
    """log((1/n) sum_i exp(x_i)) over ``axis``, without overflow or underflow.

    Computed as logsumexp(x) - log n, where logsumexp subtracts the maximum before
    exponentiating; a slice of only -inf gives -inf, a slice with +inf gives +inf (and,
    for a Tensor, the limit gradient: 1/k on its k entries equal to +inf, 0 elsewhere).

    Args:
        x: a Tensor, or an array (or list) of numbers.
        axis: int, tuple of ints, or None (all); n is the number of elements reduced.
        keepdims: keep the reduced axes with length 1.

    Returns:
        For a Tensor, a Tensor in the graph, of x's dtype and device, differentiable
        through ``tinygen.logsumexp`` (its gradient is the softmax of x over the axis;
        the - log n is a constant). For an array, a float64 NumPy array (a float when the
        result is 0-d).

    Example: ``iwae_bound = log_mean_exp(log_w, axis=0)   # log_w: (K, B) -> (B,)``
    """
    if isinstance(x, Tensor):
        axes = normalize_axis(axis, x.ndim, "log_mean_exp")
        n = int(np.prod([x.shape[i] for i in axes]))
        if n == 0:
            raise ValueError(f"log_mean_exp: no elements to average over axis {axis} "
                             f"of shape {x.shape}")
        return ops.logsumexp(x, axis=axes, keepdims=keepdims) - math.log(n)
    a = _f64(x)
    axes = normalize_axis(axis, a.ndim, "log_mean_exp")
    n = int(np.prod([a.shape[i] for i in axes]))
    if n == 0:
        raise ValueError(f"log_mean_exp: no elements to average over axis {axis} "
                         f"of shape {a.shape}")
    m = a.max(axis=axes, keepdims=True)
    m_safe = np.where(m == -np.inf, 0.0, m)  # all -inf stays -inf below, not nan
    # log 0 = -inf is the right value for -inf slices; slices with +inf (inf - inf below)
    # are +inf, as in logsumexp, and never exponentiate a large finite number
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.exp(a - m_safe).sum(axis=axes, keepdims=True) / n) + m_safe
    out = np.where(m == np.inf, m, out)
    if not keepdims:
        out = out.reshape([s for i, s in enumerate(out.shape) if i not in axes])
    return _scalar_or_array(out)


# --------------------------------------------------------------------------- FID

def gaussian_statistics(features):
    """Mean and covariance of feature vectors, as FID implementations compute them.

        mu = (1/N) sum_n f_n,    C = 1/(N - 1) sum_n (f_n - mu)(f_n - mu)^T

    Args:
        features: (N, d), N >= 2; Tensor or array.

    Returns:
        (mu (d,), C (d, d)), float64.

    Example: ``mu, cov = gaussian_statistics(classifier.features(x))``
    """
    f = _f64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"gaussian_statistics: features must have shape (N, d) with N >= 2; "
                         f"got {tuple(f.shape)}")
    if not np.isfinite(f).all():
        raise ValueError(f"gaussian_statistics: the features contain "
                         f"{int((~np.isfinite(f)).sum())} non-finite values")
    mu = f.mean(axis=0)
    centred = f - mu
    cov = centred.T @ centred / (f.shape[0] - 1)
    return mu, (cov + cov.T) / 2  # exactly symmetric


def _symmetric_psd(c, name):
    """Check a covariance matrix; return it exactly symmetrised."""
    scale = max(float(np.abs(c).max()), 1e-300)
    if not np.allclose(c, c.T, rtol=1e-6, atol=1e-9 * scale):
        raise ValueError(f"frechet_distance: {name} is not symmetric")
    return (c + c.T) / 2


def _psd_sqrt(c, name):
    """The symmetric square root V diag(sqrt w) V^T of a symmetric PSD matrix."""
    w, v = np.linalg.eigh(c)
    if w.size and w.min() < -1e-6 * max(w.max(), 0.0) - 1e-12:
        raise ValueError(f"frechet_distance: {name} is not positive semi-definite "
                         f"(smallest eigenvalue {w.min():.3g}, largest {w.max():.3g})")
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):

        d^2 = ||mu1 - mu2||^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2))

    The trace of the square root is computed from symmetric matrices only. With
    S = C1^(1/2), the symmetric square root of C1 (from its eigendecomposition),

        C1 C2 = S (S C2 S) S^-1,

    so C1 C2 is similar to M = S C2 S and has the same eigenvalues lambda_i. M is
    symmetric positive semi-definite (x^T M x = (S x)^T C2 (S x) >= 0), so the lambda_i
    are real and >= 0 and ``eigvalsh`` finds them stably. The principal square root of
    C1 C2 has eigenvalues sqrt(lambda_i), and a trace is the sum of the eigenvalues:

        tr((C1 C2)^(1/2)) = sum_i sqrt(lambda_i(S C2 S)).

    (When C1 is singular, S^-1 does not exist, but the identity holds by continuity:
    replace C1 by C1 + eps I and let eps -> 0.) This avoids the general matrix square
    root of the non-symmetric C1 C2 (``scipy.linalg.sqrtm``), which can return complex
    values and needs a fudge for near-singular covariances. Eigenvalues that rounding
    pushes slightly below zero are clipped to zero.

    Args:
        mu1, mu2: (d,) means; cov1, cov2: (d, d) symmetric positive semi-definite.
            Tensors or arrays.

    Returns:
        d^2 as a float, >= 0 (a negative value from rounding is returned as 0).

    Example: ``frechet_distance(*gaussian_statistics(f_real), *gaussian_statistics(f_fake))``
    """
    mu1, mu2, c1, c2 = _f64(mu1), _f64(mu2), _f64(cov1), _f64(cov2)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if not (mu1.shape == mu2.shape == (d,) and c1.shape == c2.shape == (d, d)):
        raise ValueError(f"frechet_distance: expected mu1, mu2 of shape (d,) and cov1, cov2 "
                         f"of shape (d, d); got {mu1.shape}, {c1.shape}, {mu2.shape}, "
                         f"{c2.shape}")
    for name, a in (("mu1", mu1), ("cov1", c1), ("mu2", mu2), ("cov2", c2)):
        if not np.isfinite(a).all():
            raise ValueError(f"frechet_distance: {name} contains non-finite values")
    c1, c2 = _symmetric_psd(c1, "cov1"), _symmetric_psd(c2, "cov2")
    s = _psd_sqrt(c1, "cov1")
    _psd_sqrt(c2, "cov2")  # only to check cov2
    m = s @ c2 @ s
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
    diff = mu1 - mu2
    d2 = float(diff @ diff) + float(np.trace(c1)) + float(np.trace(c2)) - 2.0 * tr_sqrt
    return max(d2, 0.0)


def fid_from_features(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two sets of features (the FID when
    the features come from Inception; here usually from a small classifier).

    Args:
        features_a: (N, d), features_b: (M, d); Tensors or arrays.

    Note that the estimate is biased upwards for finite samples (about proportional to
    d / N): compare FIDs computed with the same N and d only.

    Example: ``fid_from_features(net.features(x_test[:5000]), net.features(samples))``
    """
    mu1, c1 = gaussian_statistics(features_a)
    mu2, c2 = gaussian_statistics(features_b)
    if mu1.shape != mu2.shape:
        raise ValueError(f"fid_from_features: features of dimension {mu1.shape[0]} and "
                         f"{mu2.shape[0]}")
    return frechet_distance(mu1, c1, mu2, c2)


# --------------------------------------------------------------------------- toy mixtures

def mode_coverage(samples, centers, std, threshold: float = 3.0, min_count: int = 1) -> dict:
    """How many modes of a toy Gaussian mixture a generator covers, and how well.

    The rule of VEEGAN (Srivastava et al., 2017) and PacGAN (Lin et al., 2018) on the
    ring of 8 and grid of 25 Gaussians:

    1. each sample is assigned to its nearest centre (Euclidean distance);
    2. it is *high quality* if that distance is at most ``threshold * std`` of that mode
       (3 standard deviations by default);
    3. a mode is *covered* if it receives at least ``min_count`` high-quality samples
       (1 by default, as in those papers; some authors ask for more, e.g. a fraction of
       the N / K samples a mode would get from a perfect generator).

    Args:
        samples: (N, d) generated points; centers: (K, d) the mixture's means.
        std: the components' standard deviation: a number, or (K,) one per mode.
        threshold: the radius in standard deviations.
        min_count: high-quality samples a mode needs to count as covered.

    Returns:
        {"modes_covered": int, "num_modes": K, "high_quality_fraction": float (of N),
         "counts": (K,) int64 array, the high-quality samples assigned to each mode}

    Example: ``mode_coverage(gan.sample(2500), ring8_centers, std=0.02)["modes_covered"]``
    """
    x, c = _f64(samples), _f64(centers)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1] or x.shape[0] == 0 \
            or c.shape[0] == 0:
        raise ValueError(f"mode_coverage: samples (N, d) and centers (K, d) with N, K >= 1; "
                         f"got {tuple(x.shape)} and {tuple(c.shape)}")
    if not np.isfinite(c).all():
        raise ValueError("mode_coverage: the centers contain non-finite values")
    k = c.shape[0]
    s = _f64(std)
    if s.ndim == 0:
        s = np.full(k, float(s))
    if s.shape != (k,) or not (s > 0).all():
        raise ValueError(f"mode_coverage: std must be positive, a number or one per mode "
                         f"({k},); got {std!r}")
    # Squared distances (N, K) from |x|^2 - 2 x.c + |c|^2: one matrix product, no (N, K, d)
    # intermediate; clipped at 0 against rounding. Non-finite samples (a diverged
    # generator) are nobody's high-quality sample.
    finite = np.isfinite(x).all(axis=1)
    xf = np.where(finite[:, None], x, 0.0)
    d2 = (xf ** 2).sum(1)[:, None] - 2 * xf @ c.T + (c ** 2).sum(1)[None, :]
    d2 = np.clip(d2, 0.0, None)
    nearest = d2.argmin(axis=1)
    dist = np.sqrt(d2[np.arange(len(x)), nearest])
    good = finite & (dist <= threshold * s[nearest])
    counts = np.bincount(nearest[good], minlength=k).astype(np.int64)
    return {"modes_covered": int((counts >= int(min_count)).sum()),
            "num_modes": int(k),
            "high_quality_fraction": float(good.mean()),
            "counts": counts}


# --------------------------------------------------------------------------- classifiers

def accuracy(predictions_or_logits, labels) -> float:
    """Fraction of correct predictions.

    Args:
        predictions_or_logits: (N, K) scores (logits or probabilities; the class is the
            argmax over the last axis), or (N,) predicted class indices. For a binary
            classifier with one logit per example pass ``logits > 0``.
        labels: (N,) true class indices. Both: Tensors or arrays.

    Returns:
        a float in [0, 1].

    Example: ``accuracy(model(x_test), y_test)``
    """
    def host(a):
        return a.numpy() if isinstance(a, Tensor) else backend.to_numpy(a)

    p, y = np.asarray(host(predictions_or_logits)), np.asarray(host(labels))
    if p.ndim == y.ndim + 1:
        p = p.argmax(axis=-1)
    elif p.shape == y.shape and p.dtype.kind == "f" and not np.array_equal(p, np.round(p)):
        raise ValueError("accuracy: predictions of the labels' shape must be class indices; "
                         "got non-integer floats (for one logit per example pass logits > 0)")
    if p.shape != y.shape or y.size == 0:
        raise ValueError(f"accuracy: predictions {tuple(np.shape(host(predictions_or_logits)))} "
                         f"do not match labels {tuple(y.shape)} (expected (N, K) or (N,) "
                         "and (N,), N >= 1)")
    return float((p == y).mean())


def auroc(scores_negative, scores_positive) -> float:
    """The area under the ROC curve of a score that should be higher for the positives:
    the probability that a random positive scores above a random negative, ties counted
    one half (the Mann-Whitney U statistic over n_neg n_pos; Hanley & McNeil 1982).

    1 separates perfectly, 0.5 is chance, below 0.5 ranks the two the wrong way round.
    Used with -log p(x) as the score of out-of-distribution inputs (the positives).

    Args:
        scores_negative: (n_neg,) scores of the negatives (e.g. in-distribution test data).
        scores_positive: (n_pos,) scores of the positives; Tensors or arrays, finite.
    Raises:
        ValueError: either is empty or holds NaN.
    """
    neg = _f64(scores_negative, "auroc").ravel()
    pos = _f64(scores_positive, "auroc").ravel()
    if neg.size == 0 or pos.size == 0:
        raise ValueError(f"auroc: needs at least one score of each kind, got {neg.size} "
                         f"negatives and {pos.size} positives")
    if np.isnan(neg).any() or np.isnan(pos).any():
        raise ValueError("auroc: the scores hold NaN")
    # The rank-sum form of U: sort all scores once, give tied scores their mean rank.
    scores = np.concatenate([neg, pos])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    mean_rank = (starts + ends + 1) / 2   # ranks start + 1 .. end, averaged
    ranks[order] = np.repeat(mean_rank, ends - starts)
    u = ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(neg) * len(pos)))


def compression_bits(images) -> np.ndarray:
    """The input complexity of Serra et al. (2020, "Input complexity and out-of-
    distribution detection with likelihood-based generative models"): the length in bits
    of each 8-bit image compressed losslessly, here by zlib (DEFLATE, level 9, the
    compressor inside PNG), one number per image.

    Args:
        images: (N, ...) pixels in [0, 1] (rounded to the 256 levels) or uint8.
    Returns:
        float64 (N,): bits per image.
    """
    import zlib
    a = np.asarray(images)
    if a.dtype != np.uint8:
        a = np.rint(np.clip(_f64(a), 0, 1) * 255).astype(np.uint8)
    return np.array([8.0 * len(zlib.compress(img.tobytes(), 9)) for img in a])
