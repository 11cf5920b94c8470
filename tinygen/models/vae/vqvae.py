"""VQ-VAE: the vector-quantised variational autoencoder (van den Oord, Vinyals and
Kavukcuoglu 2017, "Neural Discrete Representation Learning").

An encoder maps an image x to a grid of vectors z_e(x) of shape (N, D, h, w). A codebook
holds K embedding vectors e_1, ..., e_K in R^D. Each vector of the grid is replaced by
its nearest code (eqs. 1 and 2 of the paper), at every grid position independently:

    q(z = k | x) = 1 if k = argmin_j ||z_e(x) - e_j||_2, else 0,
    z_q(x) = e_k.

The posterior q(z|x) is deterministic, a one-hot over the K codes, so with a uniform
prior p(z) its KL term is the constant log K per grid position (49 log K for a 7 x 7
grid) and drops out of the ELBO. The decoder
models p(x | z_q(x)).

The argmin has no gradient. The straight-through estimator copies the gradient that
reaches z_q onto z_e, as if quantisation were the identity:

    z_q_st = z_e + sg[z_q - z_e]         forward value z_q, d z_q_st / d z_e = I,

where sg[.] is the stop-gradient (``Tensor.detach``: an identity in the forward pass,
zero derivative). The loss (eq. 3) is

    L = -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2

(the paper's eq. 3 prints the first term as +log p(x | z_q); it is the negative
log-likelihood that is minimised),

with e the code chosen at each position. The stop-gradients route the three terms:

    reconstruction  -log p(x|z_q)           decoder, and encoder (straight-through)
    codebook        ||sg[z_e] - e||^2       the codebook only: codes move towards the
                                            encoder outputs assigned to them
    commitment      beta ||z_e - sg[e]||^2  the encoder only: its outputs stay close to
                                            their codes and do not grow without bound

beta = 0.25 as in the paper. Here p(x|z_q) = N(x_hat, sigma^2 I) with x_hat =
decoder(z_q), so -log p = ||x - x_hat||^2 / (2 sigma^2) + const: the squared error, for
sigma^2 = 1/2. Each term is taken as a mean (over the N 28 28 pixels, and over the
N h w D latent elements), so the reported reconstruction term is the per-pixel MSE. The
terms then weigh against each other as sums per image would only because h w D =
7 7 16 = 784 = 28 28; with another D the codebook and commitment terms weigh 784 / (49 D)
times as much against the reconstruction as summed terms would.

The quantiser, its EMA codebook (the paper's Appendix A.1), codebook usage and dead-code
restarts are in ``quantizer.py``.

Sampling. No prior over codes is learned here: ``sample`` draws every code of the 7 x 7
grid independently from the uniform prior p(z) over the K codes and decodes. The pictures show what
the codes mean as strokes, not digits. The paper fits an autoregressive prior (a
PixelCNN) over the code grids; that comes with the autoregressive family.

Data and networks. Images are scaled to [0, 1]; the decoder's output is the mean x_hat,
unconstrained (clipped to [0, 1] only for pictures and samples). The convolutional
encoder and decoder follow the paper's, smaller: two stride-2 4 x 4 convolutions
(28 -> 14 -> 7), residual blocks (ReLU, 3 x 3 conv, ReLU, 1 x 1 conv) and a 1 x 1
convolution to D channels; the decoder starts with a 3 x 3 convolution from D channels,
then residual blocks and two stride-2 transposed convolutions. Codes form a 7 x 7 grid:
49 codes of log2 K bits describe an image.

Symbols and code:

    symbol               code                          shape
    x, x_hat             x, x_hat                      (N, 1, 28, 28), pixels in [0, 1]
    z_e(x)               encoder(x)                    (N, D, 7, 7)
    z_q, k               quantizer(z_e).z_q_st, .k     (N, D, 7, 7), (N, 7, 7)
    the terms of L       loss_terms(...), loss(...)    scalars (means, see above)
    beta                 beta
"""
from __future__ import annotations

import numpy as np

from ... import nn, no_grad
from ...autograd import Tensor
from ...nn import functional as F
from ...random import randint
from .quantizer import VectorQuantizer

__all__ = ["VQEncoder", "VQDecoder", "VQVAE"]


# --------------------------------------------------------------------------- the networks

class ResidualBlock(nn.Module):
    """h + conv1x1(ReLU(conv3x3(ReLU(h)))), the paper's residual block; (N, C, H, W) in
    and out."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, h):
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


class VQEncoder(nn.Module):
    """x (N, 1, 28, 28) -> z_e (N, D, 7, 7): a grid of vectors, one per 4 x 4 patch,
    not a flat code (hence not networks.ConvEncoder)."""

    def __init__(self, embedding_dim: int, channels: int = 32, num_res_blocks: int = 1):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(),                 # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, 2, 1),                        # (N, 2c, 7, 7)
            *[ResidualBlock(2 * c, c) for _ in range(num_res_blocks)], nn.ReLU(),
            nn.Conv2d(2 * c, embedding_dim, 1))                  # (N, D, 7, 7)

    def forward(self, x):
        return self.net(x)


class VQDecoder(nn.Module):
    """z_q (N, D, 7, 7) -> x_hat (N, 1, 28, 28), the mean of p(x|z_q); mirrors VQEncoder."""

    def __init__(self, embedding_dim: int, channels: int = 32, num_res_blocks: int = 1):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(embedding_dim, 2 * c, 3, padding=1),       # (N, 2c, 7, 7)
            *[ResidualBlock(2 * c, c) for _ in range(num_res_blocks)], nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ReLU(),    # (N, c, 14, 14)
            nn.ConvTranspose2d(c, 1, 4, 2, 1))                   # (N, 1, 28, 28)

    def forward(self, z_q):
        return self.net(z_q)


# --------------------------------------------------------------------------- the model

class VQVAE(nn.Module):
    """Encoder, vector quantiser and decoder: x (N, 1, 28, 28) -> x_hat (N, 1, 28, 28)
    through a 7 x 7 grid of codes from a codebook of K vectors in R^D.

    Args:
        num_embeddings: K; embedding_dim: D; beta: the commitment weight;
        codebook_update, decay, dead_code_threshold: see VectorQuantizer;
        channels, num_res_blocks: the size of encoder and decoder.
    """

    def __init__(self, num_embeddings: int = 64, embedding_dim: int = 16, beta: float = 0.25,
                 codebook_update: str = "loss", decay: float = 0.99,
                 dead_code_threshold: float = 0.0, channels: int = 32, num_res_blocks: int = 1):
        super().__init__()
        self.beta = float(beta)
        self.encoder = VQEncoder(embedding_dim, channels, num_res_blocks)
        self.quantizer = VectorQuantizer(num_embeddings, embedding_dim, codebook_update, decay,
                                         dead_code_threshold=dead_code_threshold)
        self.decoder = VQDecoder(embedding_dim, channels, num_res_blocks)

    def forward(self, x):
        """x (N, 1, 28, 28) -> (x_hat (N, 1, 28, 28), z_e (N, D, 7, 7), Quantized)."""
        z_e = self.encoder(x)
        q = self.quantizer(z_e)
        x_hat = self.decoder(q.z_q_st)
        return x_hat, z_e, q

    def loss_terms(self, x, x_hat, z_e, z_q) -> dict:
        """The three terms of L as scalar Tensors (means; see the module docstring):
        "reconstruction" ||x - x_hat||^2, "codebook" ||sg[z_e] - e||^2 and
        "commitment" ||z_e - sg[e]||^2 (not yet multiplied by beta)."""
        return {"reconstruction": ((x - x_hat) ** 2).mean(),
                "codebook": ((z_e.detach() - z_q) ** 2).mean(),
                "commitment": ((z_e - z_q.detach()) ** 2).mean()}

    def loss(self, terms: dict) -> Tensor:
        """L = reconstruction + codebook + beta commitment; with the EMA codebook the
        codebook term is left out (the moving averages move the codes instead)."""
        total = terms["reconstruction"] + self.beta * terms["commitment"]
        if self.quantizer.codebook_update == "loss":
            total = total + terms["codebook"]
        return total

    @no_grad()
    def encode(self, x) -> np.ndarray:
        """x (N, 1, 28, 28) -> the code grid k (N, 7, 7), int64 on x's device."""
        return self.quantizer(self.encoder(x)).k

    @no_grad()
    def sample(self, n: int) -> Tensor:
        """n images (n, 1, 28, 28) in [0, 1] from the uniform prior p(z): every code of
        the 7 x 7 grid drawn independently from {0, ..., K-1}, then decoded (the mean
        x_hat, clipped to [0, 1])."""
        K = self.quantizer.num_embeddings
        device = self.quantizer.embedding.device
        return self.decode(randint(0, K, (n, 7, 7), device=device)).clip(0.0, 1.0)

    @no_grad()
    def decode(self, k) -> Tensor:
        """A code grid k (N, 7, 7) (ints, array or Tensor) -> x_hat (N, 1, 28, 28)."""
        k = k.data if isinstance(k, Tensor) else k
        return self.decoder(self.quantizer.quantize(k))
