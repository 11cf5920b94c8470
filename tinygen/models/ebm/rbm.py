"""The restricted Boltzmann machine (Smolensky 1986; Hinton 2002, "Training Products of
Experts by Minimizing Contrastive Divergence"), with its exact partition function for
small hidden layers and annealed importance sampling for large ones (Neal 2001,
"Annealed Importance Sampling"; Salakhutdinov & Murray 2008, "On the Quantitative
Analysis of Deep Belief Networks").

An RBM is an energy-based model over binary visible units v in {0, 1}^D and binary hidden
units h in {0, 1}^H, connected only across the two layers (the "restriction"):

    E(v, h) = -a.v - b.h - v^T W h,          p(v, h) = exp(-E(v, h)) / Z,          (1)

with visible biases a (D,), hidden biases b (H,) and weights W (D, H). No visible unit
talks to another, nor any hidden unit to another, so each layer is independent given
the other, and both conditionals are products of Bernoullis (sigma the logistic sigmoid):

    p(h_j = 1 | v) = sigma(b_j + (v^T W)_j),     p(v_i = 1 | h) = sigma(a_i + (W h)_i).  (2)

Summing h out of (1) in closed form gives the free energy, the energy of v alone:

    p(v) = exp(-F(v)) / Z,     F(v) = -a.v - sum_j softplus(b_j + (v^T W)_j),         (3)

(each hidden unit contributes log(1 + e^{b_j + (v^T W)_j}) = softplus). So an RBM is an
EBM with energy F, and the maximum-likelihood gradient of every EBM,

    grad_theta log p(v) = -grad_theta F(v) + E_{v^- ~ p}[grad_theta F(v^-)],          (4)

applies with the model's expectation estimated from samples v^- of block Gibbs sampling,
which alternates the two conditionals (2): v -> h ~ p(h | v) -> v' ~ p(v | h). How the
chains start names the algorithm: at the data, run k steps, is contrastive divergence
CD-k (Hinton 2002); chains kept from one update to the next is persistent contrastive
divergence PCD (Tieleman 2008). The loss mean F(v^+) - mean F(v^-) has (4) as its
negative gradient, so the engine's backward computes it (``contrastive_loss`` in
langevin.py writes it once for every EBM).

The partition function. Z = sum_v sum_h exp(-E(v, h)) has 2^(D + H) terms; summing out
v instead of h (the mirror of (3)) leaves 2^H:

    log Z = logsumexp_h [ b.h + sum_i softplus(a_i + (W h)_i) ],                      (5)

exact and feasible for H up to about 25 (``exact_log_partition``, in chunks of hidden
states). For larger H, annealed importance sampling (``ais_log_partition``) moves from a
model A whose Z_A is known, a "base-rate" RBM with W = 0 and visible biases a^A (the
data's pixel log-odds make a good A), to the model B through the distributions

    p*_beta(v) = exp((1 - beta) a^A.v + beta a.v) prod_j (1 + exp(beta (b_j + (v^T W)_j))),
                                                                      0 = beta_0 < ... < beta_K = 1,   (6)

(Salakhutdinov & Murray 2008, section 4.1: the RBM with all parameters of B scaled by
beta, A's by 1 - beta; at beta = 0 the hidden units are free, Z_0 = 2^H prod_i (1 +
e^{a^A_i})). Each run draws v_1 ~ p_0 exactly, then for k = 1..K-1 moves v_{k+1} ~ T_k(v_k)
by one Gibbs step (2) that leaves p_{beta_k} invariant, with the weight

    w = prod_{k=1}^{K} p*_{beta_k}(v_k) / p*_{beta_{k-1}}(v_k),    E[w] = Z_B / Z_A,   (7)

so Z_B ~ Z_A mean(w) over M independent runs. The mean is unbiased for Z, so the log of
it underestimates log Z in expectation (Jensen), which makes test log-likelihoods look
better on average; one estimate may still land above log Z, though rarely far above
(P(log Z_hat > log Z + t) <= e^{-t}, by Markov's inequality). The spread of the weights
gives the interval log(Z_A (mean(w) +- 3 std(w) / sqrt(M))) that Salakhutdinov & Murray
report.

Symbols and code:

    symbol       code                          shape
    v, h         v, h                          (N, D), (N, H), floats 0.0 or 1.0
    W, a, b      W, a, b                       (D, H), (D,), (H,)
    E(v, h)      energy(v, h)                  (N,) nats
    F(v)         free_energy(v), forward(v)    (N,) nats
    log Z        exact_log_partition(rbm),     scalar (float), nats
                 ais_log_partition(rbm, ...)
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ... import nn, no_grad, rand, randn, tensor, zeros
from ...backend import get_array_module
from ...ops import sigmoid, softplus

MAX_EXACT_HIDDEN = 25   # 2^25 hidden states, D = 784: minutes (2^20: seconds)


class RBM(nn.Module):
    """A restricted Boltzmann machine with binary visible and hidden units, eq. (1).

    Args:
        num_visible: D, visible units (784 for MNIST images, flattened).
        num_hidden: H, hidden units.
        init_std: the standard deviation of W's normal initialisation (0.01: Hinton's
            "A Practical Guide to Training RBMs", section 8); the biases start at 0
            (set ``a`` to the data's pixel log-odds before training, section 8 too).

    Raises ValueError for a size below 1 or a negative init_std.

    Every method takes v of shape (N, D) (or (D,)) with entries 0.0 or 1.0 (the
    conditionals (2) accept probabilities in [0, 1] as well, the mean-field use).
    """

    def __init__(self, num_visible: int, num_hidden: int, init_std: float = 0.01):
        super().__init__()
        for name, value in (("num_visible", num_visible), ("num_hidden", num_hidden)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"RBM: {name} must be a positive integer, got {value!r}")
        if not init_std >= 0:
            raise ValueError(f"RBM: init_std must be 0 or more, got {init_std!r}")
        self.num_visible, self.num_hidden = int(num_visible), int(num_hidden)
        self.W = nn.Parameter(randn(num_visible, num_hidden).data * init_std)
        self.a = nn.Parameter(zeros(num_visible).data)
        self.b = nn.Parameter(zeros(num_hidden).data)

    def extra_repr(self):
        return f"num_visible={self.num_visible}, num_hidden={self.num_hidden}"

    # ---- the energy and the free energy, eqs. (1) and (3)
    def energy(self, v, h):
        """E(v, h) = -a.v - b.h - v^T W h, eq. (1): (N, D), (N, H) -> (N,) nats."""
        return -(v @ self.a) - (h @ self.b) - ((v @ self.W) * h).sum(axis=-1)

    def free_energy(self, v):
        """F(v) = -a.v - sum_j softplus(b_j + (v^T W)_j), eq. (3): (N, D) -> (N,) nats;
        p(v) = exp(-F(v)) / Z."""
        return -(v @ self.a) - softplus(v @ self.W + self.b).sum(axis=-1)

    forward = free_energy

    def log_prob(self, v, log_Z: float):
        """log p(v) = -F(v) - log Z, (N, D) -> (N,) nats, given log Z (from
        ``exact_log_partition`` or ``ais_log_partition``)."""
        return -self.free_energy(v) - log_Z

    # ---- the conditionals and block Gibbs sampling, eq. (2)
    def p_h_given_v(self, v):
        """p(h_j = 1 | v) = sigma(b_j + (v^T W)_j): (N, D) -> (N, H)."""
        return sigmoid(v @ self.W + self.b)

    def p_v_given_h(self, h):
        """p(v_i = 1 | h) = sigma(a_i + (W h)_i): (N, H) -> (N, D)."""
        return sigmoid(h @ self.W.T + self.a)

    @staticmethod
    def bernoulli(p):
        """A sample of independent Bernoullis with probabilities p: 1.0 where u < p,
        u ~ U[0, 1) in p's dtype (P(1) = p to that precision), of p's shape, on p's
        device."""
        return (rand(*p.shape, dtype=p.dtype, device=p.device) < p).astype(p.dtype)

    def sample_h(self, v):
        """h ~ p(h | v), (N, D) -> (N, H) of 0.0 and 1.0."""
        return self.bernoulli(self.p_h_given_v(v))

    def sample_v(self, h):
        """v ~ p(v | h), (N, H) -> (N, D) of 0.0 and 1.0."""
        return self.bernoulli(self.p_v_given_h(h))

    @no_grad()
    def gibbs(self, v, steps: int = 1, return_chain: bool = False):
        """``steps`` block Gibbs steps v -> h ~ p(h | v) -> v ~ p(v | h) from v (N, D).

        Returns the last v (N, D), a sample of 0.0 and 1.0; with return_chain=True, also
        the list of the steps' p(v | h) (N, D), the chain's means, which show a chain
        better than its bits. Each step leaves p(v) invariant, so a long chain from any
        start samples the model.

        Raises ValueError for negative steps.
        """
        if steps < 0:
            raise ValueError(f"gibbs: steps must be 0 or more, got {steps}")
        chain = []
        for _ in range(steps):
            p_v = self.p_v_given_h(self.sample_h(v))
            v = self.bernoulli(p_v)
            if return_chain:
                chain.append(p_v)
        return (v, chain) if return_chain else v


def _check_rbm(rbm, fn):
    if not isinstance(rbm, RBM):
        raise TypeError(f"{fn}: expects an RBM, got {type(rbm).__name__}")


@no_grad()
def exact_log_partition(rbm: RBM, chunk_size: int = 4096) -> float:
    """log Z of ``rbm``, exactly, by eq. (5): the visible units summed out in closed form,
    the 2^H hidden states enumerated ``chunk_size`` at a time (in float64).

    Cost: 2^H products of (H,) with W^T, i.e. 2^H * D * H multiply-adds (2^20 states
    for D = 784: seconds). Returns a float, nats.

    Raises ValueError when H exceeds MAX_EXACT_HIDDEN (use ``ais_log_partition``).
    """
    _check_rbm(rbm, "exact_log_partition")
    H = rbm.num_hidden
    if H > MAX_EXACT_HIDDEN:
        raise ValueError(f"exact_log_partition: 2^{H} hidden states are too many to sum "
                         f"(at most 2^{MAX_EXACT_HIDDEN}); estimate log Z with "
                         f"ais_log_partition")
    xp = get_array_module(rbm.W.data)
    W, a, b = (p.data.astype(np.float64) for p in (rbm.W, rbm.a, rbm.b))
    bits = xp.arange(H)
    terms = []
    for start in range(0, 2 ** H, chunk_size):
        index = xp.arange(start, min(start + chunk_size, 2 ** H))
        h = ((index[:, None] >> bits) & 1).astype(np.float64)          # (n, H)
        x = h @ W.T + a                                                # (n, D)
        log_terms = h @ b + (xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))).sum(axis=1)
        top = log_terms.max()
        terms.append(float(top + xp.log(xp.exp(log_terms - top).sum())))
    terms = np.array(terms)
    top = terms.max()
    return float(top + np.log(np.exp(terms - top).sum()))


def ais_betas(num_intermediate: int = 14_500) -> np.ndarray:
    """The inverse temperatures 0 = beta_0 < ... < beta_K = 1 of AIS, eq. (6), spaced as
    Salakhutdinov & Murray (2008, section 4.1): uniformly by 1e-3 on [0, 0.5], 1e-4 on
    [0.5, 0.9] and 1e-5 on [0.9, 1], 14,500 steps in all (denser where p_beta changes
    fastest); another ``num_intermediate`` keeps those proportions (500 : 4,000 :
    10,000). Returns float64 (K + 1,)."""
    if num_intermediate < 3:
        raise ValueError(f"ais_betas: num_intermediate must be 3 or more, got "
                         f"{num_intermediate}")
    n1 = max(1, round(num_intermediate * 500 / 14_500))
    n2 = max(1, round(num_intermediate * 4_000 / 14_500))
    n3 = max(1, num_intermediate - n1 - n2)
    return np.concatenate([np.linspace(0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False),
                           np.linspace(0.9, 1.0, n3 + 1)])


class AISEstimate(NamedTuple):
    """An AIS estimate of log Z (nats) with the interval log(Z_A (mean(w) -+ 3 std(w) /
    sqrt(M))) (-inf as the low end when the interval reaches 0), the number of runs M,
    the intermediate distributions K, and the log-weights log(Z_A w) (M,) themselves."""
    log_Z: float
    log_Z_low: float
    log_Z_high: float
    num_runs: int
    num_betas: int
    log_weights: np.ndarray


@no_grad()
def ais_log_partition(rbm: RBM, num_runs: int = 100, betas=None, base_visible_bias=None,
                      progress: bool = False) -> AISEstimate:
    """log Z of ``rbm`` by annealed importance sampling, eqs. (6) and (7).

    Args:
        rbm: the model B.
        num_runs: M independent annealing runs (Salakhutdinov & Murray: 100).
        betas: the increasing inverse temperatures from 0 to 1 (default ``ais_betas()``,
            14,500 steps).
        base_visible_bias: a^A (D,), the base-rate model's visible biases, e.g. the
            data's pixel log-odds log(p / (1 - p)); default zeros (the uniform model).
        progress: show a progress bar over the temperatures.

    Returns an ``AISEstimate`` (log Z, its 3-standard-error interval, ...), nats.
    Cost: K Gibbs steps of M chains, two (M, D) x (D, H) products each.

    Raises ValueError for betas that do not rise from 0 to 1, or a base bias of the
    wrong shape or with infinite entries (a pixel never or always on in the data has
    log-odds -inf or +inf: clip its rate p to [1e-3, 1 - 1e-3] first).
    """
    _check_rbm(rbm, "ais_log_partition")
    betas = ais_betas() if betas is None else np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or len(betas) < 2 or betas[0] != 0 or betas[-1] != 1 \
            or not np.all(np.diff(betas) > 0):
        raise ValueError("ais_log_partition: betas must rise strictly from 0 to 1")
    D, H, device = rbm.num_visible, rbm.num_hidden, rbm.W.device
    dtype = rbm.a.dtype   # a^A in the model's precision
    a_A = tensor(np.zeros(D, dtype) if base_visible_bias is None
                 else np.asarray(base_visible_bias, dtype), device=device)
    if a_A.shape != (D,):
        raise ValueError(f"ais_log_partition: base_visible_bias must have shape ({D},), "
                         f"got {a_A.shape}")
    if not np.all(np.isfinite(a_A.numpy())):
        raise ValueError("ais_log_partition: base_visible_bias holds inf or NaN; clip the "
                         "pixels' rates p to [1e-3, 1 - 1e-3] before taking log(p / (1 - p))")
    xp = get_array_module(rbm.W.data)

    def log_p_star_hidden(x, beta):
        # sum_j log(1 + exp(beta x_j)), in float64: over 14,500 steps the small
        # differences of (6) would otherwise drown in float32's rounding
        y = beta * x
        return (xp.maximum(y, 0) + xp.log1p(xp.exp(-xp.abs(y)))).sum(axis=1)

    # log Z_A: the base-rate model, W = 0, hidden units free (2 states each)
    log_Z_A = float(softplus(a_A).sum().item()) + H * math.log(2)
    v = RBM.bernoulli(sigmoid(a_A).expand(num_runs, D))                  # v_1 ~ p_0
    a_B_minus_A = rbm.a - a_A
    log_w = xp.zeros(num_runs)
    steps = range(1, len(betas))
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc="AIS log Z", leave=False)
    for k in steps:
        beta_prev, beta = betas[k - 1], betas[k]
        x = v @ rbm.W + rbm.b                                             # (M, H)
        x64 = x.data.astype(np.float64)
        # log p*_{beta_k}(v_k) - log p*_{beta_{k-1}}(v_k), eq. (7)
        log_w += (beta - beta_prev) * (v @ a_B_minus_A).data.astype(np.float64)
        log_w += log_p_star_hidden(x64, beta) - log_p_star_hidden(x64, beta_prev)
        if k < len(betas) - 1:
            # one Gibbs step that leaves p_{beta_k} invariant
            h = RBM.bernoulli(sigmoid(x * float(beta)))
            v = RBM.bernoulli(sigmoid((h @ rbm.W.T + rbm.a) * float(beta)
                                      + a_A * float(1 - beta)))
    log_w = np.asarray(log_w.get() if hasattr(log_w, "get") else log_w) + log_Z_A
    top = log_w.max()
    r = np.exp(log_w - top)
    mean, sem = r.mean(), r.std(ddof=1) / math.sqrt(num_runs) if num_runs > 1 else 0.0
    low = top + math.log(mean - 3 * sem) if mean - 3 * sem > 0 else -math.inf
    return AISEstimate(float(top + math.log(mean)), float(low),
                       float(top + math.log(mean + 3 * sem)), num_runs, len(betas) - 1, log_w)
