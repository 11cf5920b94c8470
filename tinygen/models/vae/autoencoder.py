"""Autoencoders: learning a code by reconstructing the input.

An autoencoder is a pair of networks, an encoder f and a decoder g (Goodfellow, Bengio
and Courville, *Deep Learning*, 2016, ch. 14):

    z = f(x)                  the code, z in R^d
    x_hat = g(z) = g(f(x))    the reconstruction of x

trained to reconstruct its input,

    min_{f, g}  E_x [ L(x, g(f(x))) ].

If it could copy x perfectly it would have learned nothing; what makes the code useful
is a constraint that forbids copying. The three models here differ in that constraint.

1. The undercomplete autoencoder: d < D, so z is a bottleneck and must keep what matters
   most about x. The reconstruction loss L, summed over the D pixels of x:

       bernoulli   L(x, x_hat) = -sum_i [x_i log x_hat_i + (1 - x_i) log(1 - x_hat_i)],
                   x_hat = sigmoid(eta)
       mse         L(x, x_hat) = ||x - x_hat||^2 = sum_i (x_i - x_hat_i)^2,   x_hat = eta

   where eta is what the decoder network outputs (logits, or the reconstruction itself).
   "bernoulli" is -log p(x | z) for independent Bernoulli pixels of mean x_hat, meant for
   data in [0, 1]; it is computed from the logits as softplus(eta) - x eta, exact for any
   eta. "mse" is -log p(x | z) of a Gaussian N(x_hat, sigma^2 I), ||x - x_hat||^2 /
   (2 sigma^2) + const, for sigma^2 = 1/2. With linear
   f and g and the mse loss, the optimal code spans the top-d principal subspace of the
   data and the loss is the sum of the D - d discarded eigenvalues of its covariance:
   a linear autoencoder is PCA (Baldi and Hornik, 1989).

2. The regularised autoencoder adds a penalty on the code,

       L(x, g(f(x))) + lambda Omega(z),
       l1   Omega(z) = ||z||_1 = sum_j |z_j|   (the sparse autoencoder: most z_j become 0)
       l2   Omega(z) = ||z||^2 = sum_j z_j^2   (small codes)

   so that even a code as large as the input cannot be a copy. A caveat the textbook
   form carries: g can undo any rescaling of z, so the penalty can also be lowered by
   shrinking all of z and enlarging g's first weights (docs/vae.md measures it); sparse
   coding fixes the norms of g's columns to close this loophole.

3. The denoising autoencoder (Vincent et al. 2008; Gaussian noise in Vincent et al.
   2010) reconstructs the clean x from a corrupted copy x_tilde drawn from a corruption
   process C(x_tilde | x):

       x_tilde ~ C(x_tilde | x),      min_{f, g}  E_x E_{x_tilde ~ C} [ L(x, g(f(x_tilde))) ]

       gaussian   x_tilde = x + sigma eps,        eps ~ N(0, I)
       masking    x_tilde = m * x,                m_i ~ Bernoulli(1 - p): each pixel
                                                  zeroed with probability p (the
                                                  paper zeroes a fixed fraction p)

   The target is the clean x, never x_tilde, so the identity no longer solves the
   problem: to undo the corruption the network must learn where the data lie. With
   Gaussian noise and the mse loss, the best g(f(x_tilde)) is E[x | x_tilde] = x_tilde +
   sigma^2 grad log p_sigma(x_tilde), p_sigma the data density smoothed by the noise
   (Tweedie's formula; Alain and Bengio 2014): g(f(x_tilde)) - x_tilde estimates
   sigma^2 times the score at x_tilde, the quantity that diffusion models learn.

An autoencoder is not a generative model: it has no prior p(z), so there is no
distribution to draw new codes from. The VAE adds one.

Averages: every loss and penalty here is summed over the pixels (or code units) of one
example and averaged over the batch, so lambda weighs one image's penalty against one
image's reconstruction.

Symbols and code (x, x_tilde, eta, x_hat (N, 1, 28, 28) for the image networks, any
(N, ...) for encoder and decoder modules given directly; z (N, d)):

    symbol           code
    f, g             encoder (encode), decoder
    eta              decoder(z), logits or the reconstruction itself
    x_hat            decode(z), forward(x)
    L, Omega         reconstruction_loss, omega
    lambda           penalty_weight
    C(x_tilde | x)   corrupt
"""
from __future__ import annotations

from ... import nn, where
from ...nn import functional as F
from ...random import rand, randn
from .. import networks

RECONSTRUCTIONS = ("bernoulli", "mse")
PENALTIES = ("none", "l1", "l2")
NOISES = ("gaussian", "masking")


def _choose(value, choices, what):
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of "
                         f"{', '.join(repr(c) for c in choices)}")
    return value


def _sum_per_example(t):
    """(N, ...) -> (N,): the sum over everything but the batch axis."""
    return t.sum(axis=tuple(range(1, t.ndim)))


# --------------------------------------------------------------------------- f, g, L and Omega

class AutoEncoder(nn.Module):
    """Encoder f and decoder g with the loss L(x, g(f(x))) + lambda Omega(f(x)).

    Args:
        latent_dim: d, the size of the code z.
        network: "mlp" or "conv", the shared image networks of ``networks`` for
            (N, 1, 28, 28) images.
        reconstruction: "bernoulli" (binary cross-entropy with logits, for data in
            [0, 1]) or "mse" (squared error).
        penalty: "none", "l1" (Omega(z) = ||z||_1) or "l2" (Omega(z) = ||z||^2).
        penalty_weight: lambda, >= 0 (used only with a penalty).
        encoder, decoder: modules to use as f and g instead of the image networks, e.g.
            nn.Linear(D, d) and nn.Linear(d, D) for a linear autoencoder of vectors;
            give both or neither. latent_dim and network are then not used.

    Attributes:
        encoder: f, x (N, ...) -> z (N, d).
        decoder: z (N, d) -> eta (N, ...), logits for "bernoulli", x_hat for "mse".
    """

    def __init__(self, latent_dim: int = 32, network: str = "mlp",
                 reconstruction: str = "bernoulli", penalty: str = "none",
                 penalty_weight: float = 0.0, *, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None):
        super().__init__()
        self.reconstruction = _choose(reconstruction, RECONSTRUCTIONS, "reconstruction loss")
        self.penalty = _choose(penalty, PENALTIES, "penalty")
        if not penalty_weight >= 0:
            raise ValueError(f"penalty_weight (lambda) must be >= 0, got {penalty_weight}")
        self.penalty_weight = float(penalty_weight)
        if (encoder is None) != (decoder is None):
            raise ValueError("AutoEncoder: give both encoder and decoder, or neither")
        if encoder is None:
            encoder = networks.encoder(network, int(latent_dim))
            decoder = networks.decoder(network, int(latent_dim))
        self.encoder, self.decoder = encoder, decoder

    def encode(self, x):
        """z = f(x): (N, ...) -> (N, d)."""
        return self.encoder(x)

    def decode(self, z):
        """x_hat = g(z): (N, d) -> (N, ...), in data space: sigmoid(eta) for "bernoulli"
        (the Bernoulli means, in (0, 1)), eta itself for "mse"."""
        eta = self.decoder(z)
        return eta.sigmoid() if self.reconstruction == "bernoulli" else eta

    def forward(self, x):
        """x_hat = g(f(x)): (N, ...) -> (N, ...). For a denoising autoencoder, pass the
        corrupted x_tilde to get its denoised version."""
        return self.decode(self.encode(x))

    def reconstruction_loss(self, eta, x):
        """L(x, x_hat) from the decoder's output eta, summed over the pixels and averaged
        over the batch. eta, x: (N, ...) -> scalar."""
        if self.reconstruction == "bernoulli":
            # -[x log sigmoid(eta) + (1 - x) log(1 - sigmoid(eta))] from the logits, as
            # softplus(eta) - x eta: in float32 sigmoid(eta) rounds to exactly 1 once
            # eta > 17, and log(1 - x_hat) would be -inf; this form stays exact.
            per_pixel = F.binary_cross_entropy_with_logits(eta, x, reduction="none")
        else:
            per_pixel = F.mse_loss(eta, x, reduction="none")
        return _sum_per_example(per_pixel).mean()

    def omega(self, z):
        """Omega(z) averaged over the batch: ||z||_1 ("l1") or ||z||^2 ("l2").
        z: (N, d) -> scalar."""
        if self.penalty == "l1":
            return _sum_per_example(z.abs()).mean()
        if self.penalty == "l2":
            return _sum_per_example(z * z).mean()
        raise ValueError("omega: this autoencoder has no penalty (penalty='none')")

    def losses(self, x, x_tilde=None) -> dict:
        """The terms of the objective on a batch x (N, ...), as scalar Tensors:

            reconstruction   L(x, g(f(x_tilde)))
            penalty          Omega(f(x_tilde))          (only with a penalty)
            loss             reconstruction + lambda penalty, what training minimises

        x_tilde is what the encoder reads: x itself for a plain autoencoder (the default),
        a corruption of x for a denoising one. The target is always x.
        """
        z = self.encode(x if x_tilde is None else x_tilde)
        eta = self.decoder(z)
        terms = {"reconstruction": self.reconstruction_loss(eta, x)}
        terms["loss"] = terms["reconstruction"]
        if self.penalty != "none":
            terms["penalty"] = self.omega(z)
            terms["loss"] = terms["loss"] + self.penalty_weight * terms["penalty"]
        return terms

    def loss(self, x):
        """The scalar minimised on a batch x (N, ...): L(x, g(f(x))) + lambda Omega(f(x))."""
        return self.losses(x)["loss"]


# --------------------------------------------------------------------------- C and the DAE

def corrupt(x, noise: str, noise_level: float):
    """Draw x_tilde ~ C(x_tilde | x), the same shape as x (a new draw on every call).

    noise "gaussian": x_tilde = x + sigma eps, eps ~ N(0, I), sigma = noise_level.
    noise "masking": each element set to 0 with probability p = noise_level, else kept.
    x itself is not modified.
    """
    _choose(noise, NOISES, "noise")
    if noise == "gaussian":
        sigma = noise_level
        return x + sigma * randn(*x.shape, dtype=x.dtype, device=x.device)
    p = noise_level
    keep = rand(*x.shape, dtype=x.dtype, device=x.device) >= p   # m_i ~ Bernoulli(1 - p)
    return where(keep, x, 0.0)


class DenoisingAutoEncoder(AutoEncoder):
    """An AutoEncoder trained to reconstruct the clean x from x_tilde ~ C(x_tilde | x):
    its loss is L(x, g(f(x_tilde))) (+ lambda Omega(f(x_tilde)) with a penalty).

    It only ever reads corrupted inputs. With masking noise those are darker than clean
    images (a fraction p of the ink is gone), so a clean image is unfamiliar input: it
    comes back with bolder strokes, and its reconstruction error can exceed that of a
    corrupted one.

    Args: those of AutoEncoder, and
        noise: "gaussian" (x + sigma eps) or "masking" (pixels zeroed with probability p).
        noise_level: sigma >= 0 for "gaussian", p in [0, 1) for "masking".
    """

    def __init__(self, latent_dim: int = 32, network: str = "mlp",
                 reconstruction: str = "bernoulli", penalty: str = "none",
                 penalty_weight: float = 0.0, noise: str = "masking",
                 noise_level: float = 0.5, *, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None):
        super().__init__(latent_dim, network, reconstruction, penalty, penalty_weight,
                         encoder=encoder, decoder=decoder)
        self.noise = _choose(noise, NOISES, "noise")
        ok = noise_level >= 0 if noise == "gaussian" else 0 <= noise_level < 1
        if not ok:
            raise ValueError(f"noise_level must be a std sigma >= 0 for gaussian noise, a "
                             f"probability p in [0, 1) for masking noise; got {noise_level}")
        self.noise_level = float(noise_level)

    def corrupt(self, x):
        """x_tilde ~ C(x_tilde | x): (N, ...) -> (N, ...), a fresh draw each call."""
        return corrupt(x, self.noise, self.noise_level)

    def losses(self, x, x_tilde=None) -> dict:
        """AutoEncoder.losses with the encoder reading x_tilde ~ C(x_tilde | x), a fresh
        draw unless given, and the reconstruction compared with the clean x."""
        return super().losses(x, self.corrupt(x) if x_tilde is None else x_tilde)
