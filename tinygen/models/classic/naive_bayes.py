"""Naive Bayes against logistic regression: a generative and a discriminative classifier
of the same form, after Ng & Jordan (2002), "On Discriminative vs. Generative Classifiers:
A comparison of logistic regression and naive Bayes" (NIPS 14); the naive Bayes model as
in Murphy (2012), "Machine Learning: A Probabilistic Perspective", sections 3.5 and 8.6.

Both classify binary images x in {0, 1}^D (D = 784 pixels) into K classes (K = 10 digits).

The generative classifier: naive Bayes. It models the joint p(x, y): a class is drawn
from its prior, then every pixel independently of the others given the class,

    y ~ Categorical(pi),      x_d | y = k ~ Bernoulli(theta_kd),   d = 1..D,

    p(x, y = k) = pi_k prod_d theta_kd^{x_d} (1 - theta_kd)^{1 - x_d}.               (1)

Fitting it is counting. With N_k the training images of class k and N_kd those of them
with pixel d on, the posterior means under a Dirichlet(alpha, ..., alpha) prior on pi and
a Beta(alpha, alpha) prior on each theta_kd are

    pi_k = (N_k + alpha) / (N + K alpha),   theta_kd = (N_kd + alpha) / (N_k + 2 alpha)  (2)

(alpha pseudo-counts added to every outcome; alpha = 1 is Laplace's rule of succession,
alpha -> 0 the maximum-likelihood ratios N_k / N and N_kd / N_k, which put log 0 on any
pixel a class never showed, hence alpha > 0). The class-conditional log-likelihood is a
sum over pixels,

    log p(x | y = k) = sum_d [x_d log theta_kd + (1 - x_d) log(1 - theta_kd)],       (3)

and classification is Bayes' rule, in log space (the joint of a typical digit is about
e^-170, that of an unusual one can fall below e^-745, where float64 ends):

    log p(y = k | x) = log pi_k + log p(x | y = k) - log p(x),
    log p(x) = logsumexp_j [log pi_j + log p(x | y = j)],
    y_hat = argmax_k log p(y = k | x) = argmax_k [log pi_k + log p(x | y = k)].         (4)

Missing pixels. Let O be the observed pixels and M the missing ones. The generative model
answers with the marginal of what it saw: summing the joint (1) over every value of the
missing pixels, the product splits and each missing pixel's factor sums to one,

    p(x_O, y = k) = sum_{x_M} pi_k prod_{d in O} p(x_d | k) prod_{d in M} p(x_d | k)
                  = pi_k prod_{d in O} p(x_d | k) prod_{d in M} sum_{x_d = 0, 1} p(x_d | k)
                  = pi_k prod_{d in O} p(x_d | k),                                   (5)

so a missing pixel simply drops its term from (3), and (4) runs on what is left: with the
mask m_d = 1 for an observed pixel, log p(x_O | k) = sum_d m_d [x_d log theta_kd + (1 -
x_d) log(1 - theta_kd)]. This is exact whenever which pixels go missing depends neither on
their values nor on the class (the test images here lose a random subset of their pixels:
missing completely at random). A pixel whose theta_kd is the same for every class adds the same term
to every class's log-joint, which cancels in (4): observing it or not leaves the posterior
as it was.

The discriminative classifier: multinomial logistic regression (softmax regression)
models p(y | x) only,

    p(y = k | x) = softmax(W x + b)_k = exp(w_k . x + b_k) / sum_j exp(w_j . x + b_j),  (6)

W (K, D), b (K,), fitted by minimising the mean cross-entropy with an L2 penalty (a
Gaussian prior on the weights: MAP),

    L(W, b) = -(1/N) sum_n log p(y_n | x_n) + (lambda / 2) ||W||^2,
    grad_W L = (1/N) (P - Y)^T X + lambda W,      grad_b L = (1/N) sum_n (p_n - y_n),  (7)

(P (N, K) the predicted probabilities, Y the one-hot labels, X (N, D)): no closed form, so
tinygen's autograd computes (7) and Adam follows it. The objective is convex.

The two are a "generative-discriminative pair" (Ng & Jordan): the naive Bayes posterior (4)
is itself of the form (6), with

    W_kd = log theta_kd - log(1 - theta_kd),     b_k = log pi_k + sum_d log(1 - theta_kd),  (8)

so both choose from the same family of linear classifiers; naive Bayes picks its member
by maximising the joint likelihood p(x, y) (counts, eq. (2)), logistic regression by
maximising the conditional likelihood p(y | x) (eq. (7)). Ng & Jordan show that naive
Bayes approaches its (higher) asymptotic error with O(log D) examples, logistic regression
its lower one with O(D): the generative model wins with little data, the discriminative
one with much.

Logistic regression has no model of x, so it cannot sum out a missing pixel; the pixel
must be filled in (imputed) before (6) is applied:

    x~_d = x_d for an observed pixel, c_d for a missing one,                         (9)

with c = 0 ("no ink", the default here) or c = mu, the training mean of each pixel. Zero
is the fairer fill for a linear model on pixels that go missing at random: over a random
mask hiding a fraction q of the pixels, E[W x~] = (1 - q) W x, every class's evidence
shrunk by the same factor, which leaves their ranking (but for b) as it was: it is input
dropout. The mean adds q W mu, the logits of the average image, the same offset for every
image and a different one for every class. (The argument for the mean, E[x_M] = mu_M,
forgets that the missing pixels depend on the class, the very thing inferred.) Measured
on MNIST, with 60,000 training images and half of the test pixels missing: the mean sends
2,282 of the 10,000 test digits to class 8 and 178 to class 1 (W mu is +0.9 for the 8s,
-6.6 for the 1s), 73.9% accuracy against 84.4% with zeros; on held-out training images
the zeros win at 50% missing for every training size (by 2 to 11 points) and tie at 25%.
(Naive Bayes needs no such choice: eq. (5).)

Being generative, naive Bayes also samples (ancestral sampling of (1)): y ~ pi, then every
pixel x_d ~ Bernoulli(theta_yd); the class means E[x | y = k] = theta_k are images.

Symbols and code:

    symbol                 code                                       shape
    x, y                   x, y                                       (N, D) 0/1, (N,) int
    m (observed mask)      observed                                   (N, D) bool
    pi, theta              BernoulliNaiveBayes.pi, .theta             (K,), (K, D)
    log p(x_O | y = k)     log_likelihood(x, observed)                (N, K) nats
    log p(x_O, y = k)      log_joint(x, observed)                     (N, K) nats
    log p(y = k | x_O)     log_posterior(x, observed)                 (N, K) nats
    log p(x_O)             log_evidence(x, observed)                  (N,) nats
    W, b                   LogisticRegression.linear.weight, .bias    (K, D), (K,)
    c (imputed value)      LogisticRegression.fill                    (D,)
"""
from __future__ import annotations

import math

import numpy as np

from ... import nn, no_grad, tensor
from ...autograd import Tensor
from ...backend import to_numpy
from ...nn import functional as F
from ...random import generator as new_generator


# ------------------------------------------------------------------------------ input checks

def _as_numpy(a):
    """A NumPy array of a Tensor, a CuPy or NumPy array, or a list."""
    return a.numpy() if isinstance(a, Tensor) else to_numpy(a)


def _check_images(x, num_features: int, fn: str, observed=None):
    """x (N, D) or (N, ...) with prod(...) = D as float64 (N, D), and the observed mask as
    bool (N, D) (all True when None). Raises TypeError for a mask that is not boolean
    or x that is not numeric, ValueError for a wrong shape, a mask that
    does not match, or an observed pixel that is not 0 or 1 (NaN included); missing pixels
    may hold anything."""
    x = _as_numpy(x)
    shape = tuple(x.shape)
    if x.ndim < 2 or int(np.prod(shape[1:])) != num_features:
        raise ValueError(f"{fn}: x must have shape (N, {num_features}) (or (N, ...) with "
                         f"{num_features} values per example); got {shape}")
    x = x.reshape(len(x), num_features)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: x must hold the numbers 0 and 1; got dtype {x.dtype}")
    if observed is None:
        m = np.ones(x.shape, bool)
    else:
        m = _as_numpy(observed)
        if m.dtype != bool:
            raise TypeError(f"{fn}: observed must be a boolean mask (True where a pixel is "
                            f"seen); got dtype {m.dtype}")
        if tuple(m.shape) == shape:
            m = m.reshape(x.shape)
        elif tuple(m.shape) not in (x.shape, (num_features,)):
            raise ValueError(f"{fn}: observed of shape {tuple(m.shape)} does not match x of "
                             f"shape {shape}: give one mask per example, {x.shape}, or one "
                             f"for all, ({num_features},)")
        m = np.broadcast_to(m, x.shape)
    bad = m & (x != 0) & (x != 1)
    if bad.any():
        n, d = map(int, np.argwhere(bad)[0])
        raise ValueError(f"{fn}: x must be binary (0 or 1) at every observed pixel; got "
                         f"{x[n, d]!r} at example {n}, pixel {d} (binarise first, e.g. "
                         "x > 0.5, or mark the pixel missing)")
    return x.astype(np.float64), m


def _check_labels(y, num_classes: int, n: int, fn: str) -> np.ndarray:
    """y as int64 (N,); ValueError for a wrong length, non-integers or a label outside
    0..K-1."""
    y = _as_numpy(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{fn}: y must have shape ({n},), one label per example of x; got "
                         f"{tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind != "f" or not np.all(y == np.round(y)):
            raise ValueError(f"{fn}: y must hold integer class labels; got dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)][0]
        raise ValueError(f"{fn}: labels must lie in 0..{num_classes - 1}; got {bad.item()!r}")
    return y.astype(np.int64)


def _check_size(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _logsumexp(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.exp(a - top).sum(axis=axis))


# ------------------------------------------------------------------------------- naive Bayes

class BernoulliNaiveBayes(nn.Module):
    """Bernoulli naive Bayes, eq. (1): a class prior pi (K,) and per-class pixel
    probabilities theta (K, D), kept as float64 buffers (saved with ``state_dict``).

    Args:
        num_features: D, binary pixels per example.
        num_classes: K.
        alpha: the prior's pseudo-count per outcome (Dirichlet(alpha) on pi, Beta(alpha,
            alpha) on every theta_kd), > 0; 1 is Laplace smoothing.

    A fresh model is the uninformed one (pi uniform, theta 0.5) until ``fit``.
    Every method runs on NumPy (closed forms; nothing to differentiate) and takes x of
    shape (N, D) (or (N, ...) with D values per example) with entries 0 and 1, and an
    optional ``observed`` mask, boolean, (N, D) or (D,) (True: seen; None: all seen);
    missing pixels are summed out, eq. (5), so their values in x are ignored.

    Raises ValueError for sizes below 1 or alpha <= 0 (or not finite).
    """

    def __init__(self, num_features: int, num_classes: int = 10, alpha: float = 1.0):
        super().__init__()
        self.num_features = _check_size("BernoulliNaiveBayes", "num_features", num_features)
        self.num_classes = _check_size("BernoulliNaiveBayes", "num_classes", num_classes)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) \
                or not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"BernoulliNaiveBayes: alpha must be a positive number (the "
                             f"prior's pseudo-count), got {alpha!r}")
        self.alpha = float(alpha)
        self.register_buffer("pi", tensor(np.full(num_classes, 1 / num_classes)))
        self.register_buffer("theta", tensor(np.full((num_classes, num_features), 0.5)))

    def extra_repr(self):
        return (f"num_features={self.num_features}, num_classes={self.num_classes}, "
                f"alpha={self.alpha}")

    # ---- fitting: eq. (2)
    def fit(self, x, y) -> "BernoulliNaiveBayes":
        """Set pi and theta to their posterior means, eq. (2), from complete binary x
        (N, D) and labels y (N,) in 0..K-1; returns the model.

        The counts are two matrix products: N_k = sum_n [y_n = k] and N_kd = (Y^T X)_kd
        with Y the one-hot labels (N, K). A class absent from the data gets pi_k =
        alpha / (N + K alpha) and theta_kd = 1/2.

        Raises ValueError for non-binary x, a shape mismatch, or labels out of range.
        """
        x, _ = _check_images(x, self.num_features, "BernoulliNaiveBayes.fit")
        y = _check_labels(y, self.num_classes, len(x), "BernoulliNaiveBayes.fit")
        K, a = self.num_classes, self.alpha
        Y = np.eye(K)[y]                       # (N, K) one-hot
        N_k = Y.sum(axis=0)                    # (K,)
        N_kd = Y.T @ x                         # (K, D)
        self.pi.data[...] = (N_k + a) / (len(x) + K * a)
        self.theta.data[...] = (N_kd + a) / (N_k[:, None] + 2 * a)
        return self

    # ---- the likelihood, Bayes' rule and the evidence: eqs. (3)-(5)
    def log_likelihood(self, x, observed=None) -> np.ndarray:
        """log p(x_O | y = k) for every example and class, eqs. (3) and (5): (N, K)
        float64, nats. Missing pixels (observed False) drop their terms."""
        x, m = _check_images(x, self.num_features, "log_likelihood", observed)
        theta = to_numpy(self.theta.data)
        on = np.where(m, x, 0.0)   # m_d x_d, never reading a missing value (NaN stays out)
        off = m - on                           # m_d (1 - x_d)
        return on @ np.log(theta).T + off @ np.log1p(-theta).T

    def log_joint(self, x, observed=None) -> np.ndarray:
        """log p(x_O, y = k) = log pi_k + log p(x_O | y = k): (N, K) float64, nats."""
        return np.log(to_numpy(self.pi.data)) + self.log_likelihood(x, observed)

    def log_posterior(self, x, observed=None) -> np.ndarray:
        """log p(y = k | x_O) by Bayes' rule in log space, eq. (4): (N, K) float64, nats;
        each row's exponentials sum to 1."""
        joint = self.log_joint(x, observed)
        return joint - _logsumexp(joint, axis=1)[:, None]

    def log_evidence(self, x, observed=None) -> np.ndarray:
        """log p(x_O) = logsumexp_k log p(x_O, y = k), eq. (4): (N,) float64, nats (the
        model's log-likelihood of the images, labels summed out)."""
        return _logsumexp(self.log_joint(x, observed), axis=1)

    def predict(self, x, observed=None) -> np.ndarray:
        """The most probable class argmax_k p(y = k | x_O), eq. (4): (N,) int64."""
        return self.log_joint(x, observed).argmax(axis=1)

    forward = log_posterior

    # ---- the pair with logistic regression: eq. (8)
    def as_linear(self):
        """(W, b) with log p(y | x) = log softmax(W x + b) for complete x, eq. (8):
        W_kd = log theta_kd - log(1 - theta_kd) (K, D), b_k = log pi_k + sum_d log(1 -
        theta_kd) (K,), float64."""
        theta, pi = to_numpy(self.theta.data), to_numpy(self.pi.data)
        return np.log(theta) - np.log1p(-theta), np.log(pi) + np.log1p(-theta).sum(axis=1)

    # ---- sampling: ancestral, eq. (1)
    def sample(self, n: int = None, y=None, generator=None):
        """Ancestral samples of eq. (1): y ~ pi (or the labels ``y`` given, (n,)), then
        x_d ~ Bernoulli(theta_yd). Returns (x (n, D) float32 of 0.0 and 1.0, y (n,)
        int64).

        Args:
            n: how many (may be omitted when y is given).
            y: the classes to draw from, in 0..K-1.
            generator: a numpy.random.Generator (default: one seeded from tinygen's global
                generator, which ``tinygen.manual_seed`` controls).

        Raises ValueError for n < 0, labels out of range, or n disagreeing with len(y).
        """
        g = new_generator() if generator is None else generator
        if y is None:
            if n is None or isinstance(n, bool) or not isinstance(n, (int, np.integer)) \
                    or n < 0:
                raise ValueError(f"sample: n must be a number of samples >= 0, got {n!r}")
            pi = to_numpy(self.pi.data)
            y = g.choice(self.num_classes, size=int(n), p=pi / pi.sum())
        else:
            y = _as_numpy(y)
            y = _check_labels(y, self.num_classes, len(y) if y.ndim == 1 else -1, "sample")
            if n is not None and n != len(y):
                raise ValueError(f"sample: n = {n!r} but {len(y)} labels were given")
        theta = to_numpy(self.theta.data)
        u = g.random((len(y), self.num_features))
        return (u < theta[y]).astype(np.float32), y.astype(np.int64)


# ----------------------------------------------------------------------- logistic regression

def impute(x, observed, fill) -> np.ndarray:
    """Eq. (9): x~ = x where observed, ``fill`` (D,) where not; x (N, D), observed bool
    (N, D) or (D,) (None: x unchanged). Returns float32 (N, D); never reads a missing
    value (NaN may stand there)."""
    x = _as_numpy(x)
    if observed is None:
        return x.astype(np.float32)
    fill = np.broadcast_to(_as_numpy(fill), x.shape[-1:])
    return np.where(_as_numpy(observed), x, fill).astype(np.float32)


class LogisticRegression(nn.Module):
    """Multinomial logistic regression p(y | x) = softmax(W x + b), eq. (6), on the
    autograd engine: a Linear layer (W (K, D), b (K,)) started at zero, where every
    class is equally likely (the loss (7) is convex: the start decides little). The
    buffer ``fill`` (D,) is what a missing pixel becomes, eq. (9): 0, or the training
    mean after ``set_fill``.

    Args:
        num_features: D.
        num_classes: K.

    Raises ValueError for sizes below 1.
    """

    def __init__(self, num_features: int, num_classes: int = 10):
        super().__init__()
        self.num_features = _check_size("LogisticRegression", "num_features", num_features)
        self.num_classes = _check_size("LogisticRegression", "num_classes", num_classes)
        self.linear = nn.Linear(self.num_features, self.num_classes)
        self.linear.weight.data[...] = 0
        self.linear.bias.data[...] = 0
        self.register_buffer("fill", tensor(np.zeros(self.num_features, np.float32)))

    def extra_repr(self):
        return f"num_features={self.num_features}, num_classes={self.num_classes}"

    def forward(self, x):
        """The logits W x + b, eq. (6): Tensor (N, D) -> (N, K)."""
        return self.linear(x)

    def loss(self, x, y):
        """The mean cross-entropy -(1/N) sum_n log p(y_n | x_n), eq. (7) without the
        penalty (the optimizer's weight decay adds lambda W): Tensors (N, D), (N,) ->
        scalar, nats."""
        return F.cross_entropy(self(x), y)

    def set_fill(self, x_train) -> None:
        """fill = mu, the mean of the training images (N, D), eq. (9) (else it stays 0)."""
        x = _as_numpy(x_train).reshape(-1, self.num_features)
        self.fill.data[...] = tensor(x.mean(axis=0).astype(np.float32),
                                     device=self.fill.device).data

    @no_grad()
    def log_posterior(self, x, observed=None, batch_size: int = 10_000) -> np.ndarray:
        """log p(y = k | x~) with missing pixels imputed by eq. (9): x (N, D) NumPy, 0/1
        at the observed pixels -> (N, K) float32 NumPy, nats.

        Raises ValueError for a shape mismatch or non-binary observed pixels."""
        x, m = _check_images(x, self.num_features, "LogisticRegression.log_posterior",
                             observed)
        x_tilde = impute(x, m, to_numpy(self.fill.data))
        device = self.linear.weight.device
        return np.concatenate([
            F.log_softmax(self(tensor(x_tilde[i:i + batch_size], device=device)), axis=1)
            .numpy() for i in range(0, len(x_tilde), batch_size)]) if len(x_tilde) else \
            np.zeros((0, self.num_classes), np.float32)

    def predict(self, x, observed=None) -> np.ndarray:
        """argmax_k p(y = k | x~): (N,) int64."""
        return self.log_posterior(x, observed).argmax(axis=1)

    def gradient(self, x, y, weight_decay: float = 0.0):
        """The gradient of eq. (7) written out, (1/N) (P - Y)^T X + lambda W and (1/N)
        sum_n (p_n - y_n): what backward computes, for the reader and the tests. x (N, D)
        binary, y (N,); returns (grad W (K, D), grad b (K,)) as float64 NumPy."""
        x, _ = _check_images(x, self.num_features, "LogisticRegression.gradient")
        y = _check_labels(y, self.num_classes, len(x), "LogisticRegression.gradient")
        W = to_numpy(self.linear.weight.data).astype(np.float64)
        b = to_numpy(self.linear.bias.data).astype(np.float64)
        logits = x @ W.T + b
        P = np.exp(logits - _logsumexp(logits, axis=1)[:, None])
        R = (P - np.eye(self.num_classes)[y]) / len(x)
        return R.T @ x + weight_decay * W, R.sum(axis=0)


# ------------------------------------------------------------------------ the missing pixels

def missing_at_random(n: int, num_features: int, fraction: float, generator) -> np.ndarray:
    """The observed mask of n examples that each lose round(fraction D) of their D pixels,
    chosen uniformly at random and independently for each example (missing completely at
    random: independent of the pixels' values and of the class, the case eq. (5) is
    exact for). Returns bool (n, D), True where a pixel is seen.

    Args:
        generator: a numpy.random.Generator (e.g. tinygen.random.generator(seed)).

    Raises ValueError for a fraction outside [0, 1].
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"missing_at_random: fraction must lie in [0, 1], got {fraction!r}")
    k = int(round(fraction * num_features))
    # the places of the k smallest of D uniform numbers are a uniform random k-subset
    # (and, for one generator state, the subset for a larger k contains it)
    order = generator.random((n, num_features)).argsort(axis=1)
    observed = np.ones((n, num_features), bool)
    np.put_along_axis(observed, order[:, :k], False, axis=1)
    return observed
