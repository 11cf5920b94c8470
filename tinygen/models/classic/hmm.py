"""Hidden Markov models with discrete observations (Rabiner 1989, "A Tutorial on Hidden
Markov Models and Selected Applications in Speech Recognition"; Durbin, Eddy, Krogh &
Mitchison 1998, "Biological Sequence Analysis", chapter 3): the forward and backward
algorithms, the posterior marginals, Viterbi decoding, Baum-Welch (EM) and sampling; the
log-likelihood through tinygen's autograd engine, whose gradient is forward-backward's
expected counts (Eisner 2016, "Inside-Outside and Forward-Backward Algorithms Are Just
Backprop"); and Durbin et al.'s occasionally dishonest casino.

The model. Hidden states z_t in {0, ..., K-1} form a Markov chain; each emits an
observation x_t in {0, ..., M-1}, t = 1, ..., T:

    p(x_{1:T}, z_{1:T}) = pi_{z_1} B_{z_1}(x_1) prod_{t=2}^{T} A_{z_{t-1} z_t} B_{z_t}(x_t),   (1)

with the initial distribution pi (K,), pi_i = p(z_1 = i), the transition matrix A (K, K),
A_ij = p(z_{t+1} = j | z_t = i), and the emission matrix B (K, M), B_i(k) = p(x_t = k |
z_t = i); all three stochastic (entries >= 0, rows summing to 1).

The forward algorithm (Rabiner eqs. 19-21) sums (1) over the K^T paths in K^2 T steps,
with alpha_t(j) = p(x_{1:t}, z_t = j):

    alpha_1(j) = pi_j B_j(x_1),   alpha_t(j) = [sum_i alpha_{t-1}(i) A_ij] B_j(x_t),
    p(x_{1:T}) = sum_j alpha_T(j).                                                      (2)

alpha_t shrinks geometrically (about 6^-t for a die) and underflows float64 after a few
hundred steps. Two cures, both here:

  scaled (Rabiner section V.A, in the normalised form of Bishop 2006, "Pattern
  Recognition and Machine Learning", section 13.2.4): carry alpha_hat_t(j) = p(z_t = j |
  x_{1:t}), which sums to 1, and the factors c_t = p(x_t | x_{1:t-1}):

    c_t alpha_hat_t(j) = [sum_i alpha_hat_{t-1}(i) A_ij] B_j(x_t),
    log p(x_{1:T}) = sum_t log c_t;                                                     (3)

  log space: log alpha_t(j) = logsumexp_i [log alpha_{t-1}(i) + log A_ij] + log B_j(x_t). (4)

NumPy's forward-backward (``forward_algorithm``) is scaled: its steps are matrix products,
it needs no logsumexp over K^2 terms per step, and the posteriors (6), (7) come out of the
scaled quantities directly. The engine's log-likelihood (``log_likelihood``) is in log
space (4): it takes unconstrained log-parameters (logits), which can be any real
numbers, and the engine's logsumexp is its differentiable primitive.

The backward algorithm (Rabiner eqs. 24-25), beta_t(i) = p(x_{t+1:T} | z_t = i), beta_T
= 1, beta_t(i) = sum_j A_ij B_j(x_{t+1}) beta_{t+1}(j); scaled by the same c_t, with
beta_hat_t(i) = beta_t(i) / p(x_{t+1:T} | x_{1:t}):

    beta_hat_T(i) = 1,   c_{t+1} beta_hat_t(i) = sum_j A_ij B_j(x_{t+1}) beta_hat_{t+1}(j).   (5)

The posteriors (Rabiner eqs. 27 and 37; Bishop eqs. 13.64-13.65):

    gamma_t(i) = p(z_t = i | x_{1:T}) = alpha_hat_t(i) beta_hat_t(i),                   (6)
    xi_t(i, j) = p(z_t = i, z_{t+1} = j | x_{1:T})
               = alpha_hat_t(i) A_ij B_j(x_{t+1}) beta_hat_{t+1}(j) / c_{t+1}.          (7)

Viterbi decoding (Rabiner eqs. 32-35; Durbin et al. section 3.2), in log space (a max of
products of probabilities underflows like a sum of them, and logs turn it into sums):

    delta_1(j) = log pi_j + log B_j(x_1),
    delta_t(j) = max_i [delta_{t-1}(i) + log A_ij] + log B_j(x_t),   psi_t(j) = the argmax i,
    z*_T = argmax_j delta_T(j),   z*_t = psi_{t+1}(z*_{t+1}),
    max_z log p(x, z) = max_j delta_T(j).                                               (8)

Posterior decoding (Durbin et al. section 3.2) takes instead z^_t = argmax_i gamma_t(i):
each state the most probable on its own (the sequence of them may even be impossible).

Baum-Welch (Baum et al. 1970; Rabiner eqs. 40a-c, and 109-110 for N sequences x^(n)) is
EM: the E-step takes the expected counts under the current parameters,

    E[n_i^init] = sum_n gamma^n_1(i),   E[n_ij] = sum_n sum_{t<T} xi^n_t(i, j),
    E[n_i(k)] = sum_n sum_t gamma^n_t(i) [x^n_t = k],                                   (9)

and the M-step normalises them:

    pi_i = E[n_i^init] / N,   A_ij = E[n_ij] / sum_j' E[n_ij'],
    B_i(k) = E[n_i(k)] / sum_k' E[n_i(k')].                                             (10)

Each step never lowers sum_n log p(x^(n)) (Baum et al. 1970; Dempster, Laird & Rubin 1977),
but it climbs to a local optimum, or crawls past a saddle, near where it starts: hence
several random starts, the best kept (``best_of_restarts``).

Forward-backward is backpropagation (Eisner 2016). p(x) = sum_z (1) is a polynomial in
the entries of pi, A and B, in which each path's term is a monomial where A_ij appears
n_ij(z) times (the path's i -> j transitions). Treating the entries as free variables
(not renormalised), d log p / d log A_ij = A_ij (d p / d A_ij) / p = sum_z p(z | x)
n_ij(z), so

    d log p(x) / d log A_ij = E[n_ij | x] = sum_t xi_t(i, j),
    d log p(x) / d log pi_i = gamma_1(i),
    d log p(x) / d log B_i(k) = sum_t gamma_t(i) [x_t = k]:                            (11)

the gradient of the log-likelihood with respect to the log-parameters, computed by
backpropagation through the forward algorithm (4), IS the E-step (9). With logits theta,
log A = log_softmax(theta) row by row, the chain rule through log_softmax gives

    d log p(x) / d theta_ij = E[n_ij | x] - (sum_j' E[n_ij' | x]) A_ij,                 (12)

zero exactly where A_ij = E[n_ij] / sum_j' E[n_ij']: the M-step (10) is where the
gradient vanishes.

The occasionally dishonest casino (Durbin et al. 1998, section 3.2): a casino rolls a
fair die (state F) and now and then a loaded one (state L), switching F -> L with
probability 0.05 and L -> F with 0.1 before each roll; the fair die shows each face with
1/6, the loaded die a six with 1/2 and each of 1..5 with 1/10. Those are the book's
numbers; the first die's distribution is our choice: ``casino`` takes pi = (1/2, 1/2).

Symbols and code:

    symbol                     code                          shape
    K, M, N, T                 num_states, num_symbols,      ints
                               sequences, length
    pi, A, B                   pi, A, B                      (K,), (K, K), (K, M) float64
    x_{1:T}, z_{1:T}           x, z                          (N, T) int64 (or (T,))
    alpha_hat, c               alpha_hat, log_c (= log c)    (N, T, K), (N, T)
    beta_hat                   beta_hat                      (N, T, K)
    gamma, xi                  gamma, xi                     (N, T, K), (N, T-1, K, K)
    log p(x_{1:T})             log_prob(x)                   (N,) nats
    E[n] of (9)                expected_counts(x)            Counts
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from ... import backend, nn, ops, tensor
from ...autograd import Tensor
from ...random import generator as new_generator

STOCHASTIC_ATOL = 1e-6        # how far from 1 a row of probabilities may sum
MAX_ALIGN_STATES = 8          # align_states tries all K! orderings


# --------------------------------------------------------------------------- checks

def _as_numpy(value, name, fn):
    if isinstance(value, Tensor):
        value = value.data
    try:
        return np.asarray(backend.to_numpy(value) if hasattr(value, "shape") else value,
                          dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be an array of probabilities, got "
                        f"{type(value).__name__}") from None


def check_parameters(pi, A, B, fn="HMM"):
    """pi (K,), A (K, K), B (K, M) as float64 NumPy arrays, checked to be an HMM's
    parameters (eq. (1)): finite, non-negative, each row summing to 1 within
    STOCHASTIC_ATOL (then renormalised exactly), the shapes agreeing.

    Raises ValueError naming the argument, what was given and what is expected; TypeError
    for something that is not an array of numbers.
    """
    pi, A, B = (_as_numpy(v, n, fn) for v, n in ((pi, "pi"), (A, "A"), (B, "B")))
    if pi.ndim != 1 or len(pi) < 1:
        raise ValueError(f"{fn}: pi must be a vector of K >= 1 initial probabilities, "
                         f"got shape {pi.shape}")
    K = len(pi)
    if A.shape != (K, K):
        raise ValueError(f"{fn}: A must be the ({K}, {K}) transition matrix of the {K} "
                         f"states of pi, got shape {A.shape}")
    if B.ndim != 2 or B.shape[0] != K or B.shape[1] < 1:
        raise ValueError(f"{fn}: B must be a ({K}, M) emission matrix, one row per state "
                         f"of pi, M >= 1 symbols; got shape {B.shape}")
    out = []
    for name, p in (("pi", pi), ("A", A), ("B", B)):
        if not np.isfinite(p).all():
            raise ValueError(f"{fn}: {name} holds non-finite values: {p.tolist()}")
        if (p < 0).any():
            raise ValueError(f"{fn}: {name} holds negative probabilities: {p.tolist()}")
        sums = p.sum(axis=-1)
        if not np.allclose(sums, 1.0, rtol=0, atol=STOCHASTIC_ATOL):
            what = f"{name} must sum to 1, but it sums" if p.ndim == 1 else \
                f"{name}'s rows must sum to 1, but they sum"
            raise ValueError(f"{fn}: {what} to {np.round(sums, 8).tolist()} (the "
                             f"probabilities must be stochastic)")
        out.append(p / sums[..., None] if p.ndim == 2 else p / sums)
    return tuple(out)


def check_observations(x, num_symbols, fn="HMM"):
    """x as an int64 (N, T) NumPy array and whether it was one sequence (T,).

    x may be a (T,) or (N, T) array of integers (NumPy, CuPy or a Tensor) or a list of
    equal-length sequences. Raises TypeError for non-integers, ValueError for another
    shape, unequal lengths, T = 0 or N = 0, or a symbol outside 0..num_symbols-1.
    """
    if isinstance(x, Tensor):
        x = x.data
    if hasattr(x, "shape"):
        x = backend.to_numpy(x)
    try:
        x = np.asarray(x)
    except ValueError:
        lengths = sorted({len(s) for s in x})
        raise ValueError(f"{fn}: the sequences of x must share one length (batch them by "
                         f"length), got lengths {lengths}") from None
    if x.dtype == object:
        raise ValueError(f"{fn}: the sequences of x must share one length (batch them by "
                         "length)")
    if x.dtype.kind not in "iu":
        raise TypeError(f"{fn}: x must hold integer symbols 0..{num_symbols - 1}, got "
                        f"dtype {x.dtype}")
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"{fn}: x must be one sequence (T,) or a batch (N, T), got shape "
                         f"{x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{fn}: x must hold at least one sequence of at least one symbol, "
                         f"got shape {x.shape}")
    bad = (x < 0) | (x >= num_symbols)
    if bad.any():
        raise ValueError(f"{fn}: x must hold symbols 0..{num_symbols - 1} (B has "
                         f"{num_symbols} columns), got {int(x[bad][0])}")
    return x.astype(np.int64), single


def _emission_probabilities(B, x):
    """B_j(x_t) for every sequence, step and state: (N, T, K)."""
    return B.T[x]


# --------------------------------------------------------------------------- eqs. (3), (5)-(7)

def forward_algorithm(pi, A, B, x):
    """The scaled forward algorithm, eq. (3): alpha_hat (N, T, K), alpha_hat_t(j) =
    p(z_t = j | x_{1:t}), and log c (N, T), log c_t = log p(x_t | x_{1:t-1}) in nats, so
    that log p(x_{1:T}) = log_c.sum(axis=1).

    pi, A, B: NumPy float64 parameters (``check_parameters``); x: int64 (N, T) symbols
    (``check_observations``). A sequence impossible under the model gets c_t = 0 from its
    first impossible step on: log c = -inf there, alpha_hat = 0 (no NaN).
    Source: Rabiner 1989, section V.A; Bishop 2006, eqs. (13.59)-(13.60).
    """
    N, T = x.shape
    Bx = _emission_probabilities(B, x)
    alpha_hat = np.zeros((N, T, len(pi)))
    c = np.zeros((N, T))
    a = pi * Bx[:, 0]
    for t in range(T):
        if t > 0:
            a = (alpha_hat[:, t - 1] @ A) * Bx[:, t]
        c[:, t] = a.sum(axis=1)
        # c_t = 0: the sequence is impossible; alpha_hat stays 0 rather than 0/0
        alpha_hat[:, t] = a / np.where(c[:, t] > 0, c[:, t], 1.0)[:, None]
    with np.errstate(divide="ignore"):
        return alpha_hat, np.log(c)


def backward_algorithm(A, B, x, log_c):
    """The scaled backward algorithm, eq. (5): beta_hat (N, T, K), beta_hat_t(i) =
    p(x_{t+1:T} | z_t = i) / p(x_{t+1:T} | x_{1:t}), scaled by the forward pass's log_c
    (N, T). Steps where c = 0 (impossible sequences) are divided by 1 instead; their
    posteriors are undefined (``posteriors`` refuses them).
    Source: Rabiner 1989, section V.A; Bishop 2006, eq. (13.62).
    """
    N, T = x.shape
    Bx = _emission_probabilities(B, x)
    c = np.exp(log_c)
    c = np.where(c > 0, c, 1.0)
    beta_hat = np.ones((N, T, A.shape[0]))
    for t in range(T - 2, -1, -1):
        beta_hat[:, t] = (Bx[:, t + 1] * beta_hat[:, t + 1] / c[:, t + 1, None]) @ A.T
    return beta_hat


class Posteriors(NamedTuple):
    """What forward-backward gives for a batch: gamma (N, T, K), gamma_t(i) = p(z_t = i |
    x), eq. (6); xi (N, T-1, K, K), xi_t(i, j) = p(z_t = i, z_{t+1} = j | x), eq. (7);
    log_prob (N,), log p(x) in nats."""
    gamma: np.ndarray
    xi: np.ndarray
    log_prob: np.ndarray


def _refuse_impossible(log_prob, fn):
    impossible = np.flatnonzero(np.isneginf(log_prob))
    if len(impossible):
        raise ValueError(f"{fn}: sequence(s) {impossible[:10].tolist()} of x have "
                         f"probability 0 under the model (log p = -inf), so their "
                         f"posteriors are undefined")


def posteriors(pi, A, B, x):
    """gamma, xi and log p(x) of a batch x (N, T), eqs. (6)-(7), by the scaled
    forward-backward algorithm. Returns ``Posteriors``.

    Raises ValueError for a sequence of probability 0 under the model.
    Source: Rabiner 1989, eqs. (27), (37); Bishop 2006, eqs. (13.64)-(13.65).
    """
    alpha_hat, log_c = forward_algorithm(pi, A, B, x)
    log_prob = log_c.sum(axis=1)
    _refuse_impossible(log_prob, "posteriors")
    beta_hat = backward_algorithm(A, B, x, log_c)
    gamma = alpha_hat * beta_hat
    # eq. (7), for every t at once: alpha_hat_t(i) A_ij [B_j(x_{t+1}) beta_hat_{t+1}(j) / c_{t+1}]
    ahead = _emission_probabilities(B, x)[:, 1:] * beta_hat[:, 1:] / np.exp(log_c[:, 1:, None])
    xi = alpha_hat[:, :-1, :, None] * A * ahead[:, :, None, :]
    return Posteriors(gamma, xi, log_prob)


# --------------------------------------------------------------------------- eq. (8)

def viterbi(pi, A, B, x):
    """The most probable state paths, eq. (8), in log space: z* (N, T) int64 and max_z
    log p(x, z) (N,) in nats (-inf for a sequence impossible under the model, whose path
    is then arbitrary). Ties go to the lowest state index.
    Source: Rabiner 1989, eqs. (32)-(35); Durbin et al. 1998, section 3.2.
    """
    N, T = x.shape
    with np.errstate(divide="ignore"):     # log 0 = -inf: a forbidden move, never chosen
        log_pi, log_A, log_B = np.log(pi), np.log(A), np.log(B)
    log_Bx = _emission_probabilities(log_B, x)
    psi = np.zeros((N, T, len(pi)), np.int64)
    delta = log_pi + log_Bx[:, 0]
    for t in range(1, T):
        scores = delta[:, :, None] + log_A          # (N, i, j)
        psi[:, t] = scores.argmax(axis=1)
        delta = scores.max(axis=1) + log_Bx[:, t]
    path = np.zeros((N, T), np.int64)
    path[:, -1] = delta.argmax(axis=1)
    rows = np.arange(N)
    for t in range(T - 2, -1, -1):
        path[:, t] = psi[rows, t + 1, path[:, t + 1]]
    return path, delta.max(axis=1)


# --------------------------------------------------------------------------- eqs. (9), (10)

class Counts(NamedTuple):
    """The expected counts of eq. (9), summed over the sequences of a batch: initial (K,),
    E[n_i^init]; transitions (K, K), E[n_ij]; emissions (K, M), E[n_i(k)]; and log_prob
    (N,), the log-likelihoods (nats) under the parameters they were taken with."""
    initial: np.ndarray
    transitions: np.ndarray
    emissions: np.ndarray
    log_prob: np.ndarray


def expected_counts(pi, A, B, x):
    """The E-step, eq. (9): the expected counts of a batch x (N, T), summed over its
    sequences. Returns ``Counts``. Raises ValueError for a sequence of probability 0.
    Source: Rabiner 1989, eqs. (40a)-(40c) and (109)-(110)."""
    post = posteriors(pi, A, B, x)
    N, T, K = post.gamma.shape
    onehot = np.eye(B.shape[1])[x]                                   # (N, T, M)
    emissions = post.gamma.reshape(N * T, K).T @ onehot.reshape(N * T, -1)
    return Counts(post.gamma[:, 0].sum(axis=0), post.xi.sum(axis=(0, 1)), emissions,
                  post.log_prob)


def m_step(counts: Counts, pi, A, B):
    """The M-step, eq. (10): new (pi, A, B) from ``counts``. A row whose counts are all 0
    (a state never visited, or never left before T) keeps its old values: the
    likelihood does not depend on it, so EM's ascent is unharmed.
    Source: Rabiner 1989, eqs. (40a)-(40c)."""
    new = []
    for counts_, old in ((counts.transitions, A), (counts.emissions, B)):
        total = counts_.sum(axis=1, keepdims=True)
        new.append(np.where(total > 0, counts_ / np.where(total > 0, total, 1.0), old))
    return counts.initial / counts.initial.sum(), new[0], new[1]


# --------------------------------------------------------------------------- sampling

def _categorical(probabilities, u):
    """One draw per row of ``probabilities`` (n, K) from uniforms u (n,): the first j
    with u < cumsum_j (inverse CDF), clipped to K - 1 against rounding of the last sum."""
    cdf = np.cumsum(probabilities, axis=1)
    return np.minimum((cdf <= u[:, None]).sum(axis=1), probabilities.shape[1] - 1)


def sample(pi, A, B, num_sequences, length, generator=None):
    """Ancestral sampling of eq. (1): z_1 ~ pi, z_t ~ A_{z_{t-1}, .}, x_t ~ B_{z_t, .}.
    Returns (z, x), int64 (num_sequences, length) each. ``generator``: a NumPy Generator
    (default: a fresh one seeded from tinygen's global generator, ``manual_seed``).

    Raises ValueError for a num_sequences or length below 1.
    """
    for name, value in (("num_sequences", num_sequences), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"sample: {name} must be a positive integer, got {value!r}")
    g = generator if generator is not None else new_generator()
    z = np.zeros((num_sequences, length), np.int64)
    x = np.zeros((num_sequences, length), np.int64)
    z[:, 0] = _categorical(np.broadcast_to(pi, (num_sequences, len(pi))),
                           g.random(num_sequences))
    for t in range(length):
        if t > 0:
            z[:, t] = _categorical(A[z[:, t - 1]], g.random(num_sequences))
        x[:, t] = _categorical(B[z[:, t]], g.random(num_sequences))
    return z, x


# --------------------------------------------------------------------------- eqs. (4), (11), (12)

def log_likelihood(log_pi, log_A, log_B, x):
    """log p(x) of each sequence by the forward algorithm in log space, eq. (4), through
    tinygen's engine: a Tensor (N,) in nats, differentiable in the log-parameters.

    log_pi (K,), log_A (K, K), log_B (K, M): Tensors of log-parameters, any real numbers.
    Given the logs of stochastic pi, A, B, the result is log p(x). Given logits passed
    through ``log_softmax`` (rows), it is log p(x) of the softmax parameters. Given
    unnormalised logs, it is the log of the polynomial sum_z (1), whose gradient is
    eq. (11): d/d log A_ij = E[n_ij | x] = sum_t xi_t(i, j), d/d log pi_i = gamma_1(i),
    d/d log B_i(k) = sum_t gamma_t(i) [x_t = k]; through log_softmax logits it is eq.
    (12), counts minus row totals times the probabilities.

    x: (N, T) or (T,) integer symbols (a (T,) sequence gives a (1,) result).
    Raises ValueError for shapes that disagree or symbols out of range, TypeError for a
    log-parameter that is not a Tensor.
    Source: Rabiner 1989, eqs. (19)-(21) in logs; Eisner 2016 for the gradient.
    """
    for name, value in (("log_pi", log_pi), ("log_A", log_A), ("log_B", log_B)):
        if not isinstance(value, Tensor):
            raise TypeError(f"log_likelihood: {name} must be a tinygen Tensor, got "
                            f"{type(value).__name__}")
    K = log_pi.shape[0] if log_pi.ndim == 1 else -1
    if log_pi.ndim != 1 or log_A.shape != (K, K) or log_B.ndim != 2 or log_B.shape[0] != K:
        raise ValueError(f"log_likelihood: expected log_pi (K,), log_A (K, K), log_B (K, M); "
                         f"got {log_pi.shape}, {log_A.shape}, {log_B.shape}")
    x, _ = check_observations(x, log_B.shape[1], "log_likelihood")
    log_Bx = ops.transpose(log_B)[x]                       # (N, T, K): log B_j(x_t)
    log_alpha = log_pi + log_Bx[:, 0]
    for t in range(1, x.shape[1]):
        log_alpha = ops.logsumexp(log_alpha.unsqueeze(2) + log_A, axis=1) + log_Bx[:, t]
    return ops.logsumexp(log_alpha, axis=1)


# --------------------------------------------------------------------------- the model

class HMM(nn.Module):
    """A hidden Markov model with K states and M discrete symbols, eq. (1).

    Args:
        pi: (K,) initial probabilities; A: (K, K) transitions, A[i, j] = p(j | i);
            B: (K, M) emissions, B[i, k] = p(x = k | z = i). Checked by
            ``check_parameters`` and kept as float64 buffers (so a checkpoint holds
            them; they are not learned by gradients: ``baum_welch_step`` sets them).

    Raises ValueError / TypeError for parameters that are not an HMM's (the message
    names the argument and what is wrong).

    The algorithms run in NumPy on the CPU (the buffers may live on another device):
    K^2 T work per sequence leaves nothing for a GPU at these sizes. Every method takes
    x as one sequence (T,) or a batch (N, T) of integer symbols 0..M-1; a (T,) input
    gives results without the batch axis.
    """

    def __init__(self, pi, A, B):
        super().__init__()
        pi, A, B = check_parameters(pi, A, B)
        self.register_buffer("pi", tensor(pi))
        self.register_buffer("A", tensor(A))
        self.register_buffer("B", tensor(B))

    @classmethod
    def random(cls, num_states: int, num_symbols: int, generator=None,
               concentration: float = 1.0) -> "HMM":
        """An HMM whose pi and rows of A and B are drawn from a symmetric Dirichlet with
        ``concentration`` (1: uniform over the simplex; larger: nearer uniform rows): a
        random start for Baum-Welch. generator: a NumPy Generator (default: seeded from
        tinygen's global one). Raises ValueError for sizes below 1 or concentration <= 0."""
        for name, value in (("num_states", num_states), ("num_symbols", num_symbols)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"HMM.random: {name} must be a positive integer, got "
                                 f"{value!r}")
        if not concentration > 0:
            raise ValueError(f"HMM.random: concentration must be positive, got "
                             f"{concentration!r}")
        g = generator if generator is not None else new_generator()
        K, M = int(num_states), int(num_symbols)
        return cls(g.dirichlet(np.full(K, concentration)),
                   g.dirichlet(np.full(K, concentration), size=K),
                   g.dirichlet(np.full(M, concentration), size=K))

    @property
    def num_states(self) -> int:
        return self.pi.shape[0]

    @property
    def num_symbols(self) -> int:
        return self.B.shape[1]

    def extra_repr(self):
        return f"num_states={self.num_states}, num_symbols={self.num_symbols}"

    def parameters_numpy(self):
        """(pi, A, B) as float64 NumPy arrays (copies)."""
        return tuple(backend.to_numpy(p.data).astype(np.float64) for p in
                     (self.pi, self.A, self.B))

    def set_parameters(self, pi, A, B) -> None:
        """Replace pi, A, B in place (on the buffers' device), after ``check_parameters``."""
        for buffer, value in zip((self.pi, self.A, self.B),
                                 check_parameters(pi, A, B, "HMM.set_parameters")):
            buffer.data[...] = backend.to_device(value, buffer.device)

    def permute(self, order) -> "HMM":
        """The same model with its states renamed: state i of the result is state
        order[i] of this one (pi[order], A[order][:, order], B[order]). The
        distribution of x is unchanged. Raises ValueError if order is not a permutation
        of 0..K-1."""
        order = np.asarray(order)
        if sorted(order.tolist()) != list(range(self.num_states)):
            raise ValueError(f"HMM.permute: order must be a permutation of "
                             f"0..{self.num_states - 1}, got {order.tolist()}")
        pi, A, B = self.parameters_numpy()
        return HMM(pi[order], A[order][:, order], B[order])

    def _x(self, x, fn):
        return check_observations(x, self.num_symbols, fn)

    # ---- likelihood and posteriors, eqs. (3)-(7)
    def log_prob(self, x):
        """log p(x_{1:T}) by the scaled forward algorithm, eq. (3): (N,) float64 nats
        (a float for one (T,) sequence); -inf for a sequence impossible under the model."""
        x, single = self._x(x, "HMM.log_prob")
        log_p = forward_algorithm(*self.parameters_numpy(), x)[1].sum(axis=1)
        return float(log_p[0]) if single else log_p

    forward = log_prob

    def forward_backward(self, x) -> Posteriors:
        """gamma (N, T, K), xi (N, T-1, K, K) and log p(x) (N,), eqs. (6)-(7) (without the
        batch axis for one (T,) sequence). Raises ValueError for a sequence of
        probability 0."""
        x, single = self._x(x, "HMM.forward_backward")
        post = posteriors(*self.parameters_numpy(), x)
        return Posteriors(*(p[0] for p in post)) if single else post

    def posterior_decode(self, x):
        """z^_t = argmax_i gamma_t(i) for every t: (N, T) int64 (or (T,))."""
        gamma = self.forward_backward(x).gamma
        return gamma.argmax(axis=-1)

    def viterbi(self, x):
        """The Viterbi path z* (N, T) int64 and max_z log p(x, z) (N,) nats, eq. (8) (a
        (T,) path and a float for one sequence)."""
        x, single = self._x(x, "HMM.viterbi")
        path, log_p = viterbi(*self.parameters_numpy(), x)
        return (path[0], float(log_p[0])) if single else (path, log_p)

    # ---- Baum-Welch, eqs. (9)-(10)
    def expected_counts(self, x) -> Counts:
        """The E-step, eq. (9), summed over the batch x. Returns ``Counts``."""
        x, _ = self._x(x, "HMM.expected_counts")
        return expected_counts(*self.parameters_numpy(), x)

    def baum_welch_step(self, x) -> float:
        """One EM step on the batch x (in place): the E-step (9) under the current
        parameters, then the M-step (10). Returns sum_n log p(x^(n)) (nats) under the
        parameters BEFORE the step; it never decreases from one step to the next.
        Raises ValueError for a sequence of probability 0."""
        x, _ = self._x(x, "HMM.baum_welch_step")
        pi, A, B = self.parameters_numpy()
        counts = expected_counts(pi, A, B, x)
        self.set_parameters(*m_step(counts, pi, A, B))
        return float(counts.log_prob.sum())

    def fit(self, x, iterations: int = 100, tol: float = 0.0):
        """Baum-Welch: up to ``iterations`` EM steps on x, stopping early once a step
        raises sum_n log p(x^(n)) by tol nats or less (tol = 0: run them all). Returns
        the list of sum_n log p(x^(n)) before each step, then after the last."""
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) \
                or iterations < 0:
            raise ValueError(f"HMM.fit: iterations must be an integer >= 0, got "
                             f"{iterations!r}")
        x, _ = self._x(x, "HMM.fit")
        history = []
        for _ in range(iterations):
            history.append(self.baum_welch_step(x))
            if tol > 0 and len(history) > 1 and history[-1] - history[-2] <= tol:
                break
        history.append(float(self.log_prob(x).sum()))
        return history

    # ---- sampling
    def sample(self, num_sequences: int, length: int, generator=None):
        """(z, x): num_sequences state paths and their symbols, int64 (num_sequences,
        length) each, by ancestral sampling of eq. (1)."""
        return sample(*self.parameters_numpy(), num_sequences, length, generator)


def best_of_restarts(x, num_states: int, num_symbols: int, restarts: int = 10,
                     iterations: int = 20, generator=None, concentration: float = 1.0):
    """Baum-Welch from ``restarts`` random starts (``HMM.random``), ``iterations`` EM steps
    each; returns (the HMM whose sum_n log p(x^(n)) is then highest, the list of every
    start's sum_n log p(x^(n)) in nats).

    EM climbs to a local optimum or stalls on a plateau, so where it ends depends on where
    it starts: on the casino's rolls, a third of the starts from a flat Dirichlet sit for
    hundreds of iterations near the saddle where both states emit alike (an i.i.d.
    mixture of dice). The usual remedy is this one: several starts, keep the best.

    Raises ValueError for restarts < 1 (and what ``HMM.random`` and ``HMM.fit`` raise).
    """
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise ValueError(f"best_of_restarts: restarts must be a positive integer, got "
                         f"{restarts!r}")
    g = generator if generator is not None else new_generator()
    best, scores = None, []
    for _ in range(restarts):
        candidate = HMM.random(num_states, num_symbols, g, concentration)
        scores.append(candidate.fit(x, iterations)[-1])
        if best is None or scores[-1] > max(scores[:-1]):
            best = candidate
    return best, scores


# --------------------------------------------------------------------------- the casino

FAIR, LOADED = 0, 1


def casino() -> HMM:
    """Durbin et al.'s occasionally dishonest casino (1998, section 3.2): states 0 = fair
    die, 1 = loaded die; symbols 0..5 for the faces 1..6. A = [[0.95, 0.05], [0.1, 0.9]];
    the fair die uniform, the loaded one 1/10 for each of 1..5 and 1/2 for a six; pi =
    (1/2, 1/2), our choice for the first die."""
    return HMM(pi=[0.5, 0.5],
               A=[[0.95, 0.05],
                  [0.10, 0.90]],
               B=[[1 / 6] * 6,
                  [1 / 10] * 5 + [1 / 2]])


def align_states(learned: HMM, reference: HMM):
    """The renaming of ``learned``'s states that best matches ``reference``'s: the order
    (a list, for ``learned.permute``) minimising sum |A - A_ref| + sum |B - B_ref| over
    all K! orderings. EM finds the states in an arbitrary order (the likelihood is the
    same under any renaming: "label switching"), so learned parameters and decoded
    paths are compared with the truth after this renaming.

    Raises ValueError if the models' sizes differ or K > MAX_ALIGN_STATES.
    """
    K = learned.num_states
    if (K, learned.num_symbols) != (reference.num_states, reference.num_symbols):
        raise ValueError(f"align_states: the models differ in size: (K, M) = "
                         f"{(K, learned.num_symbols)} and "
                         f"{(reference.num_states, reference.num_symbols)}")
    if K > MAX_ALIGN_STATES:
        raise ValueError(f"align_states: tries all K! orderings, at most K = "
                         f"{MAX_ALIGN_STATES}; got K = {K}")
    _, A, B = learned.parameters_numpy()
    _, A_ref, B_ref = reference.parameters_numpy()
    best = min(itertools.permutations(range(K)),
               key=lambda o: np.abs(A[list(o)][:, list(o)] - A_ref).sum()
               + np.abs(B[list(o)] - B_ref).sum())
    return list(best)

