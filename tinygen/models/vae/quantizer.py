"""Vector quantisation for the VQ-VAE (van den Oord, Vinyals and Kavukcuoglu 2017): a
codebook e_1, ..., e_K in R^D, the nearest-code assignment, the straight-through
estimator, and the codebook's updates (the model is in ``vqvae.py``).

    k_i = argmin_j ||z_e,i - e_j||_2,     z_q,i = e_{k_i},
    z_q_st = z_e + sg[z_q - z_e]          (forward value z_q, gradient of the identity in z_e)

EMA codebook (Appendix A.1). Instead of the codebook term, each code can be set to the
running mean of the encoder outputs assigned to it, with decay gamma (0.99):

    N_k <- gamma N_k + (1 - gamma) n_k,                   n_k = #{i : k_i = k}
    m_k <- gamma m_k + (1 - gamma) sum_{i : k_i = k} z_e,i
    e_k  = m_k / N_k

(i runs over the N h w grid vectors of the batch). Then the codebook term is dropped
from L (it is still logged, as a measure of the quantisation error). As in DeepMind's
reference implementation (Sonnet), e_k divides by Laplace-smoothed counts,
N_k' = (N_k + eps) / (n + K eps) n with n = sum_k N_k, so a code no vector has chosen
for a long time never divides by zero. N_k starts at 1 and m_k at e_k, as if every
code had been assigned once, to itself. An unused code does not stay put for ever: m_k
and N_k both decay by gamma each step, and once N_k falls below eps (after about
ln(1/eps) / (1 - gamma), some 1150 idle steps at gamma = 0.99) the smoothing takes over
and e_k shrinks towards the origin, as in Sonnet.

Codebook usage. With p_k = n_k / (N h w) the fraction of grid vectors assigned to code
k, the perplexity exp(-sum_k p_k log p_k) is 1 when one code takes everything and K
when all are used equally: the effective number of codes in use.

Dead codes (an option, not in the paper; ``dead_code_threshold`` > 0). A code that no
encoder output chooses gets no gradient and no EMA update, so it stays unused for good.
The moving-average count N_k (kept in both modes) finds them: after each step, every
code with N_k < threshold is moved onto a randomly chosen encoder output of the batch
(N_k <- 1, m_k <- e_k), the "random restarts" of Dhariwal et al. 2020 (Jukebox).
N_k counts per batch of N h w vectors, so the threshold depends on the batch size.

Symbols and code:

    symbol       code                             shape
    K, D         num_embeddings, embedding_dim
    e            embedding                        (K, D), initialised U(-1/K, 1/K)
    k            Quantized.k                      (N, h, w) code indices
    z_q, z_q_st  Quantized.z_q, Quantized.z_q_st  (N, D, h, w)
    N_k, m_k     ema_count, ema_sum               (K,), (K, D)
    gamma        decay
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ... import backend, nn, no_grad
from ...autograd import Tensor, mark_modified
from ...nn import init
from ...random import randint

__all__ = ["nearest_codes", "straight_through", "codebook_usage", "perplexity",
           "Quantized", "VectorQuantizer"]

CODEBOOK_UPDATES = ("loss", "ema")


# --------------------------------------------------------------------------- the math

def nearest_codes(z, e) -> np.ndarray:
    """k_i = argmin_j ||z_i - e_j||_2 for every row z_i of z.

    Args:
        z: (M, D) vectors; e: (K, D) codebook. Tensors or arrays, on one device.

    Returns:
        (M,) int64 array (NumPy or CuPy, z's device) of code indices. The squared
        distances come from one matrix product, ||z_i||^2 - 2 z_i . e_j + ||e_j||^2,
        an (M, K) table; a tie goes to the lowest index j (argmin's first minimum).
        No gradient: the argmin is piecewise constant.
    """
    z = z.data if isinstance(z, Tensor) else z
    e = e.data if isinstance(e, Tensor) else e
    if z.ndim != 2 or e.ndim != 2 or z.shape[1] != e.shape[1]:
        raise ValueError(f"nearest_codes: expected z (M, D) and e (K, D) with the same D; got "
                         f"shapes {tuple(z.shape)} and {tuple(e.shape)}")
    xp = backend.get_array_module(z, e)
    # Expanded, the square needs no (M, K, D) array of differences: one (M, D) x (D, K)
    # product does the work.
    d = (z * z).sum(1, keepdims=True) - 2 * (z @ e.T) + (e * e).sum(1)   # (M, K)
    return xp.argmin(d, axis=1).astype(np.int64)


def straight_through(z_e: Tensor, z_q: Tensor) -> Tensor:
    """z_e + sg[z_q - z_e]: the value of z_q, with the gradient of the identity in z_e
    (and none in z_q). Any shape, z_e and z_q alike."""
    return z_e + (z_q - z_e).detach()


def codebook_usage(k, num_embeddings: int):
    """n_k, how often each code k appears among the indices k (any shape, NumPy or
    CuPy): a (K,) float64 NumPy array."""
    k = k.data if isinstance(k, Tensor) else k
    counts = backend.get_array_module(k).bincount(k.ravel(), minlength=num_embeddings)
    return backend.to_numpy(counts).astype(np.float64)


def perplexity(counts) -> float:
    """exp(-sum_k p_k log p_k) with p_k = n_k / sum_j n_j, for counts (K,) (0 log 0 = 0):
    1 when one code takes everything, K when all K are used equally."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("perplexity: the counts are all zero")
    p = counts[counts > 0] / counts.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


# --------------------------------------------------------------------------- quantisation

Quantized = namedtuple("Quantized", "z_q_st z_q k")
Quantized.__doc__ = """What VectorQuantizer returns for z_e (N, D, h, w):
    z_q_st: (N, D, h, w) z_e + sg[z_q - z_e], what the decoder reads;
    z_q:    (N, D, h, w) e_k at every position, differentiable in the codebook e;
    k:      (N, h, w) int64 array (NumPy or CuPy) of the chosen code indices."""


class VectorQuantizer(nn.Module):
    """The codebook e (K, D) and nearest-neighbour quantisation of a grid of vectors.

    Args:
        num_embeddings: K, the number of codes.
        embedding_dim: D, the size of each code.
        codebook_update: "loss" (the codebook is a Parameter trained by the codebook
            term) or "ema" (a buffer set by ``ema_update``; no gradient reaches it).
        decay: gamma of the moving averages N_k, m_k.
        eps: the Laplace smoothing of the counts in e_k = m_k / N_k.
        dead_code_threshold: codes whose moving-average count N_k falls below it are
            restarted by ``restart_dead_codes``; 0 never restarts (the paper).

    Attributes:
        embedding: e (K, D), initialised U(-1/K, 1/K).
        ema_count: N_k (K,), the moving average of the counts n_k (both modes).
        ema_sum: m_k (K, D), the moving average of the assigned vectors' sums (used in
            "ema" mode only).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, codebook_update: str = "loss",
                 decay: float = 0.99, eps: float = 1e-5, dead_code_threshold: float = 0.0):
        super().__init__()
        if codebook_update not in CODEBOOK_UPDATES:
            raise ValueError(f"VectorQuantizer: codebook_update must be 'loss' or 'ema'; got "
                             f"{codebook_update!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"VectorQuantizer: decay must lie in [0, 1); got {decay}")
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(f"VectorQuantizer: need K >= 1 and D >= 1; got K={num_embeddings}, "
                             f"D={embedding_dim}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.codebook_update, self.decay, self.eps = codebook_update, float(decay), float(eps)
        self.dead_code_threshold = float(dead_code_threshold)
        K, D = self.num_embeddings, self.embedding_dim
        e = init.uniform_(Tensor(np.zeros((K, D), np.float32)), -1.0 / K, 1.0 / K)
        if codebook_update == "loss":
            self.embedding = nn.Parameter(e)
        else:  # state moved by moving averages, not learned by gradient
            self.register_buffer("embedding", e)
        self.register_buffer("ema_count", Tensor(np.ones(K, np.float32)))
        self.register_buffer("ema_sum", Tensor(e.data.copy()))

    def forward(self, z_e: Tensor) -> Quantized:
        """z_e (N, D, h, w) -> Quantized(z_q_st, z_q, k), see ``Quantized``."""
        if z_e.ndim != 4 or z_e.shape[1] != self.embedding_dim:
            raise ValueError(f"VectorQuantizer: expected z_e (N, {self.embedding_dim}, h, w); "
                             f"got shape {z_e.shape}")
        n, d, h, w = z_e.shape
        # Channels last: one row per grid position, (N h w, D).
        z_flat = z_e.data.transpose(0, 2, 3, 1).reshape(-1, d)
        k = nearest_codes(z_flat, self.embedding.data).reshape(n, h, w)
        z_q = self.quantize(k)
        return Quantized(straight_through(z_e, z_q), z_q, k)

    def quantize(self, k) -> Tensor:
        """Code indices k (N, h, w) -> z_q = e_k (N, D, h, w); the gradient of the codebook
        term reaches the rows of e that were chosen (added up where chosen repeatedly)."""
        return self.embedding[k].transpose(0, 3, 1, 2)

    @no_grad()
    def ema_update(self, z_e, k) -> None:
        """One step of the moving averages for a batch: N_k always (it measures usage);
        with codebook_update="ema" also m_k and e_k = m_k / N_k' (Laplace-smoothed N_k').

        Args:
            z_e: (N, D, h, w) encoder outputs (Tensor or array), k: (N, h, w) their codes.
        """
        z_e = z_e.data if isinstance(z_e, Tensor) else z_e
        k = k.data if isinstance(k, Tensor) else k
        xp = backend.get_array_module(z_e)
        gamma, K = self.decay, self.num_embeddings
        z_flat = z_e.transpose(0, 2, 3, 1).reshape(-1, self.embedding_dim)      # (M, D)
        one_hot = (k.reshape(-1, 1) == xp.arange(K)).astype(z_flat.dtype)        # (M, K)
        n_k = one_hot.sum(0)                                                     # (K,)
        N = self.ema_count.data
        N[...] = gamma * N + (1 - gamma) * n_k
        mark_modified(self.ema_count)
        if self.codebook_update != "ema":
            return
        m = self.ema_sum.data
        m[...] = gamma * m + (1 - gamma) * (one_hot.T @ z_flat)                  # (K, D)
        n = N.sum()
        N_smoothed = (N + self.eps) / (n + K * self.eps) * n
        self.embedding.data[...] = m / N_smoothed[:, None]
        mark_modified(self.ema_sum, self.embedding)

    @no_grad()
    def restart_dead_codes(self, z_e) -> int:
        """Move every code with N_k < dead_code_threshold onto an encoder output drawn at
        random from z_e (N, D, h, w), and reset N_k = 1, m_k = e_k. Returns how many were
        restarted (0 when the threshold is 0)."""
        if self.dead_code_threshold <= 0:
            return 0
        N = self.ema_count.data
        xp = backend.get_array_module(N)
        dead = xp.nonzero(N < self.dead_code_threshold)[0]
        if dead.size == 0:
            return 0
        z_e = z_e.data if isinstance(z_e, Tensor) else z_e
        z_flat = z_e.transpose(0, 2, 3, 1).reshape(-1, self.embedding_dim)
        # tinygen's global generator: reproducible under manual_seed (and, on the CPU,
        # resumed from checkpoints).
        pick = randint(0, z_flat.shape[0], (int(dead.size),), device=backend.device_of(N)).data
        self.embedding.data[dead] = z_flat[pick]
        self.ema_sum.data[dead] = z_flat[pick]
        N[dead] = 1.0
        mark_modified(self.embedding, self.ema_sum, self.ema_count)
        return int(dead.size)

    def extra_repr(self):
        return (f"K={self.num_embeddings}, D={self.embedding_dim}, "
                f"codebook_update={self.codebook_update!r}")
