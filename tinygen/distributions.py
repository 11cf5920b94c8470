"""Probability distributions: Normal, Bernoulli and Categorical, with PyTorch's API,
and ``Independent``, which turns a batch of them into one distribution over a vector.

Each distribution can draw samples, score values with ``log_prob``, and report its
``entropy``; ``kl_divergence(p, q)`` gives KL(p || q) in closed form. Everything returns
Tensors in the graph, so a log-likelihood, an entropy or a KL term can be a loss.
Shapes follow ``torch.distributions``: the parameters broadcast together to the
*batch shape* B (one independent distribution per element), ``sample(sample_shape)``
returns sample_shape + B, and ``log_prob(x)`` returns one log-density per element.
All three are univariate: the event shape is () (a Categorical's event is one index).

Independent(base, n) reads the last n batch axes of ``base`` as one event: a diagonal
Gaussian over z in R^d, or independent Bernoulli pixels over an image x in {0, 1}^D,

    log p(x) = sum_i log p_i(x_i),     H = sum_i H_i,     KL = sum_i KL_i,

the sums running over the event axes. This is how the models state their likelihoods,
priors and posteriors: ``Independent(Normal(mu, sigma), 1).log_prob(z)`` is one number
per example, log N(z; mu, diag sigma^2).

Normal N(mu, sigma^2), mu real, sigma > 0:

    p(z)       = 1 / (sigma sqrt(2 pi)) exp(-(z - mu)^2 / (2 sigma^2))
    log p(z)   = -1/2 ((z - mu) / sigma)^2 - log sigma - 1/2 log(2 pi)
    H[p]       = 1/2 + 1/2 log(2 pi) + log sigma          ( = 1/2 log(2 pi e sigma^2) )
    rsample:     z = mu + sigma epsilon,  epsilon ~ N(0, 1)   (the reparameterisation trick)
    KL(N(mu_1, sigma_1^2) || N(mu_2, sigma_2^2))
               = log(sigma_2 / sigma_1) + (sigma_1^2 + (mu_1 - mu_2)^2) / (2 sigma_2^2) - 1/2
               = 1/2 [ r + ((mu_1 - mu_2) / sigma_2)^2 - 1 - log r ],  r = (sigma_1/sigma_2)^2

    A VAE's KL term is the special case q(z|x) = N(mu, sigma^2) against the prior N(0, 1):
    KL = 1/2 (sigma^2 + mu^2 - 1 - log sigma^2), per latent dimension.

Bernoulli(p), x in {0, 1}, described by p in [0, 1] or by the logit l = log(p / (1 - p)),
so that p = sigmoid(l) and log(1 - p) = -softplus(l):

    P(x)       = p^x (1 - p)^(1 - x)
    log P(x)   = x log p + (1 - x) log(1 - p) = x l - softplus(l)   (= -BCE-with-logits)
    H[p]       = -p log p - (1 - p) log(1 - p) = softplus(l) - p l
    KL(Bern(p) || Bern(q))
               = p log(p / q) + (1 - p) log((1 - p) / (1 - q))
               = p (l_p - l_q) - softplus(l_p) + softplus(l_q)

Categorical(pi), x in {0, ..., K-1}, pi_k >= 0, sum_k pi_k = 1, over the last axis;
described by pi or by logits a_k with pi_k = softmax(a)_k = exp(a_k) / sum_j exp(a_j):

    P(x = k)   = pi_k
    log P(k)   = log pi_k = a_k - log sum_j exp(a_j)                (log_softmax)
    H[pi]      = -sum_k pi_k log pi_k
    KL(Cat(pi) || Cat(rho))
               = sum_k pi_k (log pi_k - log rho_k)
    sampling:    x = the first k with u < pi_0 + ... + pi_k,  u ~ U[0, 1)  (inverse CDF)

In these sums 0 log 0 = 0: a category with pi_k = 0 (a logit of -inf, or probs 0)
contributes nothing to the entropy or to KL(pi || rho), and is never sampled.

Why the logits: p = sigmoid(100) rounds to exactly 1, and log(1 - p) is then -inf,
whereas softplus(100) = 100 is exact. So Bernoulli and Categorical keep their logits
and compute every log-probability from them; probabilities given by the user are turned
into logits once, at construction.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend, ops
from . import random as _random
from .autograd import Tensor, no_grad, tensor
from .nn import functional as F

__all__ = ["Distribution", "Normal", "Bernoulli", "Categorical", "Independent",
           "kl_divergence", "register_kl"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# --------------------------------------------------------------------------- helpers

def _is_number(x) -> bool:
    """A Python number. NumPy scalars are excluded (np.float64(1.0) is also a Python
    float): like arrays, they keep their own dtype."""
    return isinstance(x, numbers.Number) and not isinstance(x, np.generic)


def _params(owner: str, **named):
    """The named parameters as Tensors of one float dtype, on one device, broadcast to
    one shape (the batch shape). Returns (dict name -> Tensor, batch_shape).

    Tensors and arrays (NumPy or CuPy) decide the device; they and NumPy scalars decide
    the dtype (the widest float among them, float32 when there is none). Python numbers
    and lists then take that dtype and device, so ``Normal(0.0, 1.0)`` is float32 and
    ``Normal(loc64, 1.0)`` stays float64. A cast or a broadcast is a graph op, so
    gradients still reach the tensors the user passed.
    """
    given = {k: v for k, v in named.items() if v is not None}
    tensors = {}
    for name, v in given.items():
        if isinstance(v, Tensor):
            tensors[name] = v
        elif hasattr(v, "shape") and not isinstance(v, np.generic):  # an array
            tensors[name] = tensor(v, device=backend.device_of(v))
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{n} on '{d}'" for n, d in devices.items())
        raise ValueError(f"{owner}: parameters are on different devices ({listed}); "
                         "move them to one device with .to(device)")
    device = next(iter(devices.values()), "cpu")
    dtypes = [t.dtype for t in tensors.values()]
    dtypes += [v.dtype for v in given.values() if isinstance(v, np.generic)]
    floats = [dt for dt in dtypes if np.issubdtype(dt, np.floating)]
    dtype = np.result_type(*floats) if floats else np.dtype(np.float32)

    xp = backend.array_module(device)
    out = {}
    for name, v in given.items():
        if name in tensors:
            out[name] = ops.astype(tensors[name], dtype)  # a no-op when already dtype
            continue
        try:  # a number, a NumPy scalar, or a (nested) list of numbers
            out[name] = Tensor(xp.asarray(v, dtype=dtype))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{owner}: {name} must be a Tensor, an array, a number or a "
                             f"list of numbers; got {type(v).__name__} ({e})") from None
    try:
        shape = np.broadcast_shapes(*(t.shape for t in out.values()))
    except ValueError:
        listed = " and ".join(f"{n} of shape {t.shape}" for n, t in out.items())
        raise ValueError(f"{owner}: {listed} cannot be broadcast together") from None
    return out, tuple(shape)


def _check(ok, message) -> None:
    """Raise ValueError(message()) unless every element of the boolean array ``ok`` holds.

    ``message`` is a function, called only on failure: the text reads the values (their
    range), which would otherwise cost passes over the data on every call."""
    if not bool(backend.get_array_module(ok).all(ok)):
        raise ValueError(message())


def _no_nan(owner: str, name: str, t: Tensor) -> None:
    xp = backend.get_array_module(t)
    _check(~xp.isnan(t.data), lambda: f"{owner}: {name} contains NaN")


def _lo_hi(t: Tensor) -> str:
    """The range of a tensor's values, for error messages ("[-1, 3] and NaN")."""
    xp = backend.get_array_module(t)
    a = t.data
    finite_or_inf = a[~xp.isnan(a)]
    text = (f"[{float(finite_or_inf.min()):.6g}, {float(finite_or_inf.max()):.6g}]"
            if finite_or_inf.size else "no numbers")
    return text + (" and NaN" if bool(xp.isnan(a).any()) else "")


def _sample_shape(sample_shape) -> tuple:
    """sample_shape as a tuple: an int n means (n,), like torch."""
    if isinstance(sample_shape, numbers.Integral):
        sample_shape = (sample_shape,)
    shape = tuple(int(n) for n in sample_shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"sample_shape must hold non-negative sizes, got {shape}")
    return shape


def _broadcast_value(owner: str, value: Tensor, batch_shape: tuple) -> tuple:
    """The shape of log_prob(value): value's shape broadcast with the batch shape."""
    try:
        return tuple(np.broadcast_shapes(value.shape, batch_shape))
    except ValueError:
        raise ValueError(f"{owner}.log_prob: value of shape {value.shape} cannot be "
                         f"broadcast with the batch shape {batch_shape}") from None


def _as_value(value, like: Tensor) -> Tensor:
    """A value to score, as a Tensor; Python numbers and lists take the parameters'
    dtype and device (as in ``x_float32 * 2.0``), arrays keep their own."""
    if isinstance(value, Tensor):
        return value
    if _is_number(value) or isinstance(value, (list, tuple)):
        return tensor(value, dtype=like.dtype, device=like.device)
    return tensor(value, device=backend.device_of(value))


# --------------------------------------------------------------------------- base class

class Distribution:
    """The interface shared by every distribution (PyTorch's names).

    Attributes:
        batch_shape: the shape B of the batch of independent distributions.
        event_shape: the shape of one draw; () for the univariate ones here.
        has_rsample: whether ``rsample`` (a differentiable sample) exists.
    """

    has_rsample = False

    def __init__(self, batch_shape=(), event_shape=(), validate_args: bool = True):
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)
        self._validate_args = bool(validate_args)

    @property
    def batch_shape(self) -> tuple:
        return self._batch_shape

    @property
    def event_shape(self) -> tuple:
        return self._event_shape

    def _extended_shape(self, sample_shape=()) -> tuple:
        return _sample_shape(sample_shape) + self._batch_shape + self._event_shape

    def sample(self, sample_shape=()) -> Tensor:
        """Draw sample_shape + batch_shape values, with no gradient."""
        with no_grad():
            return self.rsample(sample_shape).detach()

    def rsample(self, sample_shape=()) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no rsample")

    def log_prob(self, value) -> Tensor:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(batch_shape={self.batch_shape})"


# --------------------------------------------------------------------------- Normal

class Normal(Distribution):
    """The normal distribution N(mu, sigma^2), one per element of the batch.

    Args:
        loc: the mean mu, a Tensor, array or number.
        scale: the standard deviation sigma > 0, broadcastable with loc.
        validate_args: check sigma > 0 and no NaN (default True; the check reads the
            values, which on a GPU waits for them).

    ``loc`` and ``scale`` are stored broadcast to the batch shape B (their common shape).
    """

    has_rsample = True

    def __init__(self, loc, scale, validate_args: bool = True):
        p, batch_shape = _params("Normal", loc=loc, scale=scale)
        if validate_args:
            _no_nan("Normal", "loc", p["loc"])
            _check(p["scale"].data > 0,
                   lambda: "Normal: scale must be positive (sigma > 0); got values in "
                           f"{_lo_hi(p['scale'])}")
        self.loc = ops.broadcast_to(p["loc"], batch_shape)
        self.scale = ops.broadcast_to(p["scale"], batch_shape)
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def mean(self) -> Tensor:
        """mu, shape B."""
        return self.loc

    @property
    def stddev(self) -> Tensor:
        """sigma, shape B."""
        return self.scale

    @property
    def variance(self) -> Tensor:
        """sigma^2, shape B."""
        return self.scale * self.scale

    def rsample(self, sample_shape=()) -> Tensor:
        """z = mu + sigma epsilon with epsilon ~ N(0, I): shape sample_shape + B.

        The randomness sits in epsilon, which does not depend on the parameters, so z is
        a differentiable function of mu and sigma: dz/dmu = 1 and dz/dsigma = epsilon.
        That is what lets a VAE backpropagate through the sample.
        """
        shape = self._extended_shape(sample_shape)
        eps = _random.randn(*shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, value) -> Tensor:
        """log N(value; mu, sigma^2). value: broadcastable with B -> the broadcast shape."""
        value = _as_value(value, self.loc)
        _broadcast_value("Normal", value, self.batch_shape)
        z = (value - self.loc) / self.scale  # the standardised value
        return -0.5 * (z * z) - ops.log(self.scale) - _HALF_LOG_2PI

    def entropy(self) -> Tensor:
        """1/2 + 1/2 log(2 pi) + log sigma, shape B."""
        return ops.log(self.scale) + (0.5 + _HALF_LOG_2PI)

    def __repr__(self):
        return (f"Normal(batch_shape={self.batch_shape}, dtype={self.loc.dtype}, "
                f"device='{self.loc.device}')")


# --------------------------------------------------------------------------- Bernoulli

def _exactly_one(owner, probs, logits):
    if (probs is None) == (logits is None):
        got = "both" if probs is not None else "neither"
        raise ValueError(f"{owner}: give exactly one of probs and logits (got {got})")


class Bernoulli(Distribution):
    """The Bernoulli distribution over {0, 1}, one per element of the batch.

    Args:
        probs: p = P(x = 1), in [0, 1]; or
        logits: l = log(p / (1 - p)), finite. Exactly one of the two.
        validate_args: check the ranges (default True).

    All log-probabilities are computed from the logits (see the module docstring).
    Probabilities given as probs are clamped to [eps, 1 - eps] (eps the dtype's machine
    epsilon) when turned into logits, as in PyTorch, so p = 0 or 1 gives a very
    negative but finite log-probability instead of -inf and NaN.
    """

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        _exactly_one("Bernoulli", probs, logits)
        p, batch_shape = _params("Bernoulli", probs=probs, logits=logits)
        if probs is not None:
            probs = p["probs"]
            if validate_args:
                _check((probs.data >= 0) & (probs.data <= 1),
                       lambda: "Bernoulli: probs must lie in [0, 1]; got values in "
                               f"{_lo_hi(probs)}")
            eps = float(np.finfo(probs.dtype).eps)
            pc = probs.clip(eps, 1 - eps)
            self._probs, self._logits = probs, ops.log(pc) - ops.log1p(-pc)
        else:
            logits = p["logits"]
            if validate_args:
                xp = backend.get_array_module(logits)
                _check(xp.isfinite(logits.data),
                       lambda: "Bernoulli: logits must be finite (a logit of +-inf makes "
                               "x l - softplus(l) undefined); got values in "
                               f"{_lo_hi(logits)}")
            self._probs, self._logits = ops.sigmoid(logits), logits
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def probs(self) -> Tensor:
        """p = P(x = 1), shape B (as given, or sigmoid(logits))."""
        return self._probs

    @property
    def logits(self) -> Tensor:
        """l = log(p / (1 - p)), shape B (as given, or computed from clamped probs)."""
        return self._logits

    @property
    def mean(self) -> Tensor:
        """E[x] = p, shape B."""
        return self._probs

    @property
    def variance(self) -> Tensor:
        """Var[x] = p (1 - p), shape B."""
        return self._probs * (1 - self._probs)

    def sample(self, sample_shape=()) -> Tensor:
        """Draws x = [u < p], u ~ U[0, 1): 0.0 or 1.0 in p's dtype, shape sample_shape + B.

        P(u < p) = p for u uniform on [0, 1). No gradient.
        """
        shape = self._extended_shape(sample_shape)
        p = self._probs
        u = _random.rand(*shape, dtype=p.dtype, device=p.device)
        return Tensor((u.data < p.data).astype(p.dtype))

    def rsample(self, sample_shape=()) -> Tensor:
        raise NotImplementedError(
            "Bernoulli has no rsample: a draw is 0 or 1, a step function of p whose "
            "derivative is zero almost everywhere, so no reparameterisation carries a "
            "gradient. Use sample() with the score-function (REINFORCE) estimator, "
            "f(x) * log_prob(x), or a continuous relaxation (Gumbel-softmax / relaxed "
            "Bernoulli).")

    def log_prob(self, value) -> Tensor:
        """x l - softplus(l). value: broadcastable with B -> the broadcast shape.

        Values in [0, 1] are accepted, not only {0, 1}: for grey levels this is the
        negative binary cross-entropy that VAE papers use as the "Bernoulli likelihood"
        of MNIST intensities (then not a normalised probability).
        """
        value = _as_value(value, self._logits)
        _broadcast_value("Bernoulli", value, self.batch_shape)
        if self._validate_args:
            _check((value.data >= 0) & (value.data <= 1),
                   lambda: "Bernoulli.log_prob: value must lie in [0, 1]; got values in "
                           f"{_lo_hi(value)}")
        # -(softplus(l) - x l) as one op: with validate_args=False a logit of +-inf gives
        # the limit (0 for the value it makes certain, -inf for the other), not nan
        return -ops.bce_with_logits(self._logits, value)

    def entropy(self) -> Tensor:
        """softplus(l) - p l, shape B."""
        return ops.bce_with_logits(self._logits, self._probs)

    def __repr__(self):
        return (f"Bernoulli(batch_shape={self.batch_shape}, dtype={self._logits.dtype}, "
                f"device='{self._logits.device}')")


# --------------------------------------------------------------------------- Categorical

class Categorical(Distribution):
    """The categorical distribution over {0, ..., K-1}, along the last axis.

    Args:
        probs: (..., K) non-negative weights pi; each row is divided by its sum (as in
            PyTorch), so unnormalised weights are fine; or
        logits: (..., K) unnormalised log-probabilities a, real or -inf (a class that
            can never occur); each row needs at least one finite entry.
        validate_args: check the ranges (default True).

    The batch shape is the parameter's shape without its last axis; a draw is one index.
    ``logits`` are stored normalised, logits = log_softmax(a) = log pi, so they are the
    log-probabilities themselves. A zero probability has the logit -inf exactly (not a
    clamped log eps), so log_prob of an impossible class is -inf and KL against a
    distribution that rules out a possible class is +inf, as in the math.
    """

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        _exactly_one("Categorical", probs, logits)
        name = "probs" if probs is not None else "logits"
        p, _ = _params("Categorical", **{name: probs if probs is not None else logits})
        param = p[name]
        if param.ndim < 1 or param.shape[-1] < 1:
            raise ValueError(f"Categorical: {name} needs a last axis of K >= 1 categories; "
                             f"got shape {param.shape}")
        xp = backend.get_array_module(param)
        if probs is not None:
            if validate_args:
                _check(xp.isfinite(param.data) & (param.data >= 0),
                       lambda: "Categorical: probs must be finite and non-negative; got "
                               f"values in {_lo_hi(param)}")
                _check(param.data.sum(axis=-1) > 0,
                       lambda: "Categorical: each row of probs needs a positive sum")
            pi = param / param.sum(axis=-1, keepdims=True)
            positive = pi.data > 0
            # log pi, with log 0 = -inf exactly; the inner where keeps log's input (and
            # so its gradient) finite where pi = 0.
            self._probs = pi
            self._logits = ops.where(positive, ops.log(ops.where(positive, pi, 1.0)),
                                     -math.inf)
        else:
            if validate_args:
                _check(~xp.isnan(param.data) & (param.data < math.inf),
                       lambda: "Categorical: logits must be real or -inf (no NaN, no "
                               f"+inf); got values in {_lo_hi(param)}")
                _check(xp.isfinite(param.data).any(axis=-1),
                       lambda: "Categorical: each row of logits needs at least one finite "
                               "entry (all -inf leaves no possible class)")
            self._logits = F.log_softmax(param, axis=-1)
            self._probs = ops.exp(self._logits)
        super().__init__(param.shape[:-1], validate_args=validate_args)

    @property
    def probs(self) -> Tensor:
        """pi, (..., K), each row summing to 1."""
        return self._probs

    @property
    def logits(self) -> Tensor:
        """log pi (normalised logits), (..., K)."""
        return self._logits

    @property
    def num_categories(self) -> int:
        """K."""
        return self._logits.shape[-1]

    def sample(self, sample_shape=()) -> Tensor:
        """Class indices by the inverse CDF: int64, shape sample_shape + B. No gradient.

        With c_k = pi_0 + ... + pi_k and u ~ U[0, 1), the draw is the first k with
        u < c_k, which is the number of boundaries c_0, ..., c_{K-2} at or below u.
        One comparison of every u with every boundary, vectorised over samples and
        batch. The CDF is accumulated in float64 and u is scaled by the row's total
        c_{K-1}, so rounding in the sum can neither push u past the last class nor
        give a zero-probability class (two equal boundaries) any mass.
        """
        shape = self._extended_shape(sample_shape)
        pi = self._probs.data
        xp = backend.get_array_module(pi)
        cdf = xp.cumsum(pi.astype(np.float64), axis=-1)                  # B + (K,)
        u = _random.rand(*shape, dtype=np.float64, device=self._probs.device).data
        target = (u * cdf[..., -1])[..., None]                            # shape + (1,)
        k = (cdf[..., :-1] <= target).sum(axis=-1)
        return Tensor(k.astype(np.int64))

    def rsample(self, sample_shape=()) -> Tensor:
        raise NotImplementedError(
            "Categorical has no rsample: a draw is a class index, a step function of pi "
            "with zero derivative almost everywhere, so no reparameterisation carries a "
            "gradient. Use sample() with the score-function (REINFORCE) estimator, "
            "f(x) * log_prob(x), or the Gumbel-softmax relaxation.")

    def log_prob(self, value) -> Tensor:
        """log pi_value. value: integers in [0, K), broadcastable with B -> the
        broadcast shape."""
        if not isinstance(value, Tensor):  # ints and lists of ints become int64
            value = tensor(value, device=backend.device_of(value) if hasattr(value, "dtype")
                           else self._logits.device)
        if value.dtype.kind not in "iu":
            raise TypeError(f"Categorical.log_prob: value must hold integer class indices; "
                            f"got dtype {value.dtype}")
        shape = _broadcast_value("Categorical", value, self.batch_shape)
        K = self.num_categories
        if self._validate_args and value.size:
            lo, hi = int(value.data.min()), int(value.data.max())
            if lo < 0 or hi >= K:
                raise ValueError(f"Categorical.log_prob: value must lie in [0, {K}); got "
                                 f"values in [{lo}, {hi}]")
        xp = backend.get_array_module(self._logits)
        # Pick logits[..., value] by integer indexing on a flat (N, K) view, so the
        # gradient flows back to exactly the picked log-probabilities.
        logits = ops.broadcast_to(self._logits, shape + (K,)).reshape(-1, K)
        index = xp.broadcast_to(value.data, shape).reshape(-1)
        return logits[xp.arange(index.shape[0]), index].reshape(shape)

    def entropy(self) -> Tensor:
        """-sum_k pi_k log pi_k, shape B. Terms with pi_k = 0 count 0 (0 log 0 = 0)."""
        return -(self._probs * _zero_where_impossible(self._probs, self._logits)).sum(axis=-1)

    def __repr__(self):
        return (f"Categorical(batch_shape={self.batch_shape}, K={self.num_categories}, "
                f"dtype={self._logits.dtype}, device='{self._logits.device}')")

def _zero_where_impossible(pi: Tensor, t: Tensor) -> Tensor:
    """t where pi > 0, else 0: multiplied by pi this makes 0 * (-inf) a 0, not a NaN, in
    the value and in the gradient (where sends a zero gradient into the masked entries)."""
    return ops.where(pi.data > 0, t, 0.0)


# --------------------------------------------------------------------------- Independent

class Independent(Distribution):
    """Reinterpret the last ``reinterpreted_batch_ndims`` batch axes of a distribution as
    event axes (PyTorch's ``Independent``): the elements along them are one draw, and
    ``log_prob`` and ``entropy`` sum over them.

    Args:
        base_distribution: a Distribution with batch shape B.
        reinterpreted_batch_ndims: n, 0 <= n <= len(B).

    With B = B' + E (E the last n axes), the batch shape becomes B' and the event shape
    E + the base's event shape. Samples are the base's samples (shape sample_shape + B).

    Raises ValueError when n is not an integer in [0, len(B)].
    """

    def __init__(self, base_distribution: Distribution, reinterpreted_batch_ndims: int):
        if not isinstance(base_distribution, Distribution):
            raise TypeError(f"Independent: base_distribution must be a Distribution, got "
                            f"{type(base_distribution).__name__}")
        n = reinterpreted_batch_ndims
        shape = base_distribution.batch_shape
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) \
                or not 0 <= n <= len(shape):
            raise ValueError(f"Independent: reinterpreted_batch_ndims must be an integer in "
                             f"[0, {len(shape)}] for a base of batch shape {shape}; got {n!r}")
        self.base_dist = base_distribution
        self.reinterpreted_batch_ndims = int(n)
        cut = len(shape) - self.reinterpreted_batch_ndims
        super().__init__(shape[:cut], shape[cut:] + base_distribution.event_shape,
                         validate_args=base_distribution._validate_args)

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    @property
    def mean(self) -> Tensor:
        return self.base_dist.mean

    @property
    def variance(self) -> Tensor:
        return self.base_dist.variance

    def sample(self, sample_shape=()) -> Tensor:
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape=()) -> Tensor:
        return self.base_dist.rsample(sample_shape)

    def _sum_event(self, t: Tensor) -> Tensor:
        n = self.reinterpreted_batch_ndims
        return t.sum(axis=tuple(range(t.ndim - n, t.ndim))) if n else t

    def log_prob(self, value) -> Tensor:
        """sum over the event axes of the base's log_prob: value (..., B) -> (..., B')."""
        return self._sum_event(self.base_dist.log_prob(value))

    def entropy(self) -> Tensor:
        """sum over the event axes of the base's entropy: shape B'."""
        return self._sum_event(self.base_dist.entropy())

    def __repr__(self):
        return (f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims}): "
                f"batch_shape={self.batch_shape}, event_shape={self.event_shape}")


# --------------------------------------------------------------------------- KL divergence

_KL_REGISTRY: dict = {}


def register_kl(type_p, type_q):
    """Decorator registering a closed-form KL(p || q) for a pair of types, as in torch:

        @register_kl(Normal, Normal)
        def _kl_normal_normal(p, q): ...
    """
    def decorator(fn):
        _KL_REGISTRY[(type_p, type_q)] = fn
        return fn
    return decorator


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """KL(p || q) = E_p[log p(x) - log q(x)] in closed form, one value per element of the
    broadcast batch shape of p and q.

    Raises NotImplementedError for a pair of types with no closed form registered, and
    ValueError when the batch shapes do not broadcast.
    """
    fn = None
    for tp in type(p).__mro__:  # the most specific registered pair wins
        for tq in type(q).__mro__:
            fn = _KL_REGISTRY.get((tp, tq))
            if fn is not None:
                break
        if fn is not None:
            break
    if fn is None:
        raise NotImplementedError(
            f"kl_divergence: no closed form for KL({type(p).__name__} || "
            f"{type(q).__name__}); estimate it by Monte Carlo instead, "
            "(p.log_prob(x) - q.log_prob(x)).mean() over x = p.sample((n,))")
    try:
        np.broadcast_shapes(p.batch_shape, q.batch_shape)
    except ValueError:
        raise ValueError(f"kl_divergence: batch shapes {p.batch_shape} (p) and "
                         f"{q.batch_shape} (q) cannot be broadcast together") from None
    return fn(p, q)


@register_kl(Normal, Normal)
def _kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    """1/2 [ r + ((mu_1 - mu_2) / sigma_2)^2 - 1 - log r ] with r = (sigma_1 / sigma_2)^2.

    log r is taken as 2 (log sigma_1 - log sigma_2), not log of r: in float32 r
    underflows to 0 once sigma_1 / sigma_2 < 1e-23 (log r = -inf, KL = inf instead of,
    for sigma_1 = e^-60, 59.5) and overflows to inf above 2e19 (inf - inf = nan instead
    of inf)."""
    r = (p.scale / q.scale) ** 2
    t = ((p.loc - q.loc) / q.scale) ** 2
    log_r = 2.0 * (ops.log(p.scale) - ops.log(q.scale))
    return 0.5 * (r + t - 1 - log_r)


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    """p (l_p - l_q) - softplus(l_p) + softplus(l_q), from the logits (stable)."""
    return p.probs * (p.logits - q.logits) - F.softplus(p.logits) + F.softplus(q.logits)


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    """sum_k pi_k (log pi_k - log rho_k); terms with pi_k = 0 count 0, and a class with
    pi_k > 0 = rho_k makes the KL +inf."""
    if p.num_categories != q.num_categories:
        raise ValueError(f"kl_divergence: Categoricals over different numbers of classes, "
                         f"{p.num_categories} (p) and {q.num_categories} (q)")
    # Masking each log before subtracting avoids -inf - (-inf) = NaN where both are 0.
    log_pi = _zero_where_impossible(p.probs, p.logits)
    log_rho = _zero_where_impossible(p.probs, q.logits)
    return (p.probs * (log_pi - log_rho)).sum(axis=-1)


@register_kl(Independent, Independent)
def _kl_independent_independent(p: Independent, q: Independent) -> Tensor:
    """sum over the event axes of the bases' KL (the KL of a product of independent
    factors is the sum of theirs); both must read the same number of axes as an event."""
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise ValueError(f"kl_divergence: Independent distributions with different event "
                         f"dimensions ({p.reinterpreted_batch_ndims} and "
                         f"{q.reinterpreted_batch_ndims} axes)")
    return p._sum_event(kl_divergence(p.base_dist, q.base_dist))
